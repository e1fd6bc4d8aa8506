"""Paired bootstrap significance of an F1 difference between two runs on the same test sentences.

Two systems A and B tag the same n sentences. Entity-level strict F1 (seqeval ``mode="strict"``,
IOB2: an entity is a ``B-X`` and the ``I-X`` that follow it; a stray ``I-X`` is no entity) is a
function of the summed true positives, false positives and false negatives,

    F1 = 2 TP / (2 TP + FP + FN)   (0 when the denominator is 0),

so each system is reduced once to per-sentence counts ``(tp, fp, fn)``. A bootstrap replicate draws
n sentences with replacement (the same draw for both systems: the test is paired), which is a
multinomial weight vector w over sentences; its counts are ``w @ counts`` and its difference is

    δ*_b = F1_B(w_b) − F1_A(w_b),   b = 1..B   (B = ``report.resamples``, 10,000 by default, seeded).

A configuration run with several seeds is compared as the mean F1 over its runs, each replicate
reweighting every run's sentences with the same w (the seeds share the test sentences).

Reported (in F1 points, i.e. ×100): the observed δ = F1_B − F1_A on the full set, the 95 % percentile
interval and the two-sided p-value, **both read off the same B replicates** so that they cannot
disagree. With the replicates sorted, δ*_(1) ≤ … ≤ δ*_(B), and j = ⌈αB/2⌉ (α = 0.05: j = 250 of 10,000):

    interval = [δ*_(j), δ*_(B+1−j)]
    p = min(1, 2 · min(#{b : δ*_b ≤ 0}, #{b : δ*_b ≥ 0}) / B)

This is the test obtained by inverting the percentile interval: the achieved significance level is
the smallest α whose percentile interval has 0 as an endpoint (Efron & Tibshirani 1993, *An
Introduction to the Bootstrap*, §15.4, "Relationship of hypothesis tests to confidence intervals",
and §16.4; Hall & Wilson 1991, "Two guidelines for bootstrap hypothesis testing", Biometrics 47,
on the same duality). With the order statistics above the duality is exact, ties at 0 included:
δ*_(j) > 0 ⟺ #{δ* ≤ 0} < j ⟺ #{δ* ≤ 0} < αB/2, and likewise at the upper end, so

    p < α  ⟺  0 ∉ interval.

The paired sentence bootstrap itself is Koehn (2004), "Statistical significance tests for machine
translation evaluation", EMNLP, and Berg-Kirkpatrick, Burkett & Klein (2012), "An empirical
investigation of statistical significance in NLP", EMNLP-CoNLL. Identical predictions give δ = 0,
interval [0, 0] and p = 1; a difference in every replicate gives p = 0, printed as p < 2/B.

``python -m bioner_grid.significance A.conll B.conll [--resamples 10000] [--seed 0]``, or two MLflow
run ids with ``--uri TRACKING_URI [--split test]`` (their ``predictions_{split}.conll`` artifacts);
the defaults are the report's (``report.resamples``, ``report.seed``), so the command prints the
numbers the report shows for the same pair.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import math
import re
import sys
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from bioner_grid.corpus import DataError, read_rows, typed_tag


@dataclass(frozen=True)
class Predictions:
    """One run's test predictions reduced to what the bootstrap needs."""

    counts: np.ndarray  # (n sentences, 3): tp, fp, fn under strict IOB2 matching
    fingerprint: str  # hash of the tokens and gold tags: two runs are paired only on the same sentences
    source: str


@dataclass(frozen=True)
class Result:
    delta: float  # F1_B − F1_A, F1 points
    low: float  # 95 % percentile interval of δ*, F1 points
    high: float
    p: float  # two-sided, from the same replicates as the interval: p < ALPHA exactly when 0 is outside it
    f1_a: float  # F1 points
    f1_b: float
    n: int  # sentences
    resamples: int

    @property
    def within_noise(self) -> bool:
        """The interval contains 0 (equivalently p ≥ 0.05): the data cannot tell the two systems apart."""
        return self.low <= 0.0 <= self.high


def p_text(p: float, resamples: int) -> str:
    """p as printed: four decimals, or ``< 2/B`` where no replicate crossed 0 (the bootstrap
    cannot resolve a smaller p)."""
    return f"< {2 / resamples:.2g}" if p == 0 else f"{p:.4f}"


def strict_spans(tags: list[str]) -> set[tuple[str, int, int]]:
    """Entities (type, start, end-exclusive) as seqeval's strict IOB2 mode finds them: a ``B-X`` and
    the ``I-X`` of the same type that follow it. An ``I-X`` that does not continue one is no entity;
    ``O`` and AIONER's ``O-Task`` are outside."""
    spans, start, etype = set(), None, None
    for i, tag in enumerate(list(tags) + ["O"]):
        if start is not None and tag.startswith("I-") and tag[2:] == etype:
            continue
        if start is not None:
            spans.add((etype, start, i))
            start = None
        if tag.startswith("B-"):
            start, etype = i, tag[2:]
    return spans


