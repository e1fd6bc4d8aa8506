"""Class counts and the WeLT paper's loss-weighting schemes.

Counts are taken over training words (one label per word) and grouped into the WeLT classes
O/B/I by tag prefix, so a multi-type label set (B-Chemical, B-Disease, ...) works: every B-* label
gets w_B. With ``per_label`` each label is counted and weighted on its own.

The weights become ``CrossEntropyLoss(weight=...)``. Its mean reduction divides by the summed
weights of the targets, so multiplying every weight by one constant changes nothing; the formulas
below are therefore used as printed in their papers, without normalisation.
"""

from __future__ import annotations

import math
from collections import Counter

from bioner_grid.corpus import Sentence

WELT_CLASSES = ("O", "B", "I")


def welt_class(label: str) -> str:
    """O, B or I: the WeLT class of an IOB2 label."""
    return label[0]


def count_classes(sentences: list[Sentence], labels: list[str], per_label: bool = False) -> dict[str, int]:
    """n_x per WeLT class (O/B/I) or, with ``per_label``, per label of ``labels``."""
    counts = Counter(tag for s in sentences for tag in s.tags)
    if per_label:
        return {label: counts.get(label, 0) for label in labels}
    grouped = Counter()
    for label, n in counts.items():
        grouped[welt_class(label)] += n
    return {c: grouped.get(c, 0) for c in WELT_CLASSES}


def _check(counts: dict[str, int]) -> None:
    empty = [k for k, n in counts.items() if n <= 0]
    if empty:
        raise ValueError(f"classes without training tokens cannot be weighted: {', '.join(empty)}")


def ins(counts: dict[str, int]) -> dict[str, float]:
    """Inverse number of samples: w_x = 1 / n_x."""
    _check(counts)
    return {k: 1.0 / n for k, n in counts.items()}


def isns(counts: dict[str, int]) -> dict[str, float]:
    """Inverse square root of number of samples: w_x = 1 / sqrt(n_x)."""
    _check(counts)
    return {k: 1.0 / math.sqrt(n) for k, n in counts.items()}


def ens(counts: dict[str, int], beta: float) -> dict[str, float]:
    """Effective number of samples (Cui et al. 2019): w_x = (1 - beta) / (1 - beta^n_x).

    For beta <= 0.9 and any real corpus beta^n_x underflows to 0, so every w_x = 1 - beta:
    the weights are uniform and the loss is vanilla cross-entropy.
    """
    _check(counts)
    if not 0.0 <= beta < 1.0:
        raise ValueError(f"ENS beta must be in [0, 1), got {beta}")
    return {k: (1.0 - beta) / (1.0 - beta**n) for k, n in counts.items()}


def welt(counts: dict[str, int]) -> dict[str, float]:
    """WeLT: w_x = 1 - n_x / N over the classes, then softmax: W = softmax(w)."""
    total = sum(counts.values())
    raw = {k: 1.0 - n / total for k, n in counts.items()}
    top = max(raw.values())
    exp = {k: math.exp(v - top) for k, v in raw.items()}
    z = sum(exp.values())
    return {k: v / z for k, v in exp.items()}


def scheme_weights(kind: str, counts: dict[str, int], beta: float | None = None) -> dict[str, float] | None:
    """Weights of scheme ``kind`` (vanilla | ins | isns | ens | welt); None for vanilla."""
    if kind == "vanilla":
        return None
    if kind == "ins":
        return ins(counts)
    if kind == "isns":
        return isns(counts)
    if kind == "ens":
        if beta is None:
            raise ValueError("scheme kind 'ens' needs scheme.beta")
        return ens(counts, float(beta))
    if kind == "welt":
        return welt(counts)
    raise ValueError(f"unknown weighting scheme kind {kind!r} (vanilla, ins, isns, ens, welt)")


def is_degenerate(weights: dict[str, float] | None, rel_tol: float = 1e-9) -> bool:
    """True when every weight is the same: the scheme is then plain (vanilla) cross-entropy."""
    if not weights:
        return False
    values = list(weights.values())
    return all(math.isclose(v, values[0], rel_tol=rel_tol) for v in values)


def label_weights(weights: dict[str, float], labels: list[str], per_label: bool = False) -> list[float]:
    """Weight vector indexed like ``labels`` (the model's label ids), matched by name, never by position."""
    key = (lambda label: label) if per_label else welt_class
    missing = sorted({key(label) for label in labels} - set(weights))
    if missing:
        raise ValueError(f"no weight for {', '.join(missing)}")
    return [weights[key(label)] for label in labels]
