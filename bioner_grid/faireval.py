"""FairEval (Ortmann 2022, "Fine-grained error analysis and fair evaluation of labeled spans").

Traditional span evaluation counts a close-to-correct prediction twice (one FP and one FN).
FairEval counts every error once, as one of
- LE:  label error, same span, other label;
- BE:  boundary error, same label, overlapping span, with subtypes (system span vs target span)
       BES smaller, BEL larger, BEO overlapping on one side;
- LBE: label-and-boundary error, other label, overlapping span;
- FP / FN: what is left unmatched.

Matching follows the paper's order, per sentence: (1) identical spans (TP), then identical
boundaries with another label (LE); (2) boundary errors; (3) label-boundary errors; (4) the rest.
Steps 2 and 3 work on spans sorted by length and run three passes each: target vs system,
remaining targets vs already matched system spans that still have unmatched tokens, remaining
system spans vs already matched targets. Every span of a pass is looked at, in length order;
matched tokens are taken out of both spans, so a span can take part in a later pass only through
tokens nobody has matched yet.

Scores (counts c_e of error type e, weights w_e = {TP: a, FP: b, FN: c}):
    P = sum_e w_e.TP c_e / (sum_e w_e.TP c_e + sum_e w_e.FP c_e)
    R = sum_e w_e.TP c_e / (sum_e w_e.TP c_e + sum_e w_e.FN c_e)
    F1 = 2PR / (P + R)
traditional: TP, FP, FN with weight 1; fair: LE, BE, LBE each 0.5 FP + 0.5 FN; weighted:
``DEFAULT_WEIGHTS`` (the paper's) or any other weights per error type.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bioner_grid.corpus import DataError

BE_TYPES = ("BES", "BEL", "BEO")
FAIR_TYPES = ("TP", "FP", "LE", "BE", "LBE", "FN")
TRADITIONAL_WEIGHTS = {"TP": {"TP": 1}, "FP": {"FP": 1}, "FN": {"FN": 1}}
FAIR_WEIGHTS = {**TRADITIONAL_WEIGHTS, **{e: {"FP": 0.5, "FN": 0.5} for e in ("LE", "BE", "LBE")}}
# The paper's weights: LE = 0.5 FP + 0.5 FN, BES = 0.5 TP + 0.5 FN, BEL = 0.5 TP + 0.5 FP,
# BEO = 0.5 TP + 0.25 FP + 0.25 FN, LBE = 0.5 FP + 0.5 FN.
DEFAULT_WEIGHTS = {
    "LE": {"FP": 0.5, "FN": 0.5},
    "BES": {"TP": 0.5, "FN": 0.5},
    "BEL": {"TP": 0.5, "FP": 0.5},
    "BEO": {"TP": 0.5, "FP": 0.25, "FN": 0.25},
    "LBE": {"FP": 0.5, "FN": 0.5},
    **TRADITIONAL_WEIGHTS,
}


@dataclass
class Span:
    """A labelled span of 1-based token positions ``begin..end`` (inclusive) covering ``tokens``."""

    label: str
    begin: int
    end: int
    tokens: set[int] = field(default_factory=set)

    def __post_init__(self):
        if not self.tokens:
            self.tokens = set(range(self.begin, self.end + 1))


@dataclass
class Counts:
    """Error counts, overall and per label, plus the target x system confusion counts."""

    traditional: Counter = field(default_factory=Counter)
    fair: Counter = field(default_factory=Counter)
    traditional_by_label: dict[str, Counter] = field(default_factory=dict)
    fair_by_label: dict[str, Counter] = field(default_factory=dict)
    confusion: Counter = field(default_factory=Counter)  # (target label or "_", system label or "_")

    def add(self, kind: str, error: str, label: str) -> None:
        overall, by_label = (self.traditional, self.traditional_by_label) if kind == "traditional" else (self.fair, self.fair_by_label)
        overall[error] += 1
        by_label.setdefault(label, Counter())[error] += 1

    def update(self, other: "Counts") -> None:
        self.traditional.update(other.traditional)
        self.fair.update(other.fair)
        self.confusion.update(other.confusion)
        for mine, theirs in ((self.traditional_by_label, other.traditional_by_label), (self.fair_by_label, other.fair_by_label)):
            for label, c in theirs.items():
                mine.setdefault(label, Counter()).update(c)


def overlap_type(t: Span, s: Span) -> str | None:
    """How system span ``s`` relates to target span ``t``: TP (same boundaries), BES (inside t),
    BEL (contains t), BEO (overlaps one side), or None (disjoint)."""
    if (t.begin, t.end) == (s.begin, s.end):
        return "TP"
    if s.end < t.begin or s.begin > t.end:
        return None
    if s.begin >= t.begin and s.end <= t.end:
        return "BES"
    if s.begin <= t.begin and s.end >= t.end:
        return "BEL"
    return "BEO"


def _most_similar(a: Span, candidates: list[Span]) -> Span:
    """Most shared tokens, then fewest tokens only in ``a``, then only in the candidate, then the
    shortest; ties go to the first in list order."""
    return min(candidates, key=lambda b: (-len(a.tokens & b.tokens), len(a.tokens - b.tokens), len(b.tokens - a.tokens), b.end - b.begin))


def _pass(items: list[Span], pool: list[Span], fits, shared_only: bool, consume_pool: bool) -> list[tuple[Span, Span]]:
    """Match each span of ``items``, in order, with its most similar fitting span of ``pool``.

    Matched items leave ``items`` (and, with ``consume_pool``, matched spans leave ``pool``);
    the tokens they share are removed from both spans.
    """
    pairs = []
    for a in list(items):
        candidates = [b for b in pool if fits(a, b) and (not shared_only or a.tokens & b.tokens)]
        if not candidates:
            continue
        b = _most_similar(a, candidates)
        if consume_pool:
            pool.remove(b)
        items.remove(a)
        shared = a.tokens & b.tokens
        a.tokens = a.tokens - shared
        b.tokens = b.tokens - shared
        pairs.append((a, b))
    return pairs


def compare(target: list[Span], system: list[Span], focus: str = "target") -> Counts:
    """Traditional and fair counts of one sentence. ``focus`` (target | system) says whose label an
    LE or LBE is counted under; BE always counts under the target label."""
    if focus not in ("target", "system"):
        raise ValueError(f"focus must be target or system, got {focus!r}")
    c = Counts()
    for span in target + system:
        c.traditional_by_label.setdefault(span.label, Counter())
        c.fair_by_label.setdefault(span.label, Counter())
    for t in target:
        c.add("traditional", "TP" if t in system else "FN", t.label)
    for s in system:
        if s not in target:
            c.add("traditional", "FP", s.label)

    target = [Span(t.label, t.begin, t.end, set(t.tokens)) for t in target]
    system = [Span(s.label, s.begin, s.end, set(s.tokens)) for s in system]

    def count(error: str, t: Span, s: Span) -> None:
        if error in BE_TYPES:
            c.add("fair", "BE", t.label)
            c.add("fair", error, t.label)
        else:
            c.add("fair", error, t.label if focus == "target" else s.label)
        c.confusion[(t.label, s.label)] += 1

    # 1. 1:1 mappings: identical spans (TP), then identical boundaries with another label (LE).
    for t in [t for t in target if t in system]:
        s = next((s for s in system if s == t), None)
        if s is not None:
            c.add("fair", "TP", t.label)
            system.remove(s)
            target.remove(t)
    for t in [t for t in target if any(s.label != t.label and (s.begin, s.end) == (t.begin, t.end) for s in system)]:
        s = next((s for s in system if s.label != t.label and (s.begin, s.end) == (t.begin, t.end)), None)
        if s is not None:
            count("LE", t, s)
            system.remove(s)
            target.remove(t)

    # 2. boundary errors (same label), 3. label-boundary errors (other label); shortest spans first.
    target.sort(key=lambda x: x.end - x.begin)
    system.sort(key=lambda x: x.end - x.begin)
    matched_target: list[Span] = []
    matched_system: list[Span] = []
    for same_label in (True, False):
        def fits(t, s, same_label=same_label):
            return (t.label == s.label) == same_label and overlap_type(t, s) in BE_TYPES

        for t, s in _pass(target, system, fits, shared_only=False, consume_pool=True):
            count(overlap_type(t, s) if same_label else "LBE", t, s)
            matched_system.append(s)
            matched_target.append(t)
        for t, s in _pass(target, matched_system, fits, shared_only=True, consume_pool=False):
            count(overlap_type(t, s) if same_label else "LBE", t, s)
            matched_target.append(t)
        for s, t in _pass(system, matched_target, lambda s, t: fits(t, s), shared_only=True, consume_pool=False):
            count(overlap_type(t, s) if same_label else "LBE", t, s)
            matched_system.append(s)

    # 4. 1:0 and 0:1 mappings.
    for t in target:
        c.add("fair", "FN", t.label)
        c.confusion[(t.label, "_")] += 1
    for s in system:
        c.add("fair", "FP", s.label)
        c.confusion[("_", s.label)] += 1
    return c


def prf(counts: Counter, weights: dict[str, dict[str, float]]) -> tuple[float, float, float]:
    """Weighted precision, recall and F1 of ``counts`` (formulas in the module docstring); 0 when undefined."""
    tp = sum(w.get("TP", 0) * counts.get(e, 0) for e, w in weights.items())
    fp = sum(w.get("FP", 0) * counts.get(e, 0) for e, w in weights.items())
    fn = sum(w.get("FN", 0) * counts.get(e, 0) for e, w in weights.items())
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def evaluate(target_sentences: list[list[Span]], system_sentences: list[list[Span]], focus: str = "target") -> Counts:
    """Counts summed over sentence pairs."""
    if len(target_sentences) != len(system_sentences):
        raise ValueError(f"{len(target_sentences)} target sentences but {len(system_sentences)} system sentences")
    total = Counts()
    for t, s in zip(target_sentences, system_sentences):
        total.update(compare(t, s, focus))
    return total


def spans_from_bio(tags: list[str]) -> list[Span]:
    """Strict IOB2 spans (positions 1-based): B-X starts, I-X continues; a stray I-X is no entity
    (as in seqeval's strict mode)."""
    spans: list[Span] = []
    current: Span | None = None
    for i, tag in enumerate(tags, start=1):
        if current is not None and tag == f"I-{current.label}":
            current.end = i
            current.tokens.add(i)
            continue
        current = None
        if tag.startswith("B-"):
            current = Span(tag[2:], i, i)
            spans.append(current)
    return spans


def tables(counts: Counts, weights: dict[str, dict[str, float]] = DEFAULT_WEIGHTS) -> dict[str, list[dict]]:
    """The reference's three tables: rows per label (sorted) then ``overall``, counts and P/R/F1 in %."""
    layouts = {
        "traditional": (("TP", "FP", "FN"), TRADITIONAL_WEIGHTS, counts.traditional, counts.traditional_by_label),
        "fair": (FAIR_TYPES, FAIR_WEIGHTS, counts.fair, counts.fair_by_label),
        "weighted": (tuple(weights), weights, counts.fair, counts.fair_by_label),
    }
    out = {}
    for name, (columns, w, overall, by_label) in layouts.items():
        rows = []
        for label, c in [*sorted(by_label.items()), ("overall", overall)]:
            p, r, f = prf(c, w)
            rows.append({"label": label, **{k: c.get(k, 0) for k in columns}, "precision": 100 * p, "recall": 100 * r, "f1": 100 * f})
        out[name] = rows
    return out


def metrics(counts: Counts, prefix: str, weights: dict[str, dict[str, float]] = DEFAULT_WEIGHTS) -> dict[str, float]:
    """MLflow metrics: ``{prefix}_{fair|weighted}_{precision|recall|f1}`` (0..1) and the error counts."""
    out = {}
    for name, w in (("fair", FAIR_WEIGHTS), ("weighted", weights)):
        p, r, f = prf(counts.fair, w)
        out.update({f"{prefix}_{name}_precision": p, f"{prefix}_{name}_recall": r, f"{prefix}_{name}_f1": f})
    for error in ("TP", "FP", "FN", "LE", "BE", "BES", "BEL", "BEO", "LBE"):
        out[f"{prefix}_fair_{error}"] = counts.fair.get(error, 0)
    return out


EXCLUDED_LABELS = ("NONE", "EMPTY")  # placeholders for sentences without spans


def read_span_file(path) -> list[list[Span]]:
    """Read a FairEval span file: ``LABEL<TAB>BEGIN<TAB>END<TAB>TOKEN_INDICES`` per line (1-based,
    inclusive, indices comma-separated), an empty line between sentences; the placeholder labels
    NONE and EMPTY mark a sentence without spans. Problems raise ``DataError('file:line: problem')``."""
    sentences: list[list[Span]] = []
    current: list[Span] | None = None
    try:
        lines = Path(path).read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}:0: cannot read span file ({e.__class__.__name__})") from None
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            if current is not None:
                sentences.append(current)
                current = None
            continue
        current = [] if current is None else current
        fields = line.rstrip("\r").split("\t")
        if len(fields) != 4:
            raise DataError(f"{path}:{lineno}: expected 4 tab-separated fields (label, begin, end, tokens), found {len(fields)}")
        label, begin, end, tokens = fields
        if label in EXCLUDED_LABELS:
            continue
        try:
            b, e = int(begin), int(end)
            toks = {int(v) for v in tokens.split(",") if v.strip()}
        except ValueError:
            raise DataError(f"{path}:{lineno}: begin, end and token indices must be integers") from None
        if not label or b < 1 or e < b or any(not b <= i <= e for i in toks):
            raise DataError(f"{path}:{lineno}: bad span {label!r} {b}..{e} tokens {sorted(toks)}")
        current.append(Span(label, b, e, toks))
    if current is not None:
        sentences.append(current)
    return sentences
