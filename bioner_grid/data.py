"""Data readers, splits and corpus statistics.

BIO TSV (``token<TAB>tag``, a blank line between sentences) with typed (``B-Disease``) or bare
(``B``) IOB2 tags. Bare tags get the dataset's ``entity_type`` so that every label downstream is
typed. Bad input stops with ``DataError("file:line: problem")`` before anything is trained or
recorded.

``python -m bioner_grid.data dataset=<name>`` prints the corpus statistics (WeLT Tables 1 and 11).
"""

from __future__ import annotations

import random
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

SPLITS = ("train", "dev", "test")


class DataError(ValueError):
    """Bad input data; the message is one line: ``file:line: problem``."""


@dataclass
class Sentence:
    tokens: list[str]
    tags: list[str]
    lines: list[int] = field(default_factory=list, compare=False, repr=False)  # file line of each token, if known


@dataclass
class Split:
    sentences: list[Sentence]
    source: str
    # Lines holding an I-X tag that does not continue a B-X/I-X (a known annotation slip; kept as is).
    iob_slips: list[int] = field(default_factory=list)


@dataclass
class Corpus:
    name: str
    splits: dict[str, Split]
    reports: list[dict] = field(default_factory=list)  # conversion reports (PubTator input)

    # AIONER all-in-one corpora: test sentence indices per member corpus, its task and entity types
    members: dict[str, dict] = field(default_factory=dict)
    special_tokens: list[str] = field(default_factory=list)  # task tags such as <Disease>, </Disease>

    @property
    def labels(self) -> list[str]:
        """All labels of all splits: ``O`` (and AIONER's ``O-Task`` labels) first, then ``B-T``/``I-T``
        per type, sorted by type."""
        tags = {tag for s in self.splits.values() for sent in s.sentences for tag in sent.tags}
        outside = sorted(t for t in tags if t.startswith("O-"))
        types = sorted({t[2:] for t in tags if t[:2] in ("B-", "I-")})
        return (["O"] if "O" in tags or not outside else []) + outside + [f"{p}-{t}" for t in types for p in ("B", "I")]


def _check_tag(tag: str, entity_type: str) -> str | None:
    """Return the typed IOB2 tag, or None when ``tag`` is not one."""
    if tag == "O" or (tag.startswith("O-") and len(tag) > 2):  # O-Task: AIONER's outside-of-this-task
        return tag
    if tag in ("B", "I"):
        return f"{tag}-{entity_type}"
    if len(tag) > 2 and tag[0] in "BI" and tag[1] == "-":
        return tag
    return None


def read_text(path: str | Path) -> str:
    """A UTF-8 text file without its byte-order mark, if any; ``DataError`` at the line of the
    first byte that is not UTF-8."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}:0: file not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(f"{path}:{line}: not UTF-8 (byte 0x{raw[e.start]:02x} at offset {e.start})") from None
    return text.removeprefix("\ufeff")


def read_rows(path: str | Path, n_fields: int) -> list[list[tuple[int, list[str]]]]:
    """Sentences of a column file as rows ``(line number, fields)``; a blank line ends a sentence.

    Fields are tab-separated, or whitespace-separated in a file without tabs (conlleval style).
    Every row must have ``n_fields`` non-empty fields; problems raise ``DataError('file:line: problem')``.
    """
    text = read_text(path)
    tabs = "\t" in text
    sentences, rows = [], []
    for lineno, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            if rows:
                sentences.append(rows)
                rows = []
            continue
        fields = line.split("\t") if tabs else line.split()
        if len(fields) != n_fields:
            sep = "tab" if tabs else "whitespace"
            raise DataError(f"{path}:{lineno}: expected {n_fields} {sep}-separated fields, found {len(fields)}")
        if not all(f.strip() for f in fields):
            raise DataError(f"{path}:{lineno}: empty field")
        rows.append((lineno, [f.strip() for f in fields]))
    if rows:
        sentences.append(rows)
    if not sentences:
        raise DataError(f"{path}:1: empty split (no sentences)")
    return sentences


def typed_tag(path, lineno: int, tag: str, entity_type: str) -> str:
    """The typed IOB2 tag, or ``DataError`` naming file and line."""
    typed = _check_tag(tag, entity_type)
    if typed is None:
        raise DataError(f"{path}:{lineno}: tag {tag!r} is not IOB2 (expected O, B, I, B-<type> or I-<type>)")
    return typed


def read_conll(path: str | Path, entity_type: str = "Entity") -> Split:
    """Read a BIO TSV file (token, tag); every problem raises ``DataError('file:line: problem')``."""
    sentences: list[Sentence] = []
    slips: list[int] = []
    for rows in read_rows(path, 2):
        tags = [typed_tag(path, lineno, fields[1], entity_type) for lineno, fields in rows]
        slips += [rows[i][0] for i, tag in enumerate(tags)
                  if tag.startswith("I-") and (i == 0 or tags[i - 1][2:] != tag[2:])]
        sentences.append(Sentence([fields[0] for _, fields in rows], tags, [lineno for lineno, _ in rows]))
    return Split(sentences, str(path), slips)


def seeded_split(items: list, fraction: float, seed: int, source, what: str = "sentences") -> tuple[list, list]:
    """``items`` (sentences or documents) split ``fraction`` / ``1 - fraction`` after a seeded
    shuffle; each part keeps the file order."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    cut = round(len(order) * fraction)
    if cut == 0 or cut == len(order):
        raise DataError(f"{source}:0: {len(order)} {what} cannot be split at {fraction}")
    return [items[i] for i in sorted(order[:cut])], [items[i] for i in sorted(order[cut:])]


