"""BIO TSV corpora, the corpus loader, and corpus statistics.

BIO TSV (``token<TAB>tag``, a blank line between sentences) with typed (``B-Disease``) or bare
(``B``) IOB2 tags. Bare tags get the dataset's ``entity_type`` so that every label downstream is
typed. ``load_corpus`` reads any dataset config, picking the reader by its ``format``: this
module's for ``conll``, ``bioner_grid.pubtator``'s for ``pubtator``, ``bioner_grid.aio``'s for
``aio``; the corpus types they share live in ``bioner_grid.corpus``. Bad input stops with
``DataError("file:line: problem")`` before anything is trained or recorded.

``python -m bioner_grid.data dataset=<name>`` prints the corpus statistics (WeLT Tables 1 and 11)
and what ``data.overlap`` found (training units also in an evaluation split) and removed.
``python -m bioner_grid.data overlap dataset=<name>[,<name>...]`` prints the overlap matrix: how many
documents (PubTator) or sentences of 8+ tokens (BIO) of every test file occur in every training
file of the datasets (``dataset=aio``: all its members), each file once.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from bioner_grid import aio, pubtator, redact
from bioner_grid.overlap import MATRIX_MIN_TOKENS, Evaluation, Screen, Units, format_table, matrix
from bioner_grid.corpus import (
    SPLITS,
    Corpus,
    DataError,
    Sentence,
    Split,
    entity_spans,
    label_type,
    read_rows,
    seeded_split,
    typed_tag,
)


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


def _split_sentences(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    first, second = seeded_split(split.sentences, fraction, seed, split.source)
    return Split(first, split.source), Split(second, split.source)


def load_corpus(ds, max_train: int | None = None, max_eval: int | None = None, cache_dir: str | Path = "outputs/cache",
                overlap: str = "warn", extra: list[Evaluation] = (), take=None) -> Corpus:
    """Read a dataset config (``conf/dataset/*.yaml``) into train/dev/test splits.

    BIO TSV (``format: conll``): a single training file with ``split`` set is cut into train/test
    by sentence with a fixed seed; without a dev file, ``dev_fraction`` of the training sentences
    is held out as dev. PubTator (``format: pubtator``): see ``pubtator.load_pubtator``; all-in-one
    (``format: aio``): see ``aio.load_aio``. ``overlap`` (a run passes ``cfg.data.overlap``): what
    happens to training units also in an evaluation split (``bioner_grid.overlap``); the corpus's
    ``overlap`` says what was found. ``extra``: the test splits of other datasets the run also
    scores (``evaluation.extra_tests``), compared with training as its own test is. ``take``: a
    learning curve's subsample of the training units (``corpus.nested_subsample``), applied once
    the overlap is dropped and dev is held out, so dev is the same at every training size.
    """
    if ds.format == "pubtator":
        corpus = pubtator.load_pubtator(ds, cache_dir, overlap, extra, take)
    elif ds.format == "aio":
        return aio.load_aio(ds, cache_dir, max_train, max_eval, overlap, take)  # caps apply per member
    elif ds.format == "conll":
        corpus = load_conll(ds, overlap, extra, take)
    else:
        raise DataError(f"dataset {ds.name}:0: unsupported format {ds.format!r} (conll, pubtator)")
    caps = {"train": max_train, "dev": max_eval, "test": max_eval}
    for name, cap in caps.items():
        if cap:
            corpus.splits[name].sentences = corpus.splits[name].sentences[: int(cap)]
    check_unseen_labels(corpus, ds)
    return corpus


def check_unseen_labels(corpus: Corpus, ds) -> None:
    """A dev or test label whose entity type training never saw stops the run: the model could never
    predict it, so its scores would be silently wrong. ``DataError`` at its first ``file:line``."""
    seen = {label_type(t) for s in corpus.splits["train"].sentences for t in s.tags}
    for name in ("dev", "test"):
        split = corpus.splits[name]
        for sent in split.sentences:
            for i, tag in enumerate(sent.tags):
                if label_type(tag) not in seen:
                    line = sent.lines[i] if sent.lines else pubtator.annotation_line(split.source, label_type(tag), ds)
                    raise DataError(f"{split.source}:{line}: label {tag!r} does not occur in the training split")


def load_conll(ds, overlap: str = "warn", extra: list[Evaluation] = (), take=None) -> Corpus:
    """Training sentences also in test (or a dev file) are dropped, kept or refused (``overlap``)
    before dev is held out; those also in a held-out dev, after (``bioner_grid.overlap``)."""
    screen = Screen(overlap)
    train = read_conll(ds.train, ds.entity_type)
    test = read_conll(ds.test, ds.entity_type) if ds.get("test") else None
    test_source = ds.get("test")
    if test is None:
        if not ds.get("split"):
            raise DataError(f"{ds.train}:0: no test file given; set dataset.test=PATH or dataset.split=0.8")
        train, test = _split_sentences(train, float(ds.split), int(ds.split_seed))
        test_source = f"{ds.train} (test split)"
    dev = read_conll(ds.dev, ds.entity_type) if ds.get("dev") else None
    evaluations = [Evaluation("test", Units.of_sentences(test_source, test.sentences)), *extra]
    if dev is not None:
        evaluations.append(Evaluation("dev", Units.of_sentences(ds.dev, dev.sentences)))
    train.sentences = screen.apply(train.sentences, Units.of_sentences(ds.train, train.sentences), evaluations)
    if dev is None:
        train, dev = _split_sentences(train, 1.0 - float(ds.dev_fraction), int(ds.split_seed))
        held_out = Units.of_sentences(f"{ds.train} (held-out dev)", dev.sentences)
        train.sentences = screen.apply(train.sentences, Units.of_sentences(ds.train, train.sentences), [Evaluation("dev", held_out)])
    if take:  # after the hold-out: every training size of a learning curve is selected on the same dev
        train.sentences = take(train.sentences)
    return Corpus(ds.name, {"train": train, "dev": dev, "test": test}, overlap=screen)


# ---------------------------------------------------------------------------------------------
# Other datasets' test splits a run scores too (evaluation.extra_tests; the types: bioner_grid.cross)


@dataclass
class ExtraTest:
    """One extra test set (``evaluation.extra_tests``), read and mapped to the model's types."""

    name: str
    split: Split  # gold tags already in the model's types
    units: Units  # its documents (PubTator) or sentences (BIO), for the overlap check
    kept: set[str]  # the model types it annotates: predictions of any other type become O

    @property
    def evaluation(self) -> Evaluation:
        return Evaluation("test", self.units, cross=self.name)

    def restrict(self, tags: list[str]) -> list[str]:
        """Predicted tags with every type this test set does not annotate as ``O``."""
        return [t if t[:2] not in ("B-", "I-") or t[2:] in self.kept else "O" for t in tags]


def _mapped_types(split: Split, mapping: dict[str, str], name: str, ds) -> Split:
    """``split`` with each gold type renamed to the model's; ``DataError`` at the first tag of a type
    the configs did not declare (a BIO file with typed tags other than its ``entity_type``)."""
    sentences = []
    for sent in split.sentences:
        tags = []
        for i, tag in enumerate(sent.tags):
            kind = label_type(tag)
            if tag[:2] in ("B-", "I-"):
                if kind not in mapping:
                    line = sent.lines[i] if sent.lines else pubtator.annotation_line(split.source, kind, ds)
                    raise DataError(f"{split.source}:{line}: type {kind!r} of evaluation.extra_tests {name} maps to no "
                                    "type the model is trained on (set evaluation.type_map)")
                tag = f"{tag[:2]}{mapping[kind]}"
            tags.append(tag)
        sentences.append(Sentence(sent.tokens, tags, sent.lines))
    return Split(sentences, split.source, split.iob_slips)


def check_extra_labels(extra: list[ExtraTest], labels: list[str]) -> None:
    """Every gold label of an extra test set must be one the model has (a type the training split
    never holds cannot be predicted): ``DataError`` at its first ``file:line``."""
    known = set(labels)
    for e in extra:
        for sent in e.split.sentences:
            for i, tag in enumerate(sent.tags):
                if tag not in known:
                    line = sent.lines[i] if sent.lines else 0
                    raise DataError(f"{e.split.source}:{line}: label {tag!r} of evaluation.extra_tests {e.name} does "
                                    "not occur in the training split")


def load_extra_tests(plans, train_format: str, cache_dir, max_eval: int | None = None) -> list[ExtraTest]:
    """Read the extra test splits of a run (``cross.plan``: name, dataset config, type mapping),
    gold types renamed to the model's; ``max_eval`` (``data.max_eval_sentences``) caps each as it
    caps the run's own test, while its overlap units stay whole. A PubTator test set is compared
    with a BIO training file sentence by sentence (the file has no documents; its tokenisation may
    differ, so fewer copies are found), with a PubTator one document by document."""
    out = []
    for name, ds, mapping in plans:
        if ds.format == "conll":
            split = read_conll(ds.test, ds.entity_type)
            units = Units.of_sentences(ds.test, split.sentences)
        else:
            _, docs = pubtator.keyed_documents(ds.test, OmegaConf.to_container(ds.types, resolve=True), cache_dir)
            split = Split([s for _, sents in docs for s in sents], str(ds.test))
            units = (Units.of_sentences(ds.test, split.sentences) if train_format == "conll"
                     else pubtator.document_units(ds.test, docs))
        split = _mapped_types(split, mapping, name, ds)
        if max_eval:
            split.sentences = split.sentences[: int(max_eval)]
        out.append(ExtraTest(name, split, units, set(mapping.values())))
    return out


def check_root(root: str | Path) -> Path:
    """The data root must exist; say how to supply it when it does not."""
    path = Path(root).expanduser().resolve()
    if not path.is_dir():
        raise DataError(
            f"{path}:0: data root not found; pass data.root=PATH or set BIONER_DATA (default ../shared/datasets)"
        )
    return path


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


def file_units(path: str | Path, fmt: str) -> Units:
    """The units of a corpus file as ``overlap`` compares them: documents of a PubTator file (no
    conversion needed), sentences of a BIO TSV file."""
    if fmt == "conll":
        return Units.of_sentences(path, read_conll(path).sentences)
    return Units.of_documents(path, [(d.pmid, d.text) for d in pubtator.read_pubtator(path)[0]])


def file_label(path: str | Path, fmt: str) -> str:
    """A short name for a corpus file in the matrix: its folder (``NCBI-disease`` for
    ``conll/NCBI-disease/test.tsv``) or its PubTator name without the split (``BioRED``)."""
    path = Path(path)
    if fmt == "conll":
        return path.parent.name or path.stem
    name = path.stem
    for suffix in ("_revision", "_TrainDev", "_Train", "_Test", "_Dev"):
        name = name.removesuffix(suffix)
    return name


def corpus_files(ds) -> list[tuple[str, str, str]]:
    """(split, format, path) of every training and test file a dataset config names (an
    all-in-one corpus's: its members', ``only`` respected); a test cut from the training file has none."""
    fmt = "conll" if ds.format == "conll" else "pubtator"
    only = set(ds.get("only") or [])
    nodes = [m for m in ds.members if not only or m.name in only] if ds.format == "aio" else [ds]
    return [(split, fmt, str(node[split])) for node in nodes for split in ("train", "test") if node.get(split)]


def overlap_matrix(datasets) -> str:
    """The overlap matrix of the dataset configs' files (each file once), as a table."""
    files: dict[str, dict[str, tuple[str, str]]] = {"train": {}, "test": {}}  # split -> path -> (format, label)
    for ds in datasets:
        for split, fmt, path in corpus_files(ds):
            files[split].setdefault(str(Path(path).resolve()), (fmt, file_label(path, fmt)))
    units = {path: file_units(path, fmt) for split in files.values() for path, (fmt, _) in split.items()}

    def named(split):
        seen: dict[str, int] = {}
        out = []
        for path, (_, label) in files[split].items():
            seen[label] = seen.get(label, 0) + 1
            out.append((label if seen[label] == 1 else f"{label}#{seen[label]}", units[path]))
        return out

    rows = matrix(named("train"), named("test"))
    return ("overlap matrix: units of each test file also in each training file (PubTator: documents, by PMID or "
            f"normalised title + abstract; BIO: sentences of {MATRIX_MIN_TOKENS}+ tokens, by normalised text)\n"
            + format_table(rows))


def main(argv: list[str]) -> int:
    # The command line's own needs: the readers above stay below the configuration modules (tests/test_imports.py).
    from bioner_grid import spec
    from bioner_grid.config import compose

    if argv[:1] == ["overlap"]:  # the matrix; dataset=a,b,c compares several datasets' files
        chosen = [a for a in argv[1:] if a.startswith("dataset=")]
        rest = [a for a in argv[1:] if not a.startswith("dataset=")]
        names = [n.strip() for n in chosen[-1].split("=", 1)[1].strip("[]").split(",")] if chosen else [None]
        cfgs = [compose([*rest, *([f"dataset={n}"] if n else [])]) for n in names]
        for cfg in cfgs:
            spec.check(cfg)
        check_root(cfgs[0].data.root)
        print(redact.text(overlap_matrix([cfg.dataset for cfg in cfgs])))
        return 0
    cfg = compose(argv)  # ConfigError / DataError: one line, exit 2 (cli.run -> errors.guarded)
    spec.check(cfg)
    check_root(cfg.data.root)
    from bioner_grid import cross
    from bioner_grid.corpus import subsample_of

    extra = load_extra_tests(cross.plan(cfg), cfg.dataset.format, cfg.data.cache, cfg.data.max_eval_sentences)
    corpus = load_corpus(cfg.dataset, cfg.data.max_train_sentences, cfg.data.max_eval_sentences, cfg.data.cache,
                         cfg.data.overlap, [e.evaluation for e in extra],
                         subsample_of(cfg.data.train_fraction, cfg.data.train_documents, cfg.train.seed))
    for report in corpus.reports:
        print(redact.text(pubtator.format_report(report)))
    print(redact.text(format_stats(corpus)))
    print(redact.text(corpus.overlap.format()))
    return 0


if __name__ == "__main__":
    from bioner_grid.cli import run

    sys.exit(run("data"))
