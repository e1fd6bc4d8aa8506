"""The report's cross-corpus part: the train -> test matrix of each entity type (a table and a heatmap).

Runs that scored other datasets' test splits (``evaluation.extra_tests``, ``experiment=cross_corpus``)
carry ``cross/<dataset>/strict_f1`` beside their own ``test/strict_f1``. Per entity type (the
types a run's per-type test scores name: ``test_strict_Disease_f1``) and per model and scheme, a
matrix: one row per training corpus, one column per test set, the diagonal its own test; each
cell the mean strict (or default) F1 over seeds, ``± sd`` where there are several.

A cell is marked where the run found test units in its training data (``bioner_grid.overlap``'s
tags: ``overlap.test_in_train`` for its own test, ``overlap.cross.<dataset>.test_in_train`` for an
extra one): ``*`` when they were trained on (``data.overlap=warn``: that score is inflated), ``†``
when they were found and dropped from training (``drop``).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bioner_grid.report_figures import CELL_PT, _save, slug  # noqa: E402
from bioner_grid.runtable import finished, readable  # noqa: E402

CROSS = re.compile(r"^cross/(.+)/(strict_f1|default_f1)$")
TYPE = re.compile(r"^test_strict_(.+)_f1$")
TRAINED, DROPPED = "*", "†"
NOTE = (f"Rows: training corpus; columns: test set (the diagonal: the corpus's own test). {TRAINED} the training data "
        f"held test units of that column (data.overlap=warn: the score is inflated); {DROPPED} they were found and "
        "dropped from training (data.overlap=drop). Mean over seeds, ± sd (n) where there are several.")


def _extra_columns(df: pd.DataFrame, mode: str) -> dict[str, str]:
    """Test set -> the column of its score (``cross/<dataset>/strict_f1``), for ``mode``."""
    want = "strict_f1" if mode == "strict" else "default_f1"
    return {m.group(1): c for c in df.columns if (m := CROSS.match(c)) and m.group(2) == want}


def _types(row: pd.Series) -> str:
    """The entity types a run scored on its own test (``Disease``; ``Chemical, Disease``)."""
    return ", ".join(sorted(m.group(1) for c, v in row.items() if (m := TYPE.match(str(c))) and pd.notna(v)))


def _found(row: pd.Series, train: str, test: str) -> str:
    """``TRAINED``, ``DROPPED`` or "" for a run's training data against one test set."""
    tag = "overlap.test_in_train" if test == train else f"overlap.cross.{test}.test_in_train"
    value = row.get(tag)
    if not isinstance(value, str) or not value.split(" ")[0].isdigit() or int(value.split(" ")[0]) == 0:
        return ""
    return DROPPED if row.get("overlap.policy") == "drop" else TRAINED


def matrices(df: pd.DataFrame, mode: str = "strict") -> list[dict]:
    """Per (entity types, model, scheme) of the runs that scored extra test sets: ``types``,
    ``model``, ``scheme``, the ``trains`` and ``tests`` (corpora), all raw names (``readable`` gives
    their display names), and ``cells[train][test] = (mean, sd, n, mark)`` in F1 %."""
    extra = _extra_columns(df, mode)
    ok = finished(df)
    if not extra or ok.empty:
        return []
    ok = ok[ok[list(extra.values())].notna().any(axis=1)].copy()
    if ok.empty:
        return []
    ok["entity_types"] = ok.apply(_types, axis=1)
    own = "test_strict_f1" if mode == "strict" else "test_f1"
    out = []
    for (types, model, scheme), runs in ok.groupby(["entity_types", "model_name", "scheme"], sort=True):
        trains = sorted(set(runs["dataset"]))
        tests = trains + sorted({t for t, c in extra.items() if runs[c].notna().any()} - set(trains))
        cells: dict[str, dict[str, tuple]] = {}
        for train in trains:
            mine = runs[runs["dataset"] == train]
            for test in tests:
                column = own if test == train else extra.get(test)
                values = mine[column].dropna() * 100 if column in mine else pd.Series(dtype=float)
                if values.empty:
                    continue
                mark = next((m for m in (_found(r, train, test) for _, r in mine.iterrows()) if m), "")
                cells.setdefault(train, {})[test] = (values.mean(), values.std() if len(values) > 1 else 0.0,
                                                     len(values), mark)
        out.append({"types": types, "model": model, "scheme": scheme, "trains": trains, "tests": tests, "cells": cells})
    return out