def _split_sentences(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    first, second = seeded_split(split.sentences, fraction, seed, split.source)
    return Split(first, split.source), Split(second, split.source)


def load_corpus(ds, max_train: int | None = None, max_eval: int | None = None, cache_dir: str | Path = "outputs/cache") -> Corpus:
    """Read a dataset config (``conf/dataset/*.yaml``) into train/dev/test splits.

    BIO TSV (``format: conll``): a single training file with ``split`` set is cut into train/test
    by sentence with a fixed seed; without a dev file, ``dev_fraction`` of the training sentences
    is held out as dev. PubTator (``format: pubtator``): see ``load_pubtator``.
    """
    if ds.format == "pubtator":
        corpus = load_pubtator(ds, cache_dir)
    elif ds.format == "aio":
        from bioner_grid.aio import load_aio

        return load_aio(ds, cache_dir, max_train, max_eval)  # caps apply per member
    elif ds.format == "conll":
        corpus = load_conll(ds)
    else:
        raise DataError(f"dataset {ds.name}:0: unsupported format {ds.format!r} (conll, pubtator)")
    caps = {"train": max_train, "dev": max_eval, "test": max_eval}
    for name, cap in caps.items():
        if cap:
            corpus.splits[name].sentences = corpus.splits[name].sentences[: int(cap)]
    check_unseen_labels(corpus, ds)
    return corpus


def label_type(tag: str) -> str:
    """The entity type of an IOB2 tag (``B-Chemical`` -> ``Chemical``); ``O`` and ``O-Task`` as they are."""
    return tag[2:] if tag[:2] in ("B-", "I-") else tag


def _pubtator_line(path, tag: str, ds) -> int:
    """Line of the first annotation in a PubTator file whose type maps to ``tag``'s type (0 if none)."""
    from bioner_grid.pubtator import read_pubtator

    sources = set((ds.get("types") or {}).get(label_type(tag)) or [])
    docs, _ = read_pubtator(path)
    return next((a.line for d in docs for a in d.annotations if a.type in sources), 0)


def check_unseen_labels(corpus: Corpus, ds) -> None:
    """A dev or test label whose entity type training never saw stops the run: the model could never
    predict it, so its scores would be silently wrong. ``DataError`` at its first ``file:line``."""
    seen = {label_type(t) for s in corpus.splits["train"].sentences for t in s.tags}
    for name in ("dev", "test"):
        split = corpus.splits[name]
        for sent in split.sentences:
            for i, tag in enumerate(sent.tags):
                if label_type(tag) not in seen:
                    line = sent.lines[i] if sent.lines else _pubtator_line(split.source, tag, ds)
                    raise DataError(f"{split.source}:{line}: label {tag!r} does not occur in the training split")


def load_pubtator(ds, cache_dir) -> Corpus:
    """PubTator train/dev/test converted to BIO (cached); dev held out by document when not given:
    the last ``dev_documents`` of the training file, or ``dev_fraction`` of its documents."""
    from omegaconf import OmegaConf

    from bioner_grid.pubtator import cached_convert

    types = OmegaConf.to_container(ds.types, resolve=True)
    convert = lambda path: cached_convert(path, types, cache_dir)  # noqa: E731
    train = convert(ds.train)
    reports = [train.report]
    train_docs = train.documents
    if ds.get("test"):
        test = convert(ds.test)
        reports.append(test.report)
        test_docs = test.documents
    elif ds.get("split"):
        train_docs, test_docs = seeded_split(train_docs, float(ds.split), int(ds.split_seed), ds.train, "documents")
    else:
        raise DataError(f"{ds.train}:0: no test file given; set dataset.test=PATH or dataset.split=0.8")
    if ds.get("dev"):
        dev = convert(ds.dev)
        reports.append(dev.report)
        dev_docs = dev.documents
    elif ds.get("dev_documents"):
        n = int(ds.dev_documents)
        if not 0 < n < len(train_docs):
            raise DataError(f"{ds.train}:0: dev_documents={n} but the file has {len(train_docs)} documents")
        train_docs, dev_docs = train_docs[:-n], train_docs[-n:]
    else:
        train_docs, dev_docs = seeded_split(train_docs, 1.0 - float(ds.dev_fraction), int(ds.split_seed), ds.train, "documents")
    flat = lambda docs, source: Split([s for d in docs for s in d], str(source))  # noqa: E731
    return Corpus(ds.name, {"train": flat(train_docs, ds.train), "dev": flat(dev_docs, ds.get("dev") or ds.train),
                            "test": flat(test_docs, ds.get("test") or ds.train)}, reports)


def load_conll(ds) -> Corpus:
    train = read_conll(ds.train, ds.entity_type)
    test = read_conll(ds.test, ds.entity_type) if ds.get("test") else None
    if test is None:
        if not ds.get("split"):
            raise DataError(f"{ds.train}:0: no test file given; set dataset.test=PATH or dataset.split=0.8")
        train, test = _split_sentences(train, float(ds.split), int(ds.split_seed))
    dev = read_conll(ds.dev, ds.entity_type) if ds.get("dev") else None
    if dev is None:
        train, dev = _split_sentences(train, 1.0 - float(ds.dev_fraction), int(ds.split_seed))
    return Corpus(ds.name, {"train": train, "dev": dev, "test": test})


def check_root(root: str | Path) -> Path:
    """The data root must exist; say how to supply it when it does not."""
    path = Path(root).expanduser().resolve()
    if not path.is_dir():
        raise DataError(
            f"{path}:0: data root not found; pass data.root=PATH or set BIONER_DATA (default ../shared/datasets)"
        )
    return path


def entity_spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """Entities as (type, start, end-exclusive), IOB2; a stray I-X starts a new entity (conlleval)."""
    spans, start, etype = [], None, None
    for i, tag in enumerate(tags + ["O"]):
        continues = tag.startswith("I-") and start is not None and tag[2:] == etype
        if not continues and start is not None:
            spans.append((etype, start, i))
            start = None
        if tag[0] != "O" and not continues:  # O and AIONER's O-Task are outside
            start, etype = i, tag[2:]
    return spans


def split_stats(split: Split) -> dict:
    """Sentences, tokens, entities per type and the O/B/I class distribution of one split."""
    classes: Counter = Counter()
    entities: Counter = Counter()
    n_tokens = 0
    for sent in split.sentences:
        n_tokens += len(sent.tokens)
        classes.update(tag[0] for tag in sent.tags)
        entities.update(t for t, _, _ in entity_spans(sent.tags))
    return {
        "sentences": len(split.sentences),
        "tokens": n_tokens,
        "entities": dict(sorted(entities.items())),
        "classes": {c: classes.get(c, 0) for c in "OBI"},
        "class_pct": {c: 100.0 * classes.get(c, 0) / max(n_tokens, 1) for c in "OBI"},
        "iob_slips": len(split.iob_slips),
    }


def format_stats(corpus: Corpus) -> str:
    rows = ["split  sentences   tokens   %O     %B    %I    I-after-O  entities"]
    for name in SPLITS:
        s = split_stats(corpus.splits[name])
        ents = ", ".join(f"{t}={n}" for t, n in s["entities"].items())
        p = s["class_pct"]
        rows.append(
            f"{name:<6} {s['sentences']:>9} {s['tokens']:>8}  {p['O']:5.2f} {p['B']:5.2f} {p['I']:5.2f}"
            f"  {s['iob_slips']:>9}  {ents}"
        )
    return f"corpus {corpus.name}\n" + "\n".join(rows)


def main(argv: list[str]) -> int:
    from bioner_grid.config import compose

    from bioner_grid.schema import ConfigError, check_config

    cfg = compose(argv)
    try:
        check_config(cfg)
        check_root(cfg.data.root)
        corpus = load_corpus(cfg.dataset, cfg.data.max_train_sentences, cfg.data.max_eval_sentences, cfg.data.cache)
    except (DataError, ConfigError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from bioner_grid.pubtator import format_report

    for report in corpus.reports:
        print(format_report(report))
    print(format_stats(corpus))
    return 0


if __name__ == "__main__":
    from bioner_grid.cli import run

    sys.exit(run("data"))
