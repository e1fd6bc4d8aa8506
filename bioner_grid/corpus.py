"""The corpus types every reader produces and the small helpers the readers share.

A corpus is train/dev/test ``Split``s of ``Sentence``s (tokens and typed IOB2 tags). The readers,
peers that all import from here and never from each other's loader: ``data`` (BIO TSV, and
``load_corpus``, which picks a reader by the dataset's ``format``), ``pubtator`` (PubTator to BIO)
and ``aio`` (AIONER's all-in-one merge of PubTator corpora). Column files scored or tagged outside
a corpus (``evaluate``, ``significance``, ``tag``) use ``read_rows`` and ``typed_tag`` too.

Bad input stops with ``DataError("file:line: problem")`` before anything is trained or recorded.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable

from bioner_grid.errors import DataError  # noqa: F401 (bad input data; the message is ``file:line: problem``)

SPLITS = ("train", "dev", "test")


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


class Adapter:
    """What a kind of corpus changes in a run, as hooks every stage calls whatever the corpus: the
    pipeline (tokenizer, run tags, scoring), the saved model (``bundle``) and the tagger. This
    plain adapter, a single corpus's, changes nothing; ``aio.AllInOne`` (AIONER's all-in-one
    corpus) adds task tags and scores each member on its task."""

    special_tokens: tuple[str, ...] = ()  # tokens the tokenizer must learn (task tags such as <Disease>)
    head: str | None = None  # an output head of its own around the model (heads.WRAPPERS; aio.MultiTask: mtl)

    def prepare_tokenizer(self, tokenizer) -> None:
        """Teach the tokenizer the corpus's ``special_tokens`` (none here)."""

    def run_tags(self) -> dict[str, str]:
        """Tags the run records beside the grid's."""
        return {}

    def tasks(self) -> dict[str, list[str]]:
        """Task -> the entity types it tags (saved with the model for the tagger)."""
        return {}

    def member_views(self, split: str, tokens, gold, pred) -> dict[str, tuple[list, list, list]]:
        """Member corpus -> (tokens, gold, pred) of its sentences as it is scored on its own."""
        return {}

    def scored_view(self, tokens, gold, pred) -> tuple[list, list, list]:
        """The whole split as it is scored and its errors analysed."""
        return tokens, gold, pred

    def passes(self, asked: set[str], every: bool, mode: str = "auto") -> list[tuple[str | None, set[str]]]:
        """(task, types kept) per pass of the tagger over new text (``every``: all the model's
        types asked; ``mode``: ``tag.mode``, which only a model with tasks has): one pass, no task."""
        return [(None, asked)]

    def wrap(self, sentence: "Sentence", task: str | None) -> "Sentence":
        """A sentence as the model reads it in ``task``."""
        return sentence

    def unwrap(self, tokens: list[str], tags: list[str]) -> list[str]:
        """The predicted tags of the sentence's own words, as plain IOB2."""
        return tags

    def types(self, labels: list[str]) -> list[str]:
        """The entity types a model with ``labels`` tags."""
        return sorted({label[2:] for label in labels if label[:2] in ("B-", "I-")})


@dataclass
class Corpus:
    name: str
    splits: dict[str, Split]
    reports: list[dict] = field(default_factory=list)  # conversion reports (PubTator input)
    adapter: Adapter = field(default_factory=Adapter)  # aio.AllInOne for AIONER's all-in-one corpora
    overlap: object = None  # an overlap.Screen: training units also in an evaluation split, and what was done

    @property
    def labels(self) -> list[str]:
        """All labels of all splits: ``O`` (and AIONER's ``O-Task`` labels, or a multi-task merge's
        ``O@<member>``) first, then ``B-T``/``I-T``
        per type, sorted by type."""
        tags = {tag for s in self.splits.values() for sent in s.sentences for tag in sent.tags}
        outside = sorted(t for t in tags if t[0] == "O" and t != "O")  # O-Task; O@<member> (aio.MultiTask)
        types = sorted({t[2:] for t in tags if t[:2] in ("B-", "I-")})
        return (["O"] if "O" in tags or not outside else []) + outside + [f"{p}-{t}" for t in types for p in ("B", "I")]


MEMBER_SEP = "@"  # a multi-task label (aio.MultiTask): "<IOB2 tag>@<member>", "B-Disease@NCBIdisease", "O@BioRED"