def sentence_counts(gold: list[list[str]], pred: list[list[str]]) -> np.ndarray:
    """(n, 3) int array of per-sentence strict tp, fp, fn (the plain loop; ``flat_counts`` is the
    vectorised equivalent that reading a file uses)."""
    out = np.zeros((len(gold), 3), dtype=np.int64)
    for i, (g, p) in enumerate(zip(gold, pred, strict=True)):
        gs, ps = strict_spans(g), strict_spans(p)
        tp = len(gs & ps)
        out[i] = (tp, len(ps) - tp, len(gs) - tp)
    return out


def f1(counts: np.ndarray) -> np.ndarray:
    """Micro F1 = 2TP / (2TP + FP + FN) over the last axis (tp, fp, fn); 0 where nothing is there."""
    tp, fp, fn = counts[..., 0], counts[..., 1], counts[..., 2]
    den = 2 * tp + fp + fn
    return np.divide(2 * tp, den, out=np.zeros(np.shape(den), dtype=float), where=den > 0)


TYPED = re.compile(r"O|O-.+|O@.+|[BI]-.+")  # what the pipeline writes (O-Task: all-in-one; O@member: multi-task); anything else takes the checking reader


def _entities(prefix: np.ndarray, etype: np.ndarray, sentence: np.ndarray, kinds: int) -> tuple[np.ndarray, np.ndarray]:
    """Strict IOB2 entities of flat tag arrays: (start, key) per entity, key = (start, end, type)
    encoded as one int (``kinds``: how many type codes there are, the same for gold and predictions,
    else their keys would not compare). A token continues the run before it when it is I-X after
    B-X/I-X of the same sentence; a run is an entity when it begins with B (a run begun by a stray I
    is none)."""
    n = len(prefix)
    prev = np.r_[False, (prefix[:-1] != "O") & (sentence[1:] == sentence[:-1]) & (etype[1:] == etype[:-1])]
    heads = np.flatnonzero(~((prefix == "I") & prev))
    ends = np.r_[heads[1:], n]
    entity = prefix[heads] == "B"
    start, end = heads[entity], ends[entity]
    return start, (start * (n + 1) + end) * kinds + etype[start]


def flat_counts(gold: list[str], pred: list[str], lengths: list[int]) -> np.ndarray:
    """(sentences, 3) strict tp, fp, fn per sentence from flat tag lists and sentence lengths."""
    sentence = np.repeat(np.arange(len(lengths)), lengths)
    vocab, codes = np.unique(np.array(gold + pred, dtype=object).astype(str), return_inverse=True)
    prefixes = np.array([t[0] if t[0] in "BI" else "O" for t in vocab])
    types, type_codes = np.unique([t[2:] if t[0] in "BI" else "" for t in vocab], return_inverse=True)
    g, p = codes[: len(gold)], codes[len(gold):]
    g_start, g_key = _entities(prefixes[g], type_codes[g], sentence, len(types))
    p_start, p_key = _entities(prefixes[p], type_codes[p], sentence, len(types))
    hit = np.isin(p_key, g_key)
    count = lambda starts: np.bincount(sentence[starts], minlength=len(lengths))  # noqa: E731
    tp = count(p_start[hit])
    return np.stack([tp, count(p_start) - tp, count(g_start) - tp], axis=1).astype(np.int64)


def _columns(path: Path) -> tuple[list[str], list[str], list[str], list[int]] | None:
    """Tokens, gold and predicted tags (flat) and sentence lengths of a well-formed file with typed
    tags, read with pandas' C parser; None for anything else (``read_predictions`` then reads it with
    the checks of ``bioner_grid.corpus.read_rows`` to name the file and line)."""
    try:
        table = pd.read_csv(path, sep="\t", header=None, dtype=str, quoting=csv.QUOTE_NONE, na_filter=False,
                            skip_blank_lines=False, encoding="utf-8", engine="c")
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError):
        return None
    if table.shape[1] != 3:
        return None
    cols = [table[i].str.strip().to_numpy() for i in range(3)]
    blank = (cols[0] == "") & (cols[1] == "") & (cols[2] == "")
    if ((cols[0] == "") | (cols[1] == "") | (cols[2] == ""))[~blank].any():
        return None
    tags = set(np.unique(cols[1][~blank])) | set(np.unique(cols[2][~blank]))
    if not all(TYPED.fullmatch(t) for t in tags):
        return None
    sentence = np.cumsum(blank)[~blank]  # a blank line ends a sentence
    lengths = np.unique(sentence, return_counts=True)[1].tolist()
    return [c[~blank].tolist() for c in cols] + [lengths]


