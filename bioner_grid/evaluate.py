"""Entity-level scoring with seqeval, called directly (``evaluate.load`` would need the network).

Two modes, as in the WeLT paper:
- ``default``: conlleval-compatible; a stray ``I-X`` starts an entity;
- ``strict``: IOB2 spans must match exactly, prefix and type. seqeval's ``mode="strict"``
  silently falls back to default mode unless ``scheme`` is given, so it is always passed here.
"""

from __future__ import annotations

import warnings

from seqeval.metrics import classification_report
from seqeval.scheme import IOB2

MODES = ("default", "strict")


def score(gold: list[list[str]], pred: list[list[str]]) -> dict[str, dict]:
    """Micro P/R/F1 and per-type scores for both modes.

    Returns ``{"default": {...}, "strict": {...}}``, each with ``precision``, ``recall``, ``f1``,
    ``support`` and ``per_type`` (``{type: {precision, recall, f1, support}}``).
    """
    if len(gold) != len(pred) or any(len(g) != len(p) for g, p in zip(gold, pred)):
        raise ValueError("gold and predicted sequences differ in number or length")
    out = {}
    for mode in MODES:
        kwargs = {"mode": "strict", "scheme": IOB2} if mode == "strict" else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # zero-division warnings: seqeval returns 0.0, which is what we report
            report = classification_report(gold, pred, output_dict=True, zero_division=0, **kwargs)
        per_type = {
            t: _row(r) for t, r in report.items() if t not in ("micro avg", "macro avg", "weighted avg")
        }
        micro = _row(report["micro avg"]) if "micro avg" in report else {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
        out[mode] = {**micro, "per_type": per_type}
    return out


def _row(r: dict) -> dict:
    return {"precision": float(r["precision"]), "recall": float(r["recall"]), "f1": float(r["f1-score"]), "support": int(r["support"])}


def flat_metrics(scores: dict[str, dict], prefix: str) -> dict[str, float]:
    """MLflow-ready metrics: ``{prefix}_{p|r|f1}`` (default mode), ``{prefix}_strict_...`` and per type."""
    metrics = {}
    for mode, s in scores.items():
        tag = prefix if mode == "default" else f"{prefix}_{mode}"
        for key in ("precision", "recall", "f1"):
            metrics[f"{tag}_{key}"] = s[key]
        for etype, r in s["per_type"].items():
            metrics[f"{tag}_{etype}_f1"] = r["f1"]
    return metrics
