"""The report's learning curves: test F1 against training size, with the seed spread.

Runs with a training size set (``data.train_fraction`` or ``data.train_documents``,
``experiment=learning_curve``) are drawn per corpus: one line per model and scheme, one point per
size (the mean number of training sentences it gave, ``data_train_sentences``), the mean F1 over
seeds with a band of ± one sd; beside it a table of the same numbers. The subsamples are nested for
one seed (``corpus.nested_subsample``) and every size is selected on the same dev split.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter  # noqa: E402

from bioner_grid.report_figures import _save, slug  # noqa: E402
from bioner_grid.runtable import finished, metric_column, n_range, readable  # noqa: E402

SIZES = ("data.train_fraction", "data.train_documents")  # report.load_runs reads these params into columns


def points(df: pd.DataFrame, split: str = "test", mode: str = "strict") -> pd.DataFrame:
    """One row per (dataset, model, scheme, size setting): ``size`` (``fraction 0.25`` or
    ``documents 50``), ``sentences`` (mean training sentences), ``mean``, ``sd`` and ``n`` of F1 (%)
    over seeds; empty when no run sets a training size."""
    ok = finished(df)
    present = [c for c in SIZES if c in ok]
    column = metric_column(split, mode, "f1")
    if not present or column not in ok or "data_train_sentences" not in ok:
        return pd.DataFrame()
    ok = ok[ok[present].notna().any(axis=1)].copy()
    if ok.empty:
        return pd.DataFrame()
    ok["size"] = ok.apply(lambda r: next(f"{c.split('_')[-1]} {r[c]}" for c in present if pd.notna(r[c])),
                          axis=1)  # "fraction 0.25", "documents 50"
    rows = []
    for (dataset, model, scheme, size), runs in ok.groupby(["dataset", "model_name", "scheme", "size"]):
        f1 = runs[column].dropna() * 100
        rows.append({"dataset": dataset, "model": model, "scheme": scheme, "size": size,
                     "sentences": runs["data_train_sentences"].mean(), "mean": f1.mean(),
                     "sd": f1.std() if len(f1) > 1 else 0.0, "n": len(f1)})
    return pd.DataFrame(rows).sort_values(["dataset", "model", "scheme", "sentences"]).reset_index(drop=True)


def tables(df: pd.DataFrame, split: str = "test", mode: str = "strict") -> list[tuple[str, list[str], list[list[str]], str]]:
    """(title, header, rows, note) per corpus: each line's F1 at each training size."""
    pts = points(df, split, mode)
    model, scheme, corpus = readable(df)
    out = []
    for dataset, sub in (pts.groupby("dataset") if not pts.empty else []):
        rows = [[f"{model(r.model)}, {scheme(r.scheme)}", r.size, f"{r.sentences:.0f}",
                 f"{r.mean:.2f} ± {r.sd:.2f} (n={r.n})" if r.n > 1 else f"{r.mean:.2f}"] for r in sub.itertuples()]
        out.append((f"Learning curve on {corpus(dataset)}: {split} {mode} F1 (%) against training size",
                    ["model, scheme", "training size", "training sentences", f"{split} F1"], rows,
                    "Nested subsamples of the training split for each seed (data.train_fraction / data.train_documents), "
                    "drawn after dev is held out; mean ± sd over seeds."))
    return out


def figures(df: pd.DataFrame, out: Path, split: str = "test", mode: str = "strict") -> list[tuple[Path, str]]:
    """Per corpus: F1 against training sentences, one line per model and scheme (n: seeds per point),
    a ± sd band; the log axis labelled in plain numbers (300, 500, 1000), not powers of ten."""
    pts = points(df, split, mode)
    model, scheme, corpus = readable(df)
    images = []
    for dataset, sub in (pts.groupby("dataset") if not pts.empty else []):
        fig, ax = plt.subplots(figsize=(6, 3.8))
        for (m, s), line in sub.groupby(["model", "scheme"]):
            ax.plot(line["sentences"], line["mean"], marker="o", label=f"{model(m)}, {scheme(s)} ({n_range(line['n'])})")
            ax.fill_between(line["sentences"], line["mean"] - line["sd"], line["mean"] + line["sd"], alpha=0.2)
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1, 2, 3, 5)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("training sentences (log scale)")
        ax.set_ylabel(f"{split} {mode} F1 (%)")
        ax.set_title(f"Learning curve: {corpus(dataset)}", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        caption = (f"Learning curve on {corpus(dataset)}: {split} {mode} F1 against training sentences, mean ± sd over "
                   "n seeds per point")
        images.append((_save(fig, out / f"curve_{slug(dataset)}.png"), caption))
    return images