def in_member(tag: str, member: str) -> str:
    """A multi-task label: the tag in its member's output layer."""
    return f"{tag}{MEMBER_SEP}{member}"


def member_of(label: str) -> str:
    """The member corpus of a multi-task label (``B-Disease@NCBIdisease`` -> ``NCBIdisease``)."""
    return label.rpartition(MEMBER_SEP)[2]


def unsuffixed(tag: str) -> str:
    """The plain IOB2 tag of a multi-task label (``B-Disease@NCBIdisease`` -> ``B-Disease``); any other tag as it is."""
    return tag.partition(MEMBER_SEP)[0]


def _check_tag(tag: str, entity_type: str) -> str | None:
    """Return the typed IOB2 tag, or None when ``tag`` is not one."""
    if tag == "O" or (tag.startswith("O-") and len(tag) > 2):  # O-Task: AIONER's outside-of-this-task
        return tag
    if tag in ("B", "I"):
        return f"{tag}-{entity_type}"
    if len(tag) > 2 and tag[0] in "BI" and tag[1] == "-":
        return tag
    return None


def typed_tag(path, lineno: int, tag: str, entity_type: str) -> str:
    """The typed IOB2 tag, or ``DataError`` naming file and line."""
    typed = _check_tag(tag, entity_type)
    if typed is None:
        raise DataError(f"{path}:{lineno}: tag {tag!r} is not IOB2 (expected O, B, I, B-<type> or I-<type>)")
    return typed


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


def seeded_split(items: list, fraction: float, seed: int, source, what: str = "sentences") -> tuple[list, list]:
    """``items`` (sentences or documents) split ``fraction`` / ``1 - fraction`` after a seeded
    shuffle; each part keeps the file order."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    cut = round(len(order) * fraction)
    if cut == 0 or cut == len(order):
        raise DataError(f"{source}:0: {len(order)} {what} cannot be split at {fraction}")
    return [items[i] for i in sorted(order[:cut])], [items[i] for i in sorted(order[cut:])]


def nested_subsample(items: list, seed: int, fraction: float | None = None, count: int | None = None,
                     source="training split", what: str = "documents") -> list:
    """The first ``count`` items (or ``round(fraction * len(items))``, at least 1) of a permutation of
    ``items`` seeded by ``seed`` alone, in file order: a learning curve's training subsample
    (``data.train_fraction`` / ``data.train_documents``). The permutation does not depend on the
    size asked for, so for one seed the subsamples are nested: 10% ⊂ 25% ⊂ 50% ⊂ 100%."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    n = int(count) if count is not None else max(1, round(len(order) * float(fraction)))
    if n > len(order):
        raise DataError(f"{source}:0: data.train_documents={n} but the training split has {len(order)} {what}")
    return [items[i] for i in sorted(order[:n])]


def subsample_of(fraction: float | None, count: int | None, seed: int):
    """``nested_subsample`` with a run's ``data.train_fraction`` / ``data.train_documents`` and seed,
    for the readers' ``take``; None when neither is set (the whole training split)."""
    if fraction is None and count is None:
        return None
    return lambda items: nested_subsample(items, int(seed), fraction, count)


def label_type(tag: str) -> str:
    """The entity type of an IOB2 tag (``B-Chemical`` -> ``Chemical``); ``O`` and ``O-Task`` as they are."""
    return tag[2:] if tag[:2] in ("B-", "I-") else tag


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


def write_atomic(path: str | Path, write: Callable[[IO], None], binary: bool = False, mode: int = 0o666) -> None:
    """``write(f)`` into a temporary file beside ``path``, then rename it over ``path``: a killed
    job or a failed write leaves no half file (the temporary one is removed), and a reader beside
    it sees the whole file or none. The file gets the user's umask (0644 by default), as any other
    tool's output, not ``mkstemp``'s 0600; a symlink at ``path`` is replaced, never followed.
    ``mode``: the permissions before the umask (caches pass 0o644: never group-writable, ``cachedir``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:  # mkstemp's unique name, but opened with 0o666 so that the kernel applies the umask
        tmp = path.parent / f".{path.name}.{os.getpid()}.{os.urandom(6).hex()}.part"  # not random: it would shift seeded runs
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
            break
        except FileExistsError:
            continue
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
