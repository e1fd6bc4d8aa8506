"""Report figures (matplotlib): each as PNG (shown in report.html), PDF and SVG (for a paper; text
kept as text: TrueType fonts in the PDF, ``svg.fonttype: none``).

Foundation-study views: per model, P/R/F1 against learning rate (log axis), one line per batch
size; peak memory against mean training time, one point per model (n runs), with a least-squares
line only through 3 points or more (a line through 2 points is no fit). WeLT views: per corpus, a
heatmap of F1 per (model, scheme) and of ΔF1 against Vanilla on a symmetric colour scale of at
least ± NOISE_FLOOR points (or the bootstrap intervals' typical half-width), so that differences
below the noise stay pale; each cell prints its value and n (seeds) in ≥ 9 pt at the saved size,
and "~" marks a difference whose paired bootstrap 95% interval (of the seed-averaged value the
cell shows, ``report.cells_vs_vanilla``) contains 0. Models and corpora carry their display names.
"""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bioner_grid.runtable import (  # noqa: E402
    best_lr,
    display_names,
    finished,
    metric_column,
    n_range,
    scheme_names,
    schemes_of,
    shown,
)
from bioner_grid.corpus import write_atomic  # noqa: E402
from bioner_grid.schema import safe_name  # noqa: E402

NOISE_FLOOR = 1.0  # F1 points: the ΔF1 colour scale never spans less than ± this
CELL_PT = 10  # heatmap cell text (points, at the saved size: no figure is scaled when saved)
MIN_FIT_POINTS = 3  # fewer points than this get no fitted line
LABEL_CHARS = 36  # a heatmap row's label wraps at this many characters
DPI = 100
# svg.hashsalt: the SVG's element ids are hashes of it, not random, so that the same runs give the same bytes
STYLE = {"pdf.fonttype": 42, "ps.fonttype": 42, "svg.fonttype": "none", "svg.hashsalt": "bioner-grid", "font.size": 10,
         "axes.titlesize": 11}


def slug(name) -> str:
    """A file-name-safe form of a tag (``bc5/cdr`` -> ``bc5_cdr-1a2b3c``): unsafe characters become
    ``_``, and a name that had any gets a short hash of the original, so two never share a file."""
    safe = safe_name(name)
    return safe if safe == str(name) else f"{safe}-{hashlib.sha1(str(name).encode()).hexdigest()[:6]}"


def _save(fig, path: Path) -> Path:
    """The figure as ``path`` (PNG) and beside it as PDF and SVG, each written as every report file
    is (``corpus.write_atomic``: a symlink planted at a path is replaced, never followed). No
    creation date in the files: a report built again from the same runs writes the same bytes."""
    if fig.get_layout_engine() is None:  # a figure laid out on its own (a legend outside its axes) keeps that
        fig.tight_layout()
    with matplotlib.rc_context(STYLE):
        write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=DPI), binary=True)
        write_atomic(path.with_suffix(".pdf"), lambda f: fig.savefig(f, format="pdf", metadata={"CreationDate": None}), binary=True)
        write_atomic(path.with_suffix(".svg"), lambda f: fig.savefig(f, format="svg", metadata={"Date": None}), binary=True)
    plt.close(fig)
    return path