def read_predictions(path: str | Path) -> Predictions:
    """A ``token<TAB>gold<TAB>pred`` file (blank line between sentences); bad input raises
    ``DataError('file:line: problem')``."""
    path = Path(path)
    columns = _columns(path)
    if columns is None:  # bare B/I tags, or bad input: the checking reader
        sentences = read_rows(path, 3)
        columns = ([f[0] for rows in sentences for _, f in rows],
                   [typed_tag(path, n, f[1], "Entity") for rows in sentences for n, f in rows],
                   [typed_tag(path, n, f[2], "Entity") for rows in sentences for n, f in rows],
                   [len(rows) for rows in sentences])
    tokens, gold, pred, lengths = columns
    gold, pred = [_outside(t) for t in gold], [_outside(t) for t in pred]
    digest = hashlib.sha256("\x1f".join(tokens).encode())
    digest.update("\x1f".join(gold).encode())
    digest.update(np.asarray(lengths, dtype=np.int64).tobytes())
    return Predictions(flat_counts(gold, pred, lengths), digest.hexdigest()[:16], str(path))


def _outside(tag: str) -> str:
    return "O" if tag.startswith("O") else tag


ALPHA = 0.05  # two-sided level: 95 % intervals, "p < 0.05"


@lru_cache(maxsize=2)
def resample_weights(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) float32: how often each of n sentences is drawn in each bootstrap replicate
    (n draws with replacement). The same for every pair of a corpus, so computed once per corpus."""
    rng = np.random.default_rng(seed)
    weights = np.empty((resamples, n), dtype=np.float32)  # counts < 2^24: exact
    for i in range(0, resamples, 100):
        rows = min(100, resamples - i)
        drawn = rng.integers(0, n, size=(rows, n)) + n * np.arange(rows)[:, None]
        weights[i : i + rows] = np.bincount(drawn.ravel(), minlength=rows * n).reshape(rows, n)
    weights.setflags(write=False)
    return weights


def measure(counts: np.ndarray, name: str = "f1") -> np.ndarray:
    """F1, precision TP / (TP + FP) or recall TP / (TP + FN) over the last axis (tp, fp, fn); 0 where
    the denominator is 0 (as seqeval)."""
    if name == "f1":
        return f1(counts)
    tp, other = counts[..., 0], counts[..., 1 if name == "precision" else 2]
    den = tp + other
    return np.divide(tp, den, out=np.zeros(np.shape(den), dtype=float), where=den > 0)


def order_index(resamples: int, alpha: float = ALPHA) -> int:
    """j = ⌈αB/2⌉, the 1-based rank of the interval's lower end (exact arithmetic: 0.05 · 10000 / 2
    is 250, not 250.00000000000003)."""
    return max(1, math.ceil(Fraction(str(alpha)) * resamples / 2))


def percentile_test(deltas: np.ndarray, alpha: float = ALPHA) -> tuple[float, float, float]:
    """(low, high, p) of bootstrap replicates δ*: the percentile interval [δ*_(j), δ*_(B+1−j)] and the
    two-sided p = min(1, 2 · min(#{δ* ≤ 0}, #{δ* ≥ 0}) / B) it inverts into (module docstring:
    Efron & Tibshirani 1993 §15.4), so that p < alpha exactly when 0 is outside the interval."""
    b = len(deltas)
    j = order_index(b, alpha)
    ordered = np.sort(deltas)
    low, high = float(ordered[j - 1]), float(ordered[b - j])
    p = min(1.0, 2 * min(int((deltas <= 0).sum()), int((deltas >= 0).sum())) / b)
    return low, high, p


class Bootstrap:
    """Paired bootstrap replicates of many runs on one set of sentences: each run's replicate counts
    (B, 3) are computed once (a (B, n) @ (n, 3) product) and any comparison between configurations
    (a run, or the runs of several seeds, averaged) then costs only the F1 of those counts. The
    report and the command both compare through this class, with the same B and seed."""

    def __init__(self, resamples: int = 10000, seed: int = 0):
        if resamples < 1000:
            raise ValueError(f"resamples must be at least 1000, got {resamples}")
        self.resamples, self.seed = resamples, seed
        self._drawn: dict[tuple[str, str], np.ndarray] = {}

    def replicates(self, pred: Predictions) -> np.ndarray:
        """(B, 3) tp, fp, fn of each replicate of one run (cached by its source and sentences)."""
        key = (pred.source, pred.fingerprint)
        if key not in self._drawn:
            weights = resample_weights(len(pred.counts), self.resamples, self.seed)
            self._drawn[key] = (weights @ pred.counts.astype(np.float32)).astype(np.float64)  # integer-valued
        return self._drawn[key]

    def values(self, runs: list[Predictions], name: str = "f1") -> tuple[float, np.ndarray]:
        """The observed measure of a configuration (mean over its runs, in points) and its B replicates."""
        observed = float(np.mean([measure(r.counts.sum(axis=0), name) for r in runs]))
        drawn = np.mean([measure(self.replicates(r), name) for r in runs], axis=0)
        return 100 * observed, 100 * drawn

    def compare(self, a: list[Predictions], b: list[Predictions], name: str = "f1") -> Result:
        """B against A (each one run or the runs of one configuration) on the same sentences:
        δ = B − A in points, its percentile interval and p from the same replicates."""
        first = a[0]
        for other in [*a, *b]:
            if other.fingerprint != first.fingerprint or len(other.counts) != len(first.counts):
                raise DataError(f"{other.source}:0: not the same test sentences and gold tags as {first.source} "
                                f"({len(other.counts)} vs {len(first.counts)} sentences)")
        if len(first.counts) == 0:
            raise ValueError("no sentences to resample")
        value_a, drawn_a = self.values(a, name)
        value_b, drawn_b = self.values(b, name)
        low, high, p = percentile_test(drawn_b - drawn_a)
        return Result(value_b - value_a, low, high, p, value_a, value_b, len(first.counts), self.resamples)


def paired_bootstrap(a: np.ndarray, b: np.ndarray, resamples: int = 10000, seed: int = 0) -> Result:
    """Paired bootstrap over sentences of per-sentence (tp, fp, fn) counts ``a`` and ``b`` (n, 3):
    δ = F1_b − F1_a, its 95 % percentile interval and two-sided p (see the module docstring)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 3:
        raise ValueError(f"paired counts must both be (n, 3); got {a.shape} and {b.shape}")
    return Bootstrap(resamples, seed).compare([Predictions(a, "counts", "a")], [Predictions(b, "counts", "b")])


def compare(a: Predictions, b: Predictions, resamples: int = 10000, seed: int = 0) -> Result:
    """Bootstrap two runs' predictions; they must be on the same sentences with the same gold."""
    return Bootstrap(resamples, seed).compare([a], [b])


def cached_predictions(path: str | Path, cache: Path | None) -> Predictions:
    """``read_predictions`` with the parsed counts kept as ``<cache>/<stem>.npz`` (stem: the caller's key)."""
    if cache is not None and cache.is_file():
        z = np.load(cache)
        return Predictions(z["counts"], str(z["fingerprint"]), str(z["source"]))
    pred = read_predictions(path)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, counts=pred.counts, fingerprint=pred.fingerprint, source=pred.source)
    return pred


