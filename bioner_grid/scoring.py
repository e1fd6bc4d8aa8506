"""Entity-level scoring of one split: seqeval's two modes, FairEval's counts, the WeLT mismatch types.

seqeval is called directly (the ``evaluate`` library's ``load`` would need the network).

Two modes, as in the WeLT paper:
- ``default``: conlleval-compatible; a stray ``I-X`` starts an entity;
- ``strict``: IOB2 spans must match exactly, prefix and type. seqeval's ``mode="strict"``
  silently falls back to default mode unless ``scheme`` is given, so it is always passed here.
"""

from __future__ import annotations

import warnings

from seqeval.metrics import classification_report
from seqeval.scheme import IOB2

from bioner_grid import faireval
from bioner_grid.faireval import overlap_type, spans_from_bio

MODES = ("default", "strict")


def score(gold: list[list[str]], pred: list[list[str]]) -> dict[str, dict]:
    """Micro P/R/F1 and per-type scores for both modes.

    Returns ``{"default": {...}, "strict": {...}}``, each with ``precision``, ``recall``, ``f1``,
    ``support`` and ``per_type`` (``{type: {precision, recall, f1, support}}``).
    """
    if len(gold) != len(pred) or any(len(g) != len(p) for g, p in zip(gold, pred)):
        raise ValueError("gold and predicted sequences differ in number or length")
    outside = lambda seqs: [["O" if t[0] == "O" else t for t in s] for s in seqs]  # noqa: E731 - AIONER's O-Task is O
    gold, pred = outside(gold), outside(pred)
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


MISMATCH_TYPES = {
    "type1": "predicted but not annotated",
    "type2": "annotated but missed",
    "type3": "predicted with an overlapping but wrong span (or label)",
}


def mismatch_examples(tokens: list[list[str]], gold: list[list[str]], pred: list[list[str]], limit: int) -> dict:
    """The WeLT paper's three mismatch types, counted over all sentences, with up to ``limit``
    examples each (sentence text, gold and predicted spans as ``[label, text, first, last]``)."""
    out = {k: {"description": d, "count": 0, "examples": []} for k, d in MISMATCH_TYPES.items()}

    def show(words, spans):
        return [[s.label, " ".join(words[s.begin - 1 : s.end]), s.begin, s.end] for s in spans]

    for words, g_tags, p_tags in zip(tokens, gold, pred, strict=True):
        g_spans, p_spans = spans_from_bio(g_tags), spans_from_bio(p_tags)
        found = []
        for p in p_spans:
            overlapping = [g for g in g_spans if overlap_type(g, p)]
            if not overlapping:
                found.append(("type1", p))
            elif p not in g_spans:
                found.append(("type3", p))
        found += [("type2", g) for g in g_spans if not any(overlap_type(g, p) for p in p_spans)]
        for kind, span in found:
            entry = out[kind]
            entry["count"] += 1
            if len(entry["examples"]) < limit:
                entry["examples"].append({"sentence": " ".join(words), "span": show(words, [span])[0],
                                          "gold": show(words, g_spans), "pred": show(words, p_spans)})
    return out


def score_split(split: str, gold: list[list[str]], pred: list[list[str]], focus: str = "target") -> dict[str, float]:
    """Every metric of one split (flat names, ``{split}_...``): seqeval default and strict, overall
    and per type (``flat_metrics``), and FairEval's counts and scores with errors counted under
    ``focus`` (``faireval.metrics``)."""
    metrics = flat_metrics(score(gold, pred), split)
    fair = faireval.evaluate([spans_from_bio(t) for t in gold], [spans_from_bio(t) for t in pred], focus)
    metrics.update(faireval.metrics(fair, split))
    return metrics
