"""Report figures (matplotlib, PNG).

Foundation-study views: per model, P/R/F1 against learning rate (log axis), one line per batch
size; peak memory against mean training time, one point per model, with a least-squares line.
WeLT views: per corpus, a heatmap of F1 per (model, scheme) and of ΔF1 against Vanilla on a
symmetric colour scale of at least ± NOISE_FLOOR points (or the bootstrap intervals' typical
half-width), so that differences below the noise stay pale; "~" marks a difference whose paired
bootstrap interval contains 0 for every seed.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from bioner_grid.runtable import (  # noqa: E402
    best_lr,
    finished,
    metric_column,
    scheme_names,
    schemes_of,
)
from bioner_grid.corpus import write_atomic  # noqa: E402
from bioner_grid.schema import safe_name  # noqa: E402

NOISE_FLOOR = 1.0  # F1 points: the ΔF1 colour scale never spans less than ± this


def slug(name) -> str:
    """A file-name-safe form of a tag (``bc5/cdr`` -> ``bc5_cdr-1a2b3c``): unsafe characters become
    ``_``, and a name that had any gets a short hash of the original, so two never share a file."""
    safe = safe_name(name)
    return safe if safe == str(name) else f"{safe}-{hashlib.sha1(str(name).encode()).hexdigest()[:6]}"


def _save(fig, path: Path) -> Path:
    """The figure as PNG, written as every report file is (``corpus.write_atomic``: a symlink
    planted at ``path`` is replaced, never followed)."""
    fig.tight_layout()
    write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=110), binary=True)
    plt.close(fig)
    return path


def lr_curves(df: pd.DataFrame, out: Path, split: str, mode: str) -> list[tuple[Path, str]]:
    ok = finished(df)
    chosen = best_lr(df, split, mode)
    images = []
    for model, runs in ok.groupby("model_lr_bs"):
        if runs["lr"].nunique() < 2:
            continue
        fig, axes = plt.subplots(1, 3, figsize=(11, 3.2), sharey=True)
        for ax, measure in zip(axes, ("precision", "recall", "f1")):
            col = metric_column(split, mode, measure)
            for bs, g in runs.groupby("batch_size"):
                curve = (100 * g[col]).groupby(g["lr"]).mean().sort_index()
                line, = ax.plot(curve.index, curve.values, marker="o", label=f"batch {int(bs)}")
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
        fig.suptitle(f"{model} ({split} shown; ★ lr chosen on {on} F1)")
        images.append((_save(fig, out / f"lr_{slug(model)}.png"), f"{model}: {split} P/R/F1 against learning rate, one line per batch size; "
                                                               f"the star marks the learning rate chosen on {on} F1"))
    return images


def memory_vs_time(df: pd.DataFrame, out: Path) -> list[tuple[Path, str]]:
    ok = finished(df)
    if "peak_rss_mb" not in ok or "train_seconds" not in ok or ok["model_lr_bs"].nunique() < 2:
        return []
    memory = "cuda_peak_mb" if "cuda_peak_mb" in ok and ok["cuda_peak_mb"].notna().all() else "peak_rss_mb"
    per_model = ok.groupby("model_lr_bs").agg(seconds=("train_seconds", "mean"), memory=(memory, "max"))
    fig, ax = plt.subplots(figsize=(5.5, 4))
    ax.scatter(per_model["seconds"], per_model["memory"])
    for model, r in per_model.iterrows():
        ax.annotate(model, (r["seconds"], r["memory"]), fontsize=8, xytext=(3, 3), textcoords="offset points")
    slope, intercept = np.polyfit(per_model["seconds"], per_model["memory"], 1)
    xs = np.linspace(per_model["seconds"].min(), per_model["seconds"].max(), 10)
    ax.plot(xs, slope * xs + intercept, linestyle="--", label=f"least squares: {slope:.2f} MB/s")
    ax.set_xlabel("mean training time per run (s)")
    ax.set_ylabel(f"peak memory ({memory}, MB)")
    ax.legend()
    return [(_save(fig, out / "memory_vs_time.png"), "Peak memory against mean training time, one point per model")]


def delta_limit(delta: np.ndarray, half_widths: np.ndarray | None = None) -> float:
    """Symmetric colour limit of a ΔF1 map: max(|Δ|, NOISE_FLOOR, median bootstrap half-width)."""
    floor = max(NOISE_FLOOR, float(np.median(half_widths)) if half_widths is not None and len(half_widths) else 0.0)
    finite = np.abs(delta[np.isfinite(delta)])
    return max(float(finite.max()) if finite.size else 0.0, floor)


def scheme_heatmaps(df: pd.DataFrame, out: Path, split: str, mode: str, boot: pd.DataFrame | None = None) -> list[tuple[Path, str]]:
    ok = finished(df)
    if ok["scheme"].nunique() < 2:
        return []
    images = []
    col, names = metric_column(split, mode, "f1"), scheme_names(df)
    for dataset, runs in ok.groupby("dataset"):
        grid = (100 * runs[col]).groupby([runs["model"], runs["scheme"]]).mean().unstack()
        grid = grid[[s for s in schemes_of(runs) if s in grid.columns]]
        b = boot[boot["dataset"] == dataset] if boot is not None and len(boot) else None
        noise = b.groupby(["model", "scheme"])["within_noise"].all() if b is not None and len(b) else pd.Series(dtype=bool)
        panels = [("F1", grid, "viridis", f"{split} {mode} F1 (%)")]
        if "vanilla" in grid.columns:
            panels.append(("ΔF1 vs Vanilla", grid.sub(grid["vanilla"], axis=0), "RdBu", "ΔF1 vs Vanilla (F1 points)"))
        fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 0.6 * len(grid) + 2))
        for ax, (title, values, cmap, label) in zip(np.atleast_1d(axes), panels):
            kwargs = {}
            if title.startswith("Δ"):
                limit = delta_limit(values.values, None if b is None or not len(b) else ((b["high"] - b["low"]) / 2).values)
                kwargs = {"vmin": -limit, "vmax": limit}
            im = ax.imshow(values.values, cmap=cmap, aspect="auto", **kwargs)
            ax.set_xticks(range(len(values.columns)), [names.get(s, s) for s in values.columns], rotation=45)
            ax.set_yticks(range(len(values.index)), values.index)
            for (i, j), v in np.ndenumerate(values.values):
                if not np.isnan(v):
                    shade = im.norm(v)  # 0..1 along the colour map; its ends are dark
                    dark = shade < 0.45 if cmap == "viridis" else abs(shade - 0.5) > 0.3
                    mark = "~" if title.startswith("Δ") and noise.get((values.index[i], values.columns[j]), False) else ""
                    ax.text(j, i, f"{v:.1f}{mark}", ha="center", va="center", fontsize=7, color="white" if dark else "black")
            ax.set_title(f"{dataset}: {title}")
            fig.colorbar(im, ax=ax, label=label)
        images.append((_save(fig, out / f"schemes_{slug(dataset)}.png"),
                       f"{dataset}: {split} F1 per model and scheme (mean over seeds), and ΔF1 against Vanilla in F1 points on a symmetric "
                       f"scale of at least ±{NOISE_FLOOR:g} point; ~: paired bootstrap 95% interval contains 0 (within noise)"))
    return images


def figures(df: pd.DataFrame, out: Path, split: str = "test", mode: str = "strict", boot: pd.DataFrame | None = None) -> list[tuple[Path, str]]:
    if finished(df).empty:
        return []
    return scheme_heatmaps(df, out, split, mode, boot) + lr_curves(df, out, split, mode) + memory_vs_time(df, out)