def describe(r: Result) -> str:
    noise = " (within noise)" if r.within_noise else ""
    return (f"F1 A {r.f1_a:.2f}, B {r.f1_b:.2f}; ΔF1 (B − A) {r.delta:+.2f} points, 95% CI [{r.low:+.2f}, {r.high:+.2f}], "
            f"p {'= ' if r.p else ''}{p_text(r.p, r.resamples)}{noise}; {r.n} sentences, {r.resamples} paired bootstrap resamples")


def main(argv: list[str] | None = None) -> int:
    from bioner_grid.spec import ReportSchema  # the one place the defaults are written

    ap = argparse.ArgumentParser(prog="python -m bioner_grid.significance",
                                 description="Paired bootstrap of strict F1: B against A on the same test sentences.")
    ap.add_argument("a", help="predictions_test.conll of run A (token, gold, pred), or its run id with --uri")
    ap.add_argument("b", help="the same of run B")
    ap.add_argument("--uri", help="MLflow tracking URI: A and B are run ids")
    ap.add_argument("--split", default="test", choices=("test", "dev"), help="with --uri: which predictions")
    ap.add_argument("--resamples", type=int, default=ReportSchema.resamples,
                    help="bootstrap replicates (default: report.resamples, %(default)s, as the report)")
    ap.add_argument("--seed", type=int, default=ReportSchema.seed, help="default: report.seed, %(default)s")
    args = ap.parse_args(argv)
    paths = [args.a, args.b]
    if args.uri:  # mlflow (~1.3 s) only for run ids
        from bioner_grid.store import RunStore

        store = RunStore(args.uri, "")  # run ids name their experiment
        if store.missing():  # looking must not create an empty store
            print(f"error: --uri {store.shown}: no such tracking store", file=sys.stderr)
            return 2
        try:
            runs = [store.find_run(r) for r in paths]
        except LookupError as e:
            print(f"error: --uri {store.shown}: {e}", file=sys.stderr)
            return 2
        paths = [store.download(r.info.run_id, f"predictions_{args.split}.conll") for r in runs]
    try:
        r = compare(read_predictions(paths[0]), read_predictions(paths[1]), args.resamples, args.seed)
    except (DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(describe(r))
    return 0


if __name__ == "__main__":
    from bioner_grid.cli import run  # --help with examples, -v, as every command

    raise SystemExit(run("significance"))
