"""``python -m bioner_grid.evaluate GOLD [PRED] [--format tsv|md|json]`` (``bioner-grid-evaluate``):
scores any tagger's output, BIO columns or FairEval span files, with the library in ``scoring``
and ``faireval``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bioner_grid import errors, faireval
from bioner_grid.corpus import DataError, read_rows, typed_tag
from bioner_grid.faireval import read_span_file
from bioner_grid.scoring import score


def _is_span_file(path) -> bool:
    """Whether the first non-empty line is a span (LABEL, BEGIN, END, TOKENS); a missing file is
    not, and the reader that follows reports it."""
    if not Path(path).is_file():
        return False
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            if line.strip():
                fields = line.rstrip("\n").split("\t")
                return len(fields) == 4 and fields[1].strip().lstrip("-").isdigit()
    return False


def _bio_column(path, column: str) -> tuple[list[list[str]], list[list[str]], list[list[int]]]:
    """Tokens, typed tags and line numbers of a CoNLL file: ``token tag`` or ``token gold pred``
    (``column`` picks gold or pred from the latter)."""
    try:
        sentences = read_rows(path, 3)
        index = 1 if column == "gold" else 2
    except DataError as e:
        if "expected 3" not in str(e):
            raise
        sentences, index = read_rows(path, 2), 1
    tokens = [[f[0] for _, f in rows] for rows in sentences]
    tags = [[typed_tag(path, n, f[index], "Entity") for n, f in rows] for rows in sentences]
    return tokens, tags, [[n for n, _ in rows] for rows in sentences]


def load_pair(gold_path, pred_path=None):
    """Gold and predicted input: two span files, two BIO files with the same tokens, or one
    ``token gold pred`` file. Returns ``(kind, gold, pred)`` with kind "bio" (tag lists) or "spans"."""
    if pred_path is not None and _is_span_file(gold_path) and _is_span_file(pred_path):
        gold, pred = read_span_file(gold_path), read_span_file(pred_path)
        if len(gold) != len(pred):
            raise DataError(f"{pred_path}:0: {len(pred)} sentences, but {gold_path} has {len(gold)}")
        return "spans", gold, pred
    g_tokens, gold, g_lines = _bio_column(gold_path, "gold")
    if pred_path is None:
        return "bio", gold, _bio_column(gold_path, "pred")[1]
    p_tokens, pred, p_lines = _bio_column(pred_path, "pred")
    for i, (gt, pt) in enumerate(zip(g_tokens, p_tokens)):
        if len(gt) != len(pt):
            raise DataError(f"{pred_path}:{p_lines[i][0]}: sentence {i + 1} has {len(pt)} tokens, but {len(gt)} in {gold_path}:{g_lines[i][0]}")
        for j, (a, b) in enumerate(zip(gt, pt)):
            if a != b:
                raise DataError(f"{pred_path}:{p_lines[i][j]}: token {b!r} differs from {a!r} at {gold_path}:{g_lines[i][j]}")
    if len(g_tokens) != len(p_tokens):
        raise DataError(f"{pred_path}:0: {len(p_tokens)} sentences, but {gold_path} has {len(g_tokens)}")
    return "bio", gold, pred


def _fmt(value) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def render(sections: dict[str, list[dict]], fmt: str) -> str:
    """Tables as the FairEval reference prints them (tsv), as Markdown, or as JSON."""
    if fmt == "json":
        return json.dumps(sections, indent=2)
    out = []
    for title, rows in sections.items():
        columns = list(rows[0])
        header = ["Label" if c == "label" else {"precision": "Prec", "recall": "Rec", "f1": "F1"}.get(c, c) for c in columns]
        values = [[_fmt(r[c]) for c in columns] for r in rows]
        if fmt == "md":
            out += [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            out += ["| " + " | ".join(v) + " |" for v in values]
        else:
            out += [f"### {title}:"] + ["\t".join(header)] + ["\t".join(v) for v in values]
        out.append("")
    return "\n".join(out)


def all_tables(kind: str, gold, pred, focus: str = "target") -> dict[str, list[dict]]:
    """seqeval (BIO input only) and FairEval tables, percentages with two decimals."""
    sections = {}
    if kind == "bio":
        for mode, s in score(gold, pred).items():
            rows = [{"label": t, "precision": 100 * r["precision"], "recall": 100 * r["recall"], "f1": 100 * r["f1"], "support": r["support"]}
                    for t, r in sorted(s["per_type"].items())]
            rows.append({"label": "overall", "precision": 100 * s["precision"], "recall": 100 * s["recall"], "f1": 100 * s["f1"], "support": s["support"]})
            sections[f"seqeval {mode} evaluation"] = rows
        gold = [faireval.spans_from_bio(t) for t in gold]
        pred = [faireval.spans_from_bio(t) for t in pred]
    counts = faireval.evaluate(gold, pred, focus)
    for name, rows in faireval.tables(counts).items():
        sections[f"{name.title()} evaluation"] = rows
    return sections


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bioner-grid-evaluate", description=(  # or python -m bioner_grid.evaluate
        "Score any tagger's output: seqeval default/strict and FairEval traditional/fair/weighted. "
        "Inputs: GOLD PRED as two BIO files (token tag) with the same tokens, two FairEval span files, "
        "or one file with columns token gold pred."))
    ap.add_argument("gold")
    ap.add_argument("pred", nargs="?")
    ap.add_argument("--format", choices=("tsv", "md", "json"), default="tsv")
    ap.add_argument("--focus", choices=("target", "system"), default="target",
                    help="whose label a label error (LE, LBE) is counted under")
    a = ap.parse_args(argv)
    try:
        kind, gold, pred = load_pair(a.gold, a.pred)
    except DataError as e:
        return errors.fail(e).code  # one line, exit 2
    print(render(all_tables(kind, gold, pred, a.focus), a.format))
    return 0


if __name__ == "__main__":
    from bioner_grid.cli import run

    raise SystemExit(run("evaluate"))