def lr_curves(df: pd.DataFrame, out: Path, split: str, mode: str) -> list[tuple[Path, str]]:
    ok = finished(df)
    chosen = best_lr(df, split, mode)
    disp = display_names(df)
    images = []
    for model, runs in ok.groupby("model_lr_bs"):
        if runs["lr"].nunique() < 2:
            continue
        fig, axes = plt.subplots(1, 3, figsize=(11, 3.2), sharey=True)
        for ax, measure in zip(axes, ("precision", "recall", "f1")):
            col = metric_column(split, mode, measure)
            for bs, g in runs.groupby("batch_size"):
                curve = (100 * g[col]).groupby(g["lr"]).mean().sort_index()
                n = g.groupby("lr").size()
                line, = ax.plot(curve.index, curve.values, marker="o",
                                label=f"batch {int(bs)} ({n_range(n)})")
                pick = chosen[(chosen["model"] == model) & (chosen["batch_size"] == bs)]
                if len(pick) and pick["lr"].iloc[0] in curve.index:
                    lr = pick["lr"].iloc[0]
                    ax.plot([lr], [curve[lr]], marker="*", markersize=14, color=line.get_color(), markeredgecolor="black")
            ax.set_xscale("log")
            ax.set_xlabel("learning rate")
            ax.set_title(measure)
        axes[0].set_ylabel(f"{split} {mode} (%)")
        axes[-1].legend()
        on = chosen["chosen_on"].iloc[0] if len(chosen) else split
        name = shown(model, disp)
        fig.suptitle(f"{name} ({split} shown; ★ lr chosen on {on} F1)")
        images.append((_save(fig, out / f"lr_{slug(model)}.png"), f"{name}: {split} P/R/F1 against learning rate, one line per batch "
                                                               f"size (mean over n seeds per point); the star marks the learning rate "
                                                               f"chosen on {on} F1"))
    return images


def memory_vs_time(df: pd.DataFrame, out: Path) -> list[tuple[Path, str]]:
    ok = finished(df)
    if "peak_rss_mb" not in ok or "train_seconds" not in ok or ok["model_lr_bs"].nunique() < 2:
        return []
    memory = "cuda_peak_mb" if "cuda_peak_mb" in ok and ok["cuda_peak_mb"].notna().all() else "peak_rss_mb"
    per_model = ok.groupby("model_lr_bs").agg(seconds=("train_seconds", "mean"), memory=(memory, "max"),
                                              n=("train_seconds", "size")).dropna()
    if per_model.empty:
        return []
    disp = display_names(df)
    # Each point is named in a legend under the axes, not beside the point: a variant's label
    # ("MiniLM (merge=plain, only=[...])") is longer than the axes are wide.
    fig, ax = plt.subplots(figsize=(7, 3.6 + 0.2 * (len(per_model) + 1)), layout="constrained")
    markers = "osD^vP*Xph<>"
    for i, (model, r) in enumerate(per_model.iterrows()):
        ax.scatter([r["seconds"]], [r["memory"]], marker=markers[i % len(markers)], s=40,
                   label=f"{shown(model, disp)} (n={int(r['n'])})")
    fitted = len(per_model) >= MIN_FIT_POINTS  # a line through 2 points fits them exactly and says nothing
    if fitted:
        slope, intercept = np.polyfit(per_model["seconds"], per_model["memory"], 1)
        xs = np.linspace(per_model["seconds"].min(), per_model["seconds"].max(), 10)
        ax.plot(xs, slope * xs + intercept, linestyle="--", color="grey",
                label=f"least squares: {slope:.2f} MB/s ({len(per_model)} points)")
    fig.legend(loc="outside lower center", fontsize=9, frameon=False)
    ax.set_xlabel("mean training time per run (s)")
    ax.set_ylabel(f"peak memory ({memory}, MB)")
    ax.margins(0.15)
    caption = ("Peak memory against mean training time, one point per model (n runs)"
               + ("; dashed: least-squares line" if fitted else f"; no line fitted through fewer than {MIN_FIT_POINTS} points"))
    return [(_save(fig, out / "memory_vs_time.png"), caption)]


def delta_limit(delta: np.ndarray, half_widths: np.ndarray | None = None) -> float:
    """Symmetric colour limit of a ΔF1 map: max(|Δ|, NOISE_FLOOR, median bootstrap half-width)."""
    floor = max(NOISE_FLOOR, float(np.median(half_widths)) if half_widths is not None and len(half_widths) else 0.0)
    finite = np.abs(delta[np.isfinite(delta)])
    return max(float(finite.max()) if finite.size else 0.0, floor)