def _text(cell) -> str:
    if cell is None:
        return "—"
    mean, sd, n, mark = cell
    return (f"{mean:.2f} ± {sd:.2f} (n={n})" if n > 1 else f"{mean:.2f}") + mark


def _heading(m: dict, model, scheme) -> str:
    """``Disease: MiniLM, WeLT``: a matrix's entity types, model and scheme (``readable``'s namers)."""
    return f"{m['types'] or 'all types'}: {model(m['model'])}, {scheme(m['scheme'])}"


def _title(m: dict, mode: str, model, scheme) -> str:
    return f"Cross-corpus {mode} F1 (%), {_heading(m, model, scheme)}"


def tables(df: pd.DataFrame, mode: str = "strict") -> list[tuple[str, list[str], list[list[str]], str]]:
    """(title, header, rows, note) of each train -> test matrix (``report.Table``'s fields)."""
    model, scheme, corpus = readable(df)
    return [(_title(m, mode, model, scheme), ["trained on → tested on", *map(corpus, m["tests"])],
             [[corpus(train), *(_text(m["cells"].get(train, {}).get(test)) for test in m["tests"])] for train in m["trains"]],
             NOTE) for m in matrices(df, mode)]


def figures(df: pd.DataFrame, out: Path, mode: str = "strict") -> list[tuple[Path, str]]:
    """A heatmap per matrix: F1 as colour (one scale, 0-100, so matrices compare), the value, its
    overlap mark and n (seeds) written in each cell; display names on the axes and in the title."""
    model, scheme, corpus = readable(df)
    images = []
    for m in matrices(df, mode):
        grid = np.array([[m["cells"].get(tr, {}).get(te, (math.nan,))[0] for te in m["tests"]] for tr in m["trains"]])
        # constrained layout: the colorbar and rotated corpus names fit whatever the matrix's size
        fig, ax = plt.subplots(figsize=(2.4 + 1.5 * len(m["tests"]), 1.6 + 0.7 * len(m["trains"])), layout="constrained")
        image = ax.imshow(np.ma.masked_invalid(grid), cmap="viridis", vmin=0, vmax=100, aspect="auto")
        ax.set_xticks(range(len(m["tests"])), [corpus(t) for t in m["tests"]], rotation=20, ha="right")
        ax.set_yticks(range(len(m["trains"])), [corpus(t) for t in m["trains"]])
        ax.set_xlabel("test set")
        ax.set_ylabel("trained on")
        for i, tr in enumerate(m["trains"]):
            for j, te in enumerate(m["tests"]):
                cell = m["cells"].get(tr, {}).get(te)
                if cell is not None:
                    ax.text(j, i, f"{cell[0]:.1f}{cell[3]}\nn={cell[2]}", ha="center", va="center",
                            color="white" if cell[0] < 60 else "black", fontsize=CELL_PT)
        fig.colorbar(image, ax=ax, label=f"{mode} F1 (%)")
        ax.set_title(_heading(m, model, scheme), fontsize=10)
        name = f"cross_{slug(m['types'] or 'all')}_{slug(m['model'])}_{slug(m['scheme'])}.png"
        caption = f"{_title(m, mode, model, scheme)}; n: seeds. {TRAINED}: test units in the training data; {DROPPED}: found and dropped."
        images.append((_save(fig, out / name), caption))
    return images
