"""What a run trains on that it is also scored on: found in every run, and dropped, kept or refused.

The readers compare the training units of a corpus with every evaluation split the run scores
(its test and dev; for the all-in-one corpus every member's test and every member's held-out dev).
A unit is a document in PubTator (compared by PMID and by title + abstract) and a sentence in BIO
TSV (compared by its text). Texts are compared lower-cased with whitespace collapsed, so a copy
under another PMID, or spaced differently, is found too.

``data.overlap`` says what happens to a training unit found in an evaluation split (its default is
``spec``'s rule: ``drop`` for the all-in-one corpus, ``warn`` elsewhere):

- ``drop``: it is removed from training, *before* dev is held out of the training file, so a copy of a
  corpus with test documents pasted into its training file trains exactly as the clean one. A dev
  split held out of training files is compared once it exists, after the hold-out;
- ``warn``: it is kept, and a warning says how many (the published splits stay as published);
- ``fail``: the run stops before anything is recorded:
  ``<train file>: N documents also in <eval file> (data.overlap=fail)`` (``DataError``, exit 2).

``Screen`` keeps what was found and removed; a run records it (tags ``overlap.*`` and the artifact
``overlap.json``, ``Screen.record``) and ``python -m bioner_grid.data`` prints it. ``matrix`` counts
the units each test file shares with each training file (``python -m bioner_grid.data overlap``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field

from bioner_grid.corpus import DataError, Sentence

POLICIES = ("drop", "warn", "fail")
# The overlap matrix counts BIO sentences of this many tokens or more: shorter ones ("Results .",
# "( ABSTRACT TRUNCATED AT 250 WORDS )") recur in any corpus and say nothing about a copied test set.
# Runs compare every sentence: a test sentence pasted into training is a copy whatever its length.
MATRIX_MIN_TOKENS = 8
log = logging.getLogger(__name__)
SAID: set[str] = set()  # the overlap lines this process has already logged (a sweep's later jobs log them at DEBUG)


def normalise(text: str) -> str:
    """``text`` lower-cased, runs of whitespace as one space, no leading or trailing space."""
    return " ".join(text.lower().split())


@dataclass
class Units:
    """The comparable units of one split: documents (PubTator) or sentences (BIO TSV)."""

    source: str  # the file (or a part of one, "x.tsv (held-out dev)") named in messages
    kind: str  # "documents" | "sentences"
    texts: list[str]  # normalised
    ids: list[str | None]  # PMIDs; None where the format has no id (BIO)
    where: list[str]  # how a user finds the unit: its PMID, or the line of a sentence's first token
    sizes: list[int] = field(default_factory=list)  # tokens of each sentence (BIO)

    @classmethod
    def of_documents(cls, source, documents: list[tuple[str, str]]) -> Units:
        """``documents``: (PMID, title + " " + abstract) of each document."""
        return cls(str(source), "documents", [normalise(text) for _, text in documents],
                   [pmid for pmid, _ in documents], [pmid for pmid, _ in documents])

    @classmethod
    def of_sentences(cls, source, sentences: list[Sentence]) -> Units:
        return cls(str(source), "sentences", [normalise(" ".join(s.tokens)) for s in sentences], [None] * len(sentences),
                   [str(s.lines[0]) if s.lines else f"sentence {i + 1}" for i, s in enumerate(sentences)],
                   [len(s.tokens) for s in sentences])

    def __len__(self) -> int:
        return len(self.texts)

    def found_in(self, other: Units) -> list[int]:
        """Indices of the units that ``other`` holds too: the same id, or the same normalised text."""
        ids = {i for i in other.ids if i is not None}
        texts = set(other.texts)
        return [k for k, (i, t) in enumerate(zip(self.ids, self.texts)) if t in texts or (i is not None and i in ids)]

    def at_least(self, tokens: int) -> Units:
        """Sentences of at least ``tokens`` tokens (documents as they are)."""
        if self.kind != "sentences":
            return self
        keep = [k for k, n in enumerate(self.sizes) if n >= tokens]
        return Units(self.source, self.kind, [self.texts[k] for k in keep], [self.ids[k] for k in keep],
                     [self.where[k] for k in keep], [self.sizes[k] for k in keep])


@dataclass
class Evaluation:
    """An evaluation split a run scores, for ``Screen.apply``."""

    split: str  # "test" | "dev"
    units: Units
    member: str | None = None  # the all-in-one member it scores
    cross: str | None = None  # the extra test set (evaluation.extra_tests: another dataset's test) it is


@dataclass
class Pair:
    """Training units of one file found in one evaluation split."""

    split: str
    train: str
    evaluation: str
    kind: str
    found: list[str]  # where each training unit found is (PMIDs, or lines of the training file)
    member: str | None = None  # the all-in-one member whose training units these are
    evaluation_member: str | None = None
    cross: str | None = None  # the extra test set (evaluation.extra_tests) the evaluation split is


class Screen:
    """Applies ``data.overlap`` to a corpus's training units as the reader assembles it, and keeps
    what it found: the pairs (training file, evaluation split), the training units removed, and the
    test units found in some training file (how much a test score under ``warn`` is inflated)."""

    def __init__(self, policy: str = "warn"):
        if policy not in POLICIES:  # spec.choice_problems refuses it first; a caller's slip is a bug
            raise ValueError(f"data.overlap={policy!r}: must be one of {', '.join(POLICIES)}")
        self.policy = policy
        self.pairs: list[Pair] = []
        self.removed: dict[str | None, int] = {}  # member (None: a single corpus) -> training units removed
        self.tests: dict[str | None, tuple[int, set[int]]] = {}  # member -> (test units, indices found in training)
        self.cross: dict[str, tuple[int, set[int]]] = {}  # extra test set -> (its units, indices found in training)

    def apply(self, items: list, units: Units, evaluations: list[Evaluation], member: str | None = None) -> list:
        """``items`` (the training file's documents or sentences, parallel to ``units``) without the
        ones found in ``evaluations`` under ``drop``, all of them under ``warn``; ``DataError`` at
        the first evaluation split they share anything with under ``fail``."""
        hit: set[int] = set()
        for ev in evaluations:
            found = units.found_in(ev.units)
            if ev.split == "test":
                tests = self.cross if ev.cross else self.tests
                total, seen = tests.setdefault(ev.cross or ev.member, (len(ev.units), set()))
                seen.update(ev.units.found_in(units))
            if not found:
                continue
            if self.policy == "fail":
                raise DataError(f"{units.source}: {len(found)} {units.kind} also in {ev.units.source} (data.overlap=fail)")
            self.pairs.append(Pair(ev.split, units.source, ev.units.source, units.kind, [units.where[k] for k in found],
                                   member, ev.member, ev.cross))
            message = f"{units.source}: {len(found)} {units.kind} also in {ev.units.source} (data.overlap={self.policy})"
            # Said once per process: the jobs of a local sweep load the same files again and again.
            level = logging.DEBUG if message in SAID else logging.INFO if self.policy == "drop" else logging.WARNING
            SAID.add(message)
            log.log(level, "%s", message)
            hit.update(found)
        if self.policy != "drop" or not hit:
            return items
        self.removed[member] = self.removed.get(member, 0) + len(hit)
        log.info("%s: %d training %s removed: they occur in an evaluation split (data.overlap=drop)",
                 units.source, len(hit), units.kind)
        return [item for k, item in enumerate(items) if k not in hit]

    def found(self, member: str | None, split: str, cross: str | None = None) -> int:
        """How many training units of ``member`` (None: of every member) were found in a ``split``
        (``test`` or ``dev``) evaluation split (``cross``: in that extra test set only; the run's own
        splits otherwise): distinct per training file and member, counted before anything is removed."""
        out: dict[tuple, set[str]] = {}
        for p in self.pairs:
            if p.split == split and (member is None or p.member == member) and p.cross == cross:
                out.setdefault((p.member, p.train), set()).update(p.found)
        return sum(len(v) for v in out.values())

    def members(self) -> list[str]:
        return sorted({m for m in [*self.tests, *self.removed, *(p.member for p in self.pairs)] if m is not None})

    def tags(self) -> dict[str, str]:
        """The run's ``overlap.*`` tags: per split the training units found (``overlap.train_test``,
        ``overlap.train_dev``), those removed, and the test units found in training
        (``overlap.test_in_train``, ``N of M``); an all-in-one corpus's per member too
        (``overlap.<member>.train_test``, …)."""
        tags = {"overlap.policy": self.policy}
        for prefix, member in [("overlap.", None), *((f"overlap.{m}.", m) for m in self.members())]:
            tags[f"{prefix}train_test"] = str(self.found(member, "test"))
            tags[f"{prefix}train_dev"] = str(self.found(member, "dev"))
            tags[f"{prefix}removed"] = str(sum(n for m, n in self.removed.items() if member is None or m == member))
            if member in self.tests:
                total, seen = self.tests[member]
                tags[f"{prefix}test_in_train"] = f"{len(seen)} of {total}"
        for name, (total, seen) in self.cross.items():  # extra test sets: the cross-corpus report marks these
            tags[f"overlap.cross.{name}.train_test"] = str(self.found(None, "test", name))
            tags[f"overlap.cross.{name}.test_in_train"] = f"{len(seen)} of {total}"
        return tags

    def summary(self) -> dict:
        """What was found and removed, listing the units: the run's ``overlap.json``."""
        return {"policy": self.policy, "pairs": [asdict(p) for p in self.pairs],
                "removed": {m or "": n for m, n in self.removed.items()},
                "test_in_train": {m or "": {"found": len(seen), "of": total} for m, (total, seen) in self.tests.items()},
                "cross_test_in_train": {m: {"found": len(seen), "of": total} for m, (total, seen) in self.cross.items()}}

    def record(self, run) -> None:
        """Record the tags and ``overlap.json`` on ``run`` (a ``store.OpenRun``)."""
        run.set_tags(self.tags())
        run.log_dict(self.summary(), "overlap.json")

    def format(self) -> str:
        """What ``python -m bioner_grid.data`` prints."""
        kind = self.pairs[0].kind if self.pairs else "units"
        removed = sum(self.removed.values())
        lines = [f"overlap (data.overlap={self.policy}): training {kind} also in a test split {self.found(None, 'test')}, "
                 f"in a dev split {self.found(None, 'dev')}; removed {removed}"]
        lines += [f"  {p.train}: {len(p.found)} {p.kind} also in {p.evaluation}"
                  + (f" ({p.member} training, {p.evaluation_member} {p.split})" if p.member else "") for p in self.pairs]
        tests = [f"{m or 'test'} {len(seen)} of {total}" for m, (total, seen) in [*self.tests.items(), *self.cross.items()]
                 if seen]
        if tests:
            lines.append("  test units also in training: " + ", ".join(tests))
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# The overlap matrix: every test file against every training file


def matrix(trains: list[tuple[str, Units]], tests: list[tuple[str, Units]]) -> list[list[str]]:
    """Rows of a table: per test file (named), how many of its units occur in each training file
    and in any of them (``N of M``); BIO sentences of ``MATRIX_MIN_TOKENS`` tokens or more only.
    Files of different formats (documents against sentences) are not compared: ``-``."""
    header = ["test \\ train", *(name for name, _ in trains), "in any train"]
    rows = [header]
    for name, test in tests:
        test = test.at_least(MATRIX_MIN_TOKENS)
        row, anywhere = [f"{name} ({len(test)} {test.kind})"], set()
        for _, train in trains:
            if train.kind != test.kind:
                row.append("-")
                continue
            found = test.found_in(train)
            anywhere.update(found)
            row.append(str(len(found)))
        rows.append([*row, f"{len(anywhere)} of {len(test)}"])
    return rows


def format_table(rows: list[list[str]]) -> str:
    """Rows as aligned plain-text columns (the first left-aligned, the others right-aligned)."""
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) if c == 0 else cell.rjust(w) for c, (cell, w) in enumerate(zip(r, widths)))
                     for r in rows)