def scheme_heatmaps(df: pd.DataFrame, out: Path, split: str, mode: str, cells: pd.DataFrame | None = None) -> list[tuple[Path, str]]:
    """Per corpus: F1 per (model, scheme), and ΔF1 against Vanilla, each cell with its n; ``cells``
    (``report.cells_vs_vanilla``) gives the paired bootstrap of each Δ for the "~" marks."""
    ok = finished(df)
    if ok["scheme"].nunique() < 2:
        return []
    images = []
    col, names, disp = metric_column(split, mode, "f1"), scheme_names(df), display_names(df)
    for dataset, runs in ok.groupby("dataset"):
        by = [runs["model"], runs["scheme"]]
        grid = (100 * runs[col]).groupby(by).mean().unstack()
        count = runs[col].groupby(by).count().unstack()
        grid = grid[[s for s in schemes_of(runs) if s in grid.columns]]
        count = count.reindex(index=grid.index, columns=grid.columns)
        b = cells[cells["dataset"] == dataset] if cells is not None and len(cells) else None
        noise = b.set_index(["model", "scheme"])["within_noise"] if b is not None and len(b) else pd.Series(dtype=bool)
        panels = [("F1", grid, "viridis", f"{split} {mode} F1 (%)")]
        if "vanilla" in grid.columns:
            panels.append(("ΔF1 vs Vanilla", grid.sub(grid["vanilla"], axis=0), "RdBu", "ΔF1 vs Vanilla (F1 points)"))
        # a variant's label ("TinyBERT (max_train_sentences=32, extra_tests=[...])") wrapped, once, left of the panels
        rows = [textwrap.fill(shown(m, disp), LABEL_CHARS) for m in grid.index]
        lines = sum(r.count("\n") + 1 for r in rows)
        labels = 0.075 * max(len(line) for r in rows for line in r.split("\n"))  # inches, at 10 pt
        width = max(4.5, 0.95 * len(grid.columns) + 2.8)  # inches per panel: room for "−12.3~" and "n=3" at CELL_PT
        fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels) + labels, max(0.62 * len(grid), 0.18 * lines) + 2.3),
                                 squeeze=False, layout="constrained")
        for k, (ax, (title, values, cmap, label)) in enumerate(zip(axes[0], panels)):
            kwargs = {}
            if title.startswith("Δ"):
                limit = delta_limit(values.values, None if b is None or not len(b) else ((b["high"] - b["low"]) / 2).values)
                kwargs = {"vmin": -limit, "vmax": limit}
            im = ax.imshow(values.values, cmap=cmap, aspect="auto", **kwargs)
            ax.set_xticks(range(len(values.columns)), [names.get(s, s) for s in values.columns], rotation=30, ha="right")
            ax.set_yticks(range(len(values.index)), rows if k == 0 else [])
            for (i, j), v in np.ndenumerate(values.values):
                if np.isnan(v):
                    continue
                shade = im.norm(v)  # 0..1 along the colour map; its ends are dark
                dark = shade < 0.45 if cmap == "viridis" else abs(shade - 0.5) > 0.3
                delta = title.startswith("Δ")
                if delta and values.columns[j] == "vanilla":
                    text = "0"
                else:
                    mark = "~" if delta and noise.get((values.index[i], values.columns[j]), False) else ""
                    text = f"{v:+.1f}{mark}" if delta else f"{v:.1f}"
                n = count.iat[i, j]
                ax.text(j, i, f"{text}\nn={int(n)}".replace("-", "\u2212"), ha="center", va="center", fontsize=CELL_PT,
                        linespacing=1.1, color="white" if dark else "black")
            ax.set_title(f"{shown(dataset, disp)}: {title}")
            fig.colorbar(im, ax=ax, label=label)
        images.append((_save(fig, out / f"schemes_{slug(dataset)}.png"),
                       f"{shown(dataset, disp)}: {split} F1 per model and scheme (mean over n seeds), and ΔF1 against Vanilla in F1 "
                       f"points on a symmetric scale of at least ±{NOISE_FLOOR:g} point; ~: the paired bootstrap 95% interval of "
                       "the cell's Δ contains 0 (within noise)"))
    return images


def figures(df: pd.DataFrame, out: Path, split: str = "test", mode: str = "strict", cells: pd.DataFrame | None = None) -> list[tuple[Path, str]]:
    """Every figure of the report as (PNG path, caption); the PDF and SVG lie beside each PNG."""
    if finished(df).empty:
        return []
    return scheme_heatmaps(df, out, split, mode, cells) + lr_curves(df, out, split, mode) + memory_vs_time(df, out)
