"""Comparison tables and figures from MLflow runs: what goes into a paper.

``python -m bioner_grid.report tracking.uri=URI report.experiment=NAME report.out=DIR
[report.filter="tags.sweep = 'SWEEP_ID'"] [report.mode=strict|default] [report.split=test|dev]``

Reads the runs of one or more MLflow experiments into a pandas DataFrame (one row per run: grid
keys and metrics), writes Markdown, LaTeX (booktabs) and CSV tables, PNG figures and one
self-contained ``report.html`` into ``report.out``, and logs them all as artifacts of a ``report``
run. Seeds of one configuration are averaged (mean ± sample std); runs that did not finish are
counted and left out; configurations without a finished run show as "—" and are listed.

mlflow (~1.3 s, through ``bioner_grid.store``) and matplotlib (``report_figures``) are
imported where used: ``bioner-grid-report --help`` and ``register`` import this module without them.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import logging
import math
import re
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import pandas as pd
from scipy import stats

from bioner_grid import cachedir, redact, report_aio, report_cross, report_curve
from bioner_grid.errors import ConfigError, DataError
from bioner_grid.config import compose
from bioner_grid.corpus import write_atomic
from bioner_grid.identity import GRID_KEYS, defines_result
from bioner_grid.runtable import (
    SCHEME_NAMES,
    SCHEMES,
    best_lr,
    cell_stats,
    chooser,
    display_names,
    finished,
    metric_column,
    non_finite_note,
    pruned,
    scheme_names,
    schemes_of,
    shown,
)
from bioner_grid.significance import Bootstrap, Result, cached_predictions, p_text
from bioner_grid.sweep import settle_submitted
from bioner_grid.tracking import ABSENT_PARAMS

log = logging.getLogger(__name__)

KEYS = list(GRID_KEYS)
MEASURES = {"precision": "P", "recall": "R", "f1": "F"}
MISSING = "—"
COLLAPSED = "collapsed"  # a cell whose every run the collapse sentinel stopped (bioner_grid.collapse)
# Corpus variants' report hooks, called for any runs: the run tag each reads into a column, its
# name for a corpus in the corpus tables, its own tables (report_aio.ReportHooks: the all-in-one corpus).
VARIANTS = (report_aio.REPORT,)


# ---------------------------------------------------------------------------------------------
# Runs


def load_runs(uri: str, experiments: list[str], filter_string: str = "") -> pd.DataFrame:
    """One row per run: ``run_id``, ``status``, the grid keys (tags), ``cell_key`` and every metric
    (bare names).

    ``model`` is the row label the tables use: the model's name, followed by every result-defining
    setting (head, epochs, lr, …) that differs between the runs of that model on that dataset, so
    that different configurations are never averaged as if they were seeds (``model_name`` keeps
    the bare name; ``model_lr_bs`` leaves lr and batch size out, for the views that compare them)."""
    from bioner_grid.store import RunStore

    df = RunStore(uri, experiments[0]).runs_frame(experiments, filter_string or "")  # metrics.* under flat names
    if df.empty:
        return pd.DataFrame(columns=["run_id", "status", *KEYS, "cell_key", "scheme_label", "model_name", "model_lr_bs",
                                     "non_finite", "model_display", "dataset_display"])
    if "tags.kind" in df:  # report runs (older stores kept them beside the training runs) and sweep parents
        df = df[~df["tags.kind"].fillna("").isin(["report", "sweep"])]
    columns = {"run_id": df["run_id"], "status": df["status"]}
    columns.update({key: df.get(f"tags.{key}") for key in KEYS})
    columns.update({v.column: df.get(f"tags.{v.column}") for v in VARIANTS})
    columns["scheme_label"] = df["params.scheme.label"] if "params.scheme.label" in df else None
    for group in ("model", "dataset"):  # display names (runtable.display_names falls back to the packaged configs)
        columns[f"{group}_display"] = df.get(f"params.{group}.display_name")
    columns["non_finite"] = df.get("non_finite", "")  # scores logged as inf/NaN
    columns["pruned"] = df.get("tags.pruned")  # stopped early by an adaptive search (runtable.pruned)
    columns["collapsed"] = df.get("tags.collapsed")  # stopped by train.stop_collapsed (bioner_grid.collapse)
    for c in (c for c in df.columns if c.startswith("metrics.")):  # read grouped (test/strict_f1) or older flat
        columns[c[len("metrics."):]] = df[c]
    for c in df.columns:  # overlap tags (report_cross marks cells by them) and training sizes (report_curve)
        if c.startswith(("tags.overlap.", "tags.aio_")) or (c.startswith("params.") and c[len("params."):] in report_curve.SIZES):
            columns[c.split(".", 1)[1]] = df[c]
    out = pd.DataFrame(columns, index=df.index)
    for key in ("lr", "batch_size", "seed"):
        out[key] = pd.to_numeric(out[key], errors="coerce")
    settings = df[[c for c in df.columns if (c.startswith("params.") and defines_result(c[len("params."):])
                                            and c != "params.train.seed") or c.startswith("tags.data_sha256.")]]
    absent = {f"params.{k}": v for k, v in ABSENT_PARAMS.items()}  # a param logged only when set: merge=tags, not nan
    settings = settings.fillna({c: v for c, v in absent.items() if c in settings})
    out["model_name"] = out["model"]
    out["model_lr_bs"] = variant_labels(out, settings, exclude=("params.train.lr", "params.train.batch_size"))
    out["model"] = variant_labels(out, settings)
    if "tags.cell_key" in df and df["tags.cell_key"].notna().all():
        out["cell_key"] = df["tags.cell_key"]
    else:
        old = df["tags.cell_key"].isna().sum() if "tags.cell_key" in df else len(df)
        log.warning("%d run(s) carry no cell_key tag (recorded before it existed): their seeds are grouped by "
                    "(model, dataset, scheme, lr, batch_size) alone", old)
        fallback = out[["model", "dataset", "scheme", "lr", "batch_size"]].astype(str).agg("|".join, axis=1)
        out["cell_key"] = df["tags.cell_key"].fillna(fallback) if "tags.cell_key" in df else fallback
    out = out.reset_index(drop=True)
    out.attrs["tracking_uri"] = uri  # where RunFiles fetches the runs' artifacts
    return out


def _setting_name(column: str) -> str:
    if column.startswith("tags.data_sha256."):
        return f"{column[len('tags.data_sha256.'):]} data"
    return column.split(".", 2)[-1]  # params.train.epochs -> epochs


def variant_labels(runs: pd.DataFrame, settings: pd.DataFrame, exclude=()) -> pd.Series:
    """The model's name plus the result-defining settings that differ among the runs of that model
    on that dataset (``biobert (head=crf, epochs=3)``); the bare name where nothing differs."""
    labels = runs["model"].astype(str).copy()
    columns = sorted(c for c in settings.columns if c not in exclude)
    if not columns:
        return labels
    for _, idx in runs.groupby(["dataset", "model"], dropna=False).groups.items():
        sub = settings.loc[idx, columns].astype(object).fillna(MISSING).astype(str)  # a value absent from some runs differs
        scheme = runs.loc[idx, "scheme"].astype(str)
        # A scheme's own settings (scheme.kind, .beta) differ from scheme to scheme by definition: only
        # a difference within one scheme makes a variant.
        varying = [c for c in columns if (sub[c].groupby(scheme).nunique().max() if c.startswith("params.scheme.")
                                          else sub[c].nunique()) > 1]
        for i in idx:
            if varying:
                which = ", ".join(f"{_setting_name(c)}={sub.at[i, c][:8] if c.startswith('tags.') else sub.at[i, c]}"
                                  for c in varying)
                labels.at[i] = f"{runs.at[i, 'model']} ({which})"
    return labels


def _means(df: pd.DataFrame, keys: list[str], column: str, order: list) -> list[float | None]:
    if column not in df:
        return [None] * len(order)
    mean = cell_stats(df, keys, column)["mean"]
    return [mean.get(k) for k in order]


def seeds_note(df: pd.DataFrame) -> str:
    """n per cell: how many seeds each mean is over."""
    n = df.groupby(["model", "dataset", "scheme", "lr", "batch_size"]).size()
    if n.empty:
        return ""
    return f"n = {n.min()} seed(s) per cell" if n.min() == n.max() else f"n = {n.min()}–{n.max()} seeds per cell"


def min_wilcoxon_p(n: int) -> float:
    """The smallest two-sided p the exact Wilcoxon signed-rank test can give with n non-zero pairs:
    all n differences of one sign, probability 2 / 2^n."""
    return min(1.0, 2.0 / 2**n)


# ---------------------------------------------------------------------------------------------
# Tables: a list of rows of cells; a cell is text with an optional mark (best / second)


@dataclass
class Cell:
    text: str
    mark: str | None = None  # "best" (bold) | "tied" (underlined: within noise of the best)


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[Cell]]
    note: str = ""
    labels: int = 2  # leading label columns (left-aligned); the rest are numbers


def fmt(mean: float | None, std: float | None = None, n: int = 1, collapsed: int = 0) -> str:
    """``mean ± std (n=…)``; ``collapsed`` of the n runs were stopped by the collapse sentinel: all of
    them shows "collapsed" (not a 0.00 that reads like a measured score), some are counted."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return MISSING
    if collapsed and collapsed >= n:
        return COLLAPSED
    text = f"{mean:.2f} ± {std:.2f} (n={n})" if n > 1 else f"{mean:.2f}"
    return f"{text} ({collapsed} collapsed)" if collapsed else text


class Ranker:
    """The one rule behind every bold and underline of the report.

    **Bold**: the configuration with the best mean F1 on the choosing split (dev when the runs
    logged it: ``runtable.chooser``); configurations equal to it as printed share the mark.
    **Underlined**: every other configuration whose paired bootstrap 95% interval of the *shown*
    split's F1 difference from the bold one contains 0 (``significance.Bootstrap``: the report's one
    resample count and seed; a configuration's seeds are averaged within each replicate). Choosing
    on dev and testing on the held-out split keeps the test free of the choice's own selection bias.
    A difference of hundredths of a point that the bootstrap calls noise is thus marked as a tie
    instead of a defeat. Where the runs logged no predictions (older runs, a store without
    artifacts), or ``report.mode=default`` (the bootstrap recomputes strict F1), nothing is
    underlined and ``untested`` counts the comparisons left out, which the captions say."""

    def __init__(self, files: "RunFiles | None" = None, split: str = "test", mode: str = "strict",
                 resamples: int = 10000, seed: int = 0):
        self.files, self.split = files, split
        self.boot = Bootstrap(resamples, seed) if files is not None and mode == "strict" else None
        self.untested = 0
        self._results: dict[tuple, Result | None] = {}

    @property
    def resamples(self) -> int | None:
        return self.boot.resamples if self.boot else None

    def compare(self, a: list[str], b: list[str]) -> Result | None:
        """B's runs against A's (run ids; each side's seeds averaged), None where predictions are missing."""
        key = (tuple(sorted(a)), tuple(sorted(b)))
        if key not in self._results:
            result = None
            if self.boot is not None:
                preds = [[self.files.predictions(r, self.split) for r in side] for side in (a, b)]
                if all(x is not None for side in preds for x in side) and all(preds):
                    try:
                        result = self.boot.compare(*preds)
                    except DataError:  # other sentences (a capped or edited corpus): no pairing possible
                        result = None
            self._results[key] = result
        return self._results[key]

    def marks(self, chosen: list[float | None], runs: list[list[str]]) -> tuple[list[str | None], list[Result | None]]:
        """Marks of configurations with ``chosen`` mean F1 (the choosing split) and their run ids;
        also each one's comparison with the best (None for the best and where untested)."""
        printed = [round(v, 2) if v is not None and not math.isnan(v) else None for v in chosen]
        top = max((v for v in printed if v is not None), default=None)
        if top is None:
            return [None] * len(chosen), [None] * len(chosen)
        best = [i for i, v in enumerate(printed) if v == top]
        reference = runs[best[0]]
        out, results = [], []
        for i, v in enumerate(printed):
            if i in best:
                out.append("best")
                results.append(None)
                continue
            r = self.compare(reference, runs[i]) if v is not None and runs[i] else None
            if r is None and v is not None:
                self.untested += 1
            out.append("tied" if r is not None and r.within_noise else None)
            results.append(r)
        return out, results

    def rule(self, choose: str) -> str:
        """The caption's sentence for the marks."""
        tied = (f"underlined: the paired bootstrap 95% interval of its {self.split} F1 difference from the bold one "
                f"contains 0 (within noise; {self.resamples} resamples)") if self.boot else \
            "no predictions to test ties with, so nothing is underlined"
        return f"bold: best on {choose} F1; {tied}"


def _run_ids(runs: pd.DataFrame) -> list[str]:
    return list(runs["run_id"])


def welt_table(df: pd.DataFrame, dataset: str, split: str = "test", mode: str = "strict", ranker: Ranker | None = None) -> Table:
    """WeLT Tables 2-9 for one corpus: rows model x {P, R, F} of ``split``, columns the seven schemes,
    and a row of the F1 each choice was made on (dev, when logged); the F row carries the marks
    (``Ranker``: best on dev, ties by the paired bootstrap)."""
    ranker = ranker or Ranker(split=split, mode=mode)
    ok = finished(df[df["dataset"] == dataset])
    choose = chooser(df[df["dataset"] == dataset], split, mode)
    schemes, names, disp = schemes_of(df), scheme_names(df), display_names(df)
    rows = []
    for model in sorted(set(df.loc[df["dataset"] == dataset, "model"])):
        runs = ok[ok["model"] == model]
        for measure, short in MEASURES.items():
            st = cell_stats(runs, ["scheme"], metric_column(split, mode, measure))
            means = [st["mean"].get(s) for s in schemes]
            found = [None] * len(schemes)
            if measure == "f1":
                chosen = means if choose == split else _means(runs, ["scheme"], metric_column(choose, mode, "f1"), schemes)
                found, _ = ranker.marks(chosen, [_run_ids(runs[runs["scheme"] == s]) for s in schemes])
            row = [Cell(shown(model, disp)), Cell(short)]
            for s, mean, mark in zip(schemes, means, found):
                std, n, c = (st["std"].get(s), int(st["n"].get(s)), int(st["collapsed"].get(s))) if s in st.index else (None, 0, 0)
                row.append(Cell(fmt(mean, std, n, c), mark if not c or c < n else None))  # a collapsed cell is no best
            rows.append(row)
        if choose != split:  # the values the marks were chosen on
            st = cell_stats(runs, ["scheme"], metric_column(choose, mode, "f1"))
            rows.append([Cell(shown(model, disp)), Cell(f"F ({choose})")]
                        + [Cell(fmt(st["mean"][s], st["std"][s], int(st["n"][s])) if s in st.index else MISSING) for s in schemes])
    return Table(f"{shown(dataset, disp)}: {split} {mode} P/R/F1 (%) per model and scheme",
                 ["Model", ""] + [names.get(s, s) for s in schemes], rows,
                 note=f"Mean ± sd over n seeds ({seeds_note(ok)}). On the F row, {ranker.rule(choose)}. "
                      + (f"F ({choose}): the {choose} F1 the choice was made on." if choose != split else
                         f"No dev scores logged: chosen on {split} itself."))


def overview_table(df: pd.DataFrame, split: str = "test", mode: str = "strict", ranker: Ranker | None = None) -> Table:
    """The study at a glance: per corpus and model, one column per scheme, ``split`` F1 as mean ± sd
    over seeds (n) with the marks of ``Ranker``, and beneath it the F1 the choice was made on."""
    ranker = ranker or Ranker(split=split, mode=mode)
    ok = finished(df)
    choose = chooser(df, split, mode)
    schemes, names, disp = schemes_of(df), scheme_names(df), display_names(df)
    column = metric_column(split, mode, "f1")
    rows = []
    for (dataset, model), runs in ok.groupby(["dataset", "model"], sort=True):
        st = cell_stats(runs, ["scheme"], column)
        chosen = [st["mean"].get(s) for s in schemes] if choose == split else \
            _means(runs, ["scheme"], metric_column(choose, mode, "f1"), schemes)
        found, _ = ranker.marks(chosen, [_run_ids(runs[runs["scheme"] == s]) for s in schemes])
        row = [Cell(shown(dataset, disp)), Cell(shown(model, disp))] + ([Cell(split)] if choose != split else [])
        for s, mark in zip(schemes, found):
            row.append(Cell(fmt(st["mean"][s], st["std"][s], int(st["n"][s]), int(st["collapsed"][s])),
                            mark if st["collapsed"][s] < st["n"][s] else None) if s in st.index else Cell(MISSING))
        rows.append(row)
        if choose != split:
            dev = cell_stats(runs, ["scheme"], metric_column(choose, mode, "f1"))
            rows.append([Cell(""), Cell(""), Cell(choose)]
                        + [Cell(fmt(dev["mean"][s], dev["std"][s], int(dev["n"][s])) if s in dev.index else MISSING) for s in schemes])
    both = choose != split  # a row of the values the choice was made on under each row of shown values
    return Table(f"Overview: {split} {mode} F1 (%) per corpus and scheme",
                 ["Dataset", "Model"] + (["split"] if both else []) + [names.get(s, s) for s in schemes], rows,
                 note=f"Mean ± sd over n seeds ({seeds_note(ok)}); {ranker.rule(choose)}"
                      + (f"; the {choose} row: the values the choice was made on." if both else "."), labels=3 if both else 2)


def ranking_table(df: pd.DataFrame, dataset: str, split: str = "test", mode: str = "strict", ranker: Ranker | None = None,
                  variant: tuple | None = None) -> Table:
    """Every configuration of one corpus (its ``cell_key``: whatever the runs vary, be it model,
    head, scheme, lr or batch size), ranked on the choosing split's F1, with ``split``'s F1, P and R,
    and each one's paired bootstrap difference from the best. The one table every store gets, so
    that no report is without an F1 table whatever axis its runs differ in. ``variant``: the
    ``VARIANTS`` columns' values of the corpus (an all-in-one corpus's members), so that runs scored on
    other test sentences under the same dataset name are never ranked against each other."""
    ranker = ranker or Ranker(split=split, mode=mode)
    names, disp = scheme_names(df), display_names(df)
    df, title = df[df["dataset"] == dataset], shown(dataset, disp)
    for v, value in zip(VARIANTS, variant or ()):
        df = df[df[v.column].isna()] if pd.isna(value) else df[df[v.column] == value]
        title = v.corpus_label(title, value)
    ok = finished(df)
    choose = chooser(df, split, mode)  # per corpus: one without dev scores is chosen on test
    axes = [a for a in ("lr", "batch_size") if ok[a].nunique() > 1]
    dev_col = metric_column(choose, mode, "f1")
    configs = []
    for _, runs in ok.groupby("cell_key", sort=False):
        first = runs.iloc[0]
        stats_ = {m: (100 * runs[metric_column(split, mode, m)]) if metric_column(split, mode, m) in runs else None for m in MEASURES}
        dev = (100 * runs[dev_col]).mean() if dev_col in runs else float("nan")
        configs.append({"model": first["model_lr_bs"], "scheme": first["scheme"], "lr": first["lr"], "batch_size": first["batch_size"],
                        "runs": _run_ids(runs), "n": len(runs), "dev": dev, "stats": stats_})
    configs.sort(key=lambda c: (-(c["dev"] if not math.isnan(c["dev"]) else -math.inf), str(c["model"]), str(c["scheme"])))
    found, results = ranker.marks([c["dev"] for c in configs], [c["runs"] for c in configs])
    rows = []
    for c, mark, r in zip(configs, found, results):
        f1 = c["stats"]["f1"]
        label = [Cell(shown(c["model"], disp)), Cell(names.get(c["scheme"], c["scheme"]))]
        label += [Cell(f"{c[a]:g}") for a in axes]
        cells = [Cell(str(c["n"]))]
        if choose != split:
            cells.append(Cell(fmt(c["dev"])))
        cells.append(Cell(fmt(f1.mean(), f1.std(ddof=1) if len(f1) > 1 else 0.0, len(f1)) if f1 is not None else MISSING, mark))
        for m in ("precision", "recall"):
            v = c["stats"][m]
            cells.append(Cell(fmt(v.mean()) if v is not None else MISSING))
        if mark == "best":
            cells += [Cell("chosen"), Cell("")]
        elif r is None:
            cells += [Cell(MISSING), Cell(MISSING)]
        else:
            cells += [Cell(f"{r.delta:+.2f} [{r.low:+.2f}, {r.high:+.2f}]"), Cell(p_text(r.p, r.resamples))]
        rows.append(label + cells)
    header = ["Model", "Scheme"] + [{"lr": "lr", "batch_size": "batch"}[a] for a in axes] + ["n"]
    header += ([f"{choose} F1"] if choose != split else []) + [f"{split} F1", f"{split} P", f"{split} R",
                                                                "ΔF1 vs chosen (95% interval)", "p"]
    note = (f"Ranked on {choose} {mode} F1 (mean over the n seeds of each configuration); {split} values shown at each. "
            f"{ranker.rule(choose)[0].upper()}{ranker.rule(choose)[1:]}. ΔF1: {split} F1 minus the chosen configuration's, in points, "
            "with its paired bootstrap 95% percentile interval and two-sided p from the same resamples (p < 0.05 exactly "
            "when the interval excludes 0; Efron & Tibshirani 1993, §15.4).")
    if choose == split:
        note += f" No dev scores logged: chosen on {split} itself, which flatters the choice."
    return Table(f"{title}: every configuration, chosen on {choose} {mode} F1, {split} F1 (%) shown",
                 header, rows, note=note, labels=2 + len(axes))


def missing_configurations(df: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(model, dataset, scheme) of the grid spanned by the runs that has no finished run."""
    ok = set(map(tuple, finished(df)[["model", "dataset", "scheme"]].values))
    grid = [(m, d, s) for m in sorted(set(df["model"])) for d in sorted(set(df["dataset"])) for s in sorted(set(df["scheme"]))]
    return [c for c in grid if c not in ok]


def corpus_tables(df: pd.DataFrame) -> tuple[Table, Table]:
    """WeLT Table 1 (class distribution of the training split) and Table 11 (sentences per split)."""
    classes, sentences = [], []
    disp = display_names(df)
    for (dataset, *values), runs in finished(df).groupby(["dataset", *(v.column for v in VARIANTS)], dropna=False):
        r = runs.iloc[0]
        dataset = shown(dataset, disp)
        for variant, value in zip(VARIANTS, values):  # all-in-one runs differ by their member corpora
            dataset = variant.corpus_label(dataset, value)
        if "data_train_n_O" not in r or pd.isna(r.get("data_train_n_O")):
            continue
        n = {c: r[f"data_train_n_{c}"] for c in "OBI"}
        total = sum(n.values())
        classes.append([Cell(dataset)] + [Cell(f"{100 * n[c] / total:.2f}") for c in "OBI"])
        sentences.append([Cell(dataset)] + [Cell(str(int(r[f"data_{s}_sentences"]))) for s in ("train", "dev", "test")])
    return (Table("Class distribution of the training split (%)", ["Dataset", "O", "B", "I"], classes, labels=1),
            Table("Sentences per split", ["Dataset", "Train", "Dev", "Test"], sentences, labels=1))


def paper_results() -> pd.DataFrame:
    """The WeLT paper's 280 published results (package resource)."""
    with resources.files("bioner_grid").joinpath("resources/welt_paper_results.csv").open() as f:
        return pd.read_csv(f, comment="#")


def paper_comparison(df: pd.DataFrame, split: str = "test", mode: str = "strict") -> Table:
    """Ours beside the published P/R/F1 where model, dataset and scheme match; Δ = ours − paper."""
    paper = paper_results().set_index(["dataset", "model", "scheme"])
    ok = finished(df)
    rows = []
    keys = ["dataset", "model", "scheme"]
    ours = {m: cell_stats(ok, keys, metric_column(split, mode, m)) for m in MEASURES}
    names, disp = scheme_names(df), display_names(df)
    for key in ours["f1"].index:
        if key not in paper.index:
            continue
        p = paper.loc[key]
        f1 = ours["f1"].loc[key]
        rows.append([Cell(shown(key[0], disp)), Cell(shown(key[1], disp)), Cell(names.get(key[2], key[2]))]
                    + [Cell(fmt(ours[m].loc[key, "mean"], ours[m].loc[key, "std"], int(ours[m].loc[key, "n"]))) for m in MEASURES]
                    + [Cell(f"{p[m]:.2f}") for m in MEASURES]
                    + [Cell(f"{f1['mean'] - p['f1']:+.2f}")])
    return Table(f"Ours ({split}, {mode}) versus the WeLT paper", ["Dataset", "Model", "Scheme", "P", "R", "F1",
                                                                   "paper P", "paper R", "paper F1", "ΔF1 (points)"], rows, labels=3)


def wilcoxon_table(df: pd.DataFrame, split: str = "test", mode: str = "strict") -> Table:
    """Each scheme against Vanilla over matched (model, dataset, seed) cells: median ΔF1,
    wins/losses/ties and the paired Wilcoxon signed-rank test (scipy.stats.wilcoxon, two-sided)."""
    col = metric_column(split, mode, "f1")
    ok = finished(df)
    pivot = (100 * ok.pivot_table(index=["model", "dataset", "seed"], columns="scheme", values=col, aggfunc="mean"))
    rows, names = [], scheme_names(df)
    for scheme in [s for s in schemes_of(df) if s != "vanilla" and s in pivot.columns]:
        if "vanilla" not in pivot.columns:
            break
        pairs = pivot[[scheme, "vanilla"]].dropna()
        d = pairs[scheme] - pairs["vanilla"]
        if len(d) and (d != 0).any():
            p = f"{stats.wilcoxon(pairs[scheme], pairs['vanilla']).pvalue:.4f}"
        else:
            p = "n/a"  # no non-zero difference: the test is undefined
        nonzero = int((d != 0).sum())
        rows.append([Cell(names[scheme]), Cell(str(len(d))), Cell(f"{d.median():+.2f}" if len(d) else MISSING),
                     Cell(str(int((d > 0).sum()))), Cell(str(int((d < 0).sum()))), Cell(str(int((d == 0).sum()))), Cell(p),
                     Cell(f"{min_wilcoxon_p(nonzero):.4g}")])
    small = sorted({int(r[1].text) for r in rows if min_wilcoxon_p(int(r[1].text)) > 0.05})
    note = ("With n non-zero pairs the exact two-sided Wilcoxon test cannot give p below 2/2^n "
            "(n=4: 0.125, n=5: 0.0625, n=6: 0.031)"
            + (f"; with {', '.join(map(str, small))} pair(s) here no p can reach 0.05, whatever the differences. " if small else ". ")
            + "Seeds of one corpus count as separate pairs although they share its test set, so p reads optimistic "
              "when a few corpora carry many seeds. The per-run paired bootstrap tables say how sure each single difference is.")
    return Table(f"Schemes versus Vanilla over matched (model, dataset, seed) cells ({split} {mode} F1; ΔF1 in F1 points)",
                 ["Scheme", "pairs", "median ΔF1 (points)", "wins", "losses", "ties", "Wilcoxon p", "smallest reachable p"], rows, note,
                 labels=1)


def wins_table(df: pd.DataFrame, split: str = "test", mode: str = "strict", ranker: Ranker | None = None) -> Table:
    """Per scheme: in how many (model, dataset) cells it is best (chosen on dev when logged) and in
    how many tied with the best (``Ranker``: within the paired bootstrap's noise)."""
    ranker = ranker or Ranker(split=split, mode=mode)
    choose = chooser(df, split, mode)
    ok = finished(df)
    counts: Counter = Counter()  # (scheme, "best" | "tied") -> cells
    for _, runs in ok.groupby(["model", "dataset"]):
        schemes = schemes_of(runs)
        chosen = _means(runs, ["scheme"], metric_column(choose, mode, "f1"), schemes)
        found, _ = ranker.marks(chosen, [_run_ids(runs[runs["scheme"] == s]) for s in schemes])
        counts.update((s, m) for s, m in zip(schemes, found) if m)
    present, names = schemes_of(df), scheme_names(df)
    return Table(f"Wins: (model, dataset) cells where a scheme is best on {choose} {mode} F1, or tied with the best",
                 ["Scheme", "best", "tied with best"],
                 [[Cell(names[s]), Cell(str(counts[s, "best"])), Cell(str(counts[s, "tied"]))] for s in present],
                 note=f"Best: {ranker.rule(choose)[len('bold: '):].replace('underlined: ', 'tied: ')}.", labels=1)


def faireval_table(df: pd.DataFrame, dataset: str, split: str = "test") -> Table:
    """WeLT Table 10: seqeval strict F1 beside FairEval fair F1 per model x scheme for one corpus."""
    ok = finished(df[df["dataset"] == dataset])
    strict = cell_stats(ok, ["model", "scheme"], f"{split}_strict_f1")["mean"]
    fair = cell_stats(ok, ["model", "scheme"], f"{split}_fair_f1")["mean"] if f"{split}_fair_f1" in ok else pd.Series(dtype=float)
    schemes, names, disp = schemes_of(ok), scheme_names(df), display_names(df)
    n = ok.groupby(["model", "scheme"]).size()
    rows = [[Cell(shown(model, disp))] + [Cell(f"{fmt(strict.get((model, s)))} / {fmt(fair.get((model, s)))}"
                                               + (f" (n={n[(model, s)]})" if n.get((model, s), 1) > 1 else "")) for s in schemes]
            for model in sorted(set(ok["model"]))]
    return Table(f"{shown(dataset, disp)}: seqeval strict F1 / FairEval fair F1 ({split}; mean over n seeds)",
                 ["Model"] + [names[s] for s in schemes], rows, labels=1)


def variant_tables(df: pd.DataFrame, split: str = "test", ranker: Ranker | None = None) -> list[Table]:
    """The tables the corpus variants of the runs add (``VARIANTS``; the all-in-one corpus: AIONER's
    Table 3, paired by ``ranker``'s predictions and bootstrap); rows of (text, mark) cells."""
    ranker = ranker or Ranker(split=split)
    return [Table(title, header, [[Cell(*c) for c in row] for row in rows], note, labels=1)
            for v in VARIANTS for title, header, rows, note in v.tables(df, split, fmt, ranker)]


def foundation_table(df: pd.DataFrame, split: str = "test", mode: str = "strict") -> Table:
    """F1 per model x batch size at the learning rate chosen on dev for that model and batch size
    (the foundation study's table); the note lists where choosing on the shown split would differ."""
    best = best_lr(df, split, mode)
    choose = chooser(df, split, mode)
    sizes = sorted(best["batch_size"].unique())
    rows, differ, disp = [], [], display_names(df)
    for model, m in best.groupby("model"):
        row = [Cell(shown(model, disp))]
        for bs in sizes:
            r = m[m["batch_size"] == bs]
            if r.empty:
                row.append(Cell(MISSING))
                continue
            r = r.iloc[0]
            row.append(Cell(f"{fmt(r['mean'], r['std'], r['n'])} (lr {r['lr']:g}, n={r['n']})"))
            if choose != split and r["split_lr"] != r["lr"]:
                differ.append(f"{shown(model, disp)} batch {int(bs)}: lr {r['split_lr']:g} ({r['split_best']:.2f}) instead of {r['lr']:g} ({r['mean']:.2f})")
        rows.append(row)
    note = (f"Learning rate chosen on {choose} {mode} F1 per model and batch size; {split} F1 shown at that choice (mean ± sd over n seeds). "
            + (f"Choosing on {split} would have picked: " + "; ".join(differ) + "." if differ
               else f"Choosing on {split} would have picked the same learning rates." if choose != split
               else "No dev scores logged: chosen on the shown split itself, which flatters the result."))
    return Table(f"{split} {mode} F1 (%) per model and batch size at the learning rate chosen on {choose}",
                 ["Model"] + [f"batch {int(b)}" for b in sizes], rows, note, labels=1)


def best_scheme_table(df: pd.DataFrame, split: str = "test", mode: str = "strict") -> Table:
    """Per (dataset, model): the scheme with the best mean F1 on dev, and the shown split's F1 at
    that choice beside Vanilla's; the last column says whether choosing on the shown split would differ."""
    ok = finished(df)
    choose = chooser(df, split, mode)
    keys = ["dataset", "model", "scheme"]
    by = cell_stats(ok, keys, metric_column(choose, mode, "f1"))["mean"].dropna()
    scores = cell_stats(ok, keys, metric_column(split, mode, "f1"))
    rows, names, disp = [], scheme_names(df), display_names(df)
    for (dataset, model), values in by.groupby(level=[0, 1]):
        scheme = values.idxmax()[2]
        own = scores["mean"].xs((dataset, model), level=[0, 1]).dropna()
        mean, n = scores["mean"].get((dataset, model, scheme)), int(scores["n"].get((dataset, model, scheme), 0))
        vanilla = scores["mean"].get((dataset, model, "vanilla"))
        delta = MISSING if vanilla is None or mean is None else f"{mean - vanilla:+.2f}"
        other = own.idxmax() if len(own) else None
        rows.append([Cell(shown(dataset, disp)), Cell(shown(model, disp)), Cell(names.get(scheme, scheme)), Cell(f"{values.max():.2f}"),
                     Cell(fmt(mean)), Cell(str(n)), Cell(fmt(vanilla)), Cell(delta),
                     Cell("same" if other == scheme else names.get(other, str(other)))])
    return Table(f"Best scheme per model and corpus, chosen on {choose} {mode} F1; {split} F1 (%) shown at that choice",
                 ["Dataset", "Model", f"chosen on {choose}", f"{choose} F1", f"{split} F1", "n", f"Vanilla {split} F1",
                  "ΔF1 vs Vanilla (points)", f"{split} would choose"], rows, labels=3)


# ---------------------------------------------------------------------------------------------
# Per-run artifacts: paired bootstrap against Vanilla, error profiles


class RunFiles:
    """Artifacts of logged runs, fetched through MLflow once and kept under ``cache/<run_id>/``
    (predictions as parsed per-sentence counts), so that a report built again reads no store."""

    def __init__(self, cache: Path, uri: str | None = None):
        self.cache = Path(cache)
        self.uri, self._store = uri, None  # the tracking store, opened only for what the cache does not hold

    @property
    def store(self):
        if self._store is None:
            from bioner_grid.store import RunStore

            if not self.uri:
                raise ValueError("run artifacts not cached and no tracking store given (load_runs sets it)")
            self._store = RunStore(self.uri, "")
        return self._store

    def folder(self, run_id: str) -> Path:
        """``cache/<run_id>``, the user's own (``cachedir``: a folder others can write is refused)."""
        return cachedir.private_folder(self.cache, run_id)

    def path(self, run_id: str, name: str) -> Path | None:
        folder = self.folder(run_id)
        local, missing = folder / name, folder / f"{name}.missing"
        if cachedir.trusted(local):
            return local
        if cachedir.trusted(missing):  # a finished run's artifacts do not change
            return None
        root = self.store.artifact_root(run_id)
        if root.startswith("file://") or "://" not in root:  # a local artifact store: read in place, no copy
            local = Path(url2pathname(urlparse(root).path)) / name
            if local.is_file():
                return local
        elif name in self.store.list_artifacts(run_id):
            return self.store.download(run_id, name, str(folder))
        missing.touch()  # older runs: shown as missing
        return None

    def predictions(self, run_id: str, split: str = "test"):
        npz = self.folder(run_id) / f"predictions_{split}.npz"
        if cachedir.trusted(npz):
            return cached_predictions(npz, npz)
        conll = self.path(run_id, f"predictions_{split}.conll")
        if conll is None:
            return None
        pred = cached_predictions(conll, npz)
        if conll.is_relative_to(self.cache):
            conll.unlink()  # a downloaded copy: the counts are all the report needs
        return pred

    def prefetch(self, run_ids, split: str = "test", workers: int = 8) -> None:
        """Fetch and parse the predictions and error analyses of many runs at once (the store's
        round trips overlap); what is cached already costs nothing."""
        def one(run_id):
            self.predictions(run_id, split)
            self.error_counts(run_id, split)

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, run_ids))

    def error_counts(self, run_id: str, split: str = "test") -> dict[str, int] | None:
        kept = self.folder(run_id) / f"error_counts_{split}.json"
        if cachedir.trusted(kept):
            return json.loads(kept.read_text(encoding="utf-8"))
        path = self.path(run_id, f"error_analysis_{split}.json")
        if path is None:
            return None
        try:
            counts = {k: int(v["count"]) for k, v in json.loads(path.read_text(encoding="utf-8")).items()}
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(f"{path}:0: not an error analysis ({{type1|type2|type3: {{count}}}}): {e}") from None
        kept.write_text(json.dumps(counts), encoding="utf-8")
        return counts


def vanilla_pairs(df: pd.DataFrame) -> pd.DataFrame:
    """Each finished non-Vanilla run beside the Vanilla run of the same model, dataset, lr, batch size
    and seed (the newest when a key ran twice): columns of the keys, ``run_id`` and ``vanilla_run_id``."""
    ok = finished(df)
    match = ["model", "dataset", "lr", "batch_size", "seed"]
    vanilla = ok[ok["scheme"] == "vanilla"].drop_duplicates(match)[match + ["run_id"]].rename(columns={"run_id": "vanilla_run_id"})
    others = ok[ok["scheme"] != "vanilla"].drop_duplicates(match + ["scheme"])[match + ["scheme", "run_id"]]
    return others.merge(vanilla, on=match)


def bootstrap_vs_vanilla(df: pd.DataFrame, files: RunFiles, split: str = "test", resamples: int = 10000, seed: int = 0,
                         boot: Bootstrap | None = None) -> pd.DataFrame:
    """Paired bootstrap (``bioner_grid.significance``) of every scheme run against its Vanilla run on
    the same ``split`` sentences: one row per pair with ``delta``, ``low``, ``high`` (F1 points), ``p``
    and ``within_noise``; pairs without logged predictions are left out. ``boot`` (the report's, with
    ``report.resamples`` and ``report.seed``) shares its per-run replicates with the tie marks."""
    boot = boot or Bootstrap(resamples, seed)
    rows = []
    for r in vanilla_pairs(df).sort_values("dataset").itertuples(index=False):  # one corpus's resamples are drawn once
        a, b = files.predictions(r.vanilla_run_id, split), files.predictions(r.run_id, split)
        if a is None or b is None:
            continue
        res = boot.compare([a], [b])
        rows.append({**r._asdict(), "f1_vanilla": res.f1_a, "f1": res.f1_b, "delta": res.delta, "low": res.low,
                     "high": res.high, "p": res.p, "within_noise": res.within_noise, "sentences": res.n,
                     "resamples": res.resamples})
    return pd.DataFrame(rows, columns=["model", "dataset", "lr", "batch_size", "seed", "scheme", "run_id", "vanilla_run_id",
                                       "f1_vanilla", "f1", "delta", "low", "high", "p", "within_noise", "sentences", "resamples"])


def cells_vs_vanilla(df: pd.DataFrame, ranker: Ranker) -> pd.DataFrame:
    """Per (dataset, model, scheme) cell: the paired bootstrap of its mean F1 over seeds against the
    Vanilla cell of the same model (the ΔF1 heatmap's value, so its "~" mark tests exactly the number
    it is drawn on); cells without predictions are left out."""
    ok = finished(df)
    rows = []
    for (dataset, model), runs in ok.groupby(["dataset", "model"]):
        vanilla = _run_ids(runs[runs["scheme"] == "vanilla"])
        for scheme, cell in runs[runs["scheme"] != "vanilla"].groupby("scheme"):
            r = ranker.compare(vanilla, _run_ids(cell)) if vanilla else None
            if r is not None:
                rows.append({"dataset": dataset, "model": model, "scheme": scheme, "delta": r.delta, "low": r.low,
                             "high": r.high, "p": r.p, "within_noise": r.within_noise, "n": len(cell)})
    return pd.DataFrame(rows, columns=["dataset", "model", "scheme", "delta", "low", "high", "p", "within_noise", "n"])


def significance_table(boot: pd.DataFrame, dataset: str, split: str = "test", resamples: int | None = None,
                       disp: dict[str, str] | None = None) -> Table:
    """One corpus: each scheme's ΔF1 against Vanilla (same model, seed) with its paired bootstrap
    95% interval and p, from the same resamples; "within noise" where the interval contains 0
    (equivalently p ≥ 0.05)."""
    b = boot[boot["dataset"] == dataset]
    disp = disp or {}
    resamples = resamples or (int(b["resamples"].iloc[0]) if "resamples" in b and len(b) else None)
    order = {s: i for i, s in enumerate(SCHEMES)}
    b = b.sort_values(["model", "seed", "scheme"], key=lambda c: c.map(order) if c.name == "scheme" else c)
    rows = [[Cell(shown(r.model, disp)), Cell(SCHEME_NAMES.get(r.scheme, r.scheme)), Cell(f"{r.seed:g}"), Cell(f"{r.f1_vanilla:.2f}"),
             Cell(f"{r.f1:.2f}"), Cell(f"{r.delta:+.2f}"), Cell(f"[{r.low:+.2f}, {r.high:+.2f}]"),
             Cell(p_text(r.p, resamples or 10000)), Cell("within noise" if r.within_noise else ("better" if r.delta > 0 else "worse"))]
            for r in b.itertuples(index=False)]
    n = int(b["sentences"].iloc[0]) if len(b) else 0
    return Table(f"{shown(dataset, disp)}: ΔF1 against Vanilla with paired bootstrap 95% intervals ({split} strict F1, F1 points)",
                 ["Model", "Scheme", "seed", "Vanilla F1", "F1", "ΔF1 (points)", "95% interval", "p", ""], rows,
                 note=f"Paired bootstrap over the {n} {split} sentences ({resamples} seeded resamples; Koehn 2004, "
                      "Berg-Kirkpatrick et al. 2012): the percentile interval and the two-sided p are read off the same "
                      "resamples, so p < 0.05 exactly when the interval excludes 0 (Efron & Tibshirani 1993, §15.4). "
                      "\"within noise\": the interval contains 0. The same numbers as "
                      "python -m bioner_grid.significance VANILLA_RUN RUN --uri URI.", labels=3)


ERROR_COLUMNS = [("type1", "Type-1 (spurious)"), ("type2", "Type-2 (missed)"), ("type3", "Type-3 (overlap, wrong)"),
                 ("fair_LE", "LE"), ("fair_BE", "BE"), ("fair_LBE", "LBE")]


def error_profile(df: pd.DataFrame, files: RunFiles | None, split: str = "test") -> pd.DataFrame:
    """Per finished run: WeLT's Type-1/2/3 counts (``error_analysis_{split}.json``) and FairEval's
    LE/BE/LBE (metrics ``{split}_fair_*``); NaN where not logged."""
    ok = finished(df)
    out = ok[["run_id", "model", "dataset", "scheme", "lr", "batch_size", "seed"]].copy()
    counts = [(files.error_counts(run_id, split) if files is not None else None) or {} for run_id in out["run_id"]]
    for key in ("type1", "type2", "type3"):
        out[key] = [c.get(key, float("nan")) for c in counts]
    for key in ("fair_LE", "fair_BE", "fair_LBE"):
        out[key] = ok[f"{split}_{key}"] if f"{split}_{key}" in ok else float("nan")
    return out


def _count(x: float, sign: str = "") -> str:
    """A count as an integer, a mean over seeds with one decimal."""
    return f"{x:{sign}.0f}" if float(x).is_integer() else f"{x:{sign}.1f}"


def error_profile_table(profile: pd.DataFrame, dataset: str, split: str = "test", disp: dict[str, str] | None = None) -> Table:
    """One corpus, rows model x scheme: error counts (mean over seeds) and, in brackets, the
    difference to Vanilla of the same model; fewer is better."""
    p = profile[profile["dataset"] == dataset]
    columns = [c for c, _ in ERROR_COLUMNS if p[c].notna().any()]
    mean = p.groupby(["model", "scheme"])[columns].mean()
    n = p.groupby(["model", "scheme"]).size()
    rows = []
    for (model, scheme) in sorted(mean.index, key=lambda k: (k[0], SCHEMES.index(k[1]) if k[1] in SCHEMES else 99)):
        base = mean.loc[(model, "vanilla")] if (model, "vanilla") in mean.index else None
        row = [Cell(shown(model, disp or {})), Cell(SCHEME_NAMES.get(scheme, scheme)), Cell(str(int(n[(model, scheme)])))]
        for c in columns:
            v = mean.loc[(model, scheme), c]
            delta = "" if base is None or scheme == "vanilla" or pd.isna(base[c]) or pd.isna(v) else f" ({_count(v - base[c], '+')})"
            row.append(Cell(MISSING if pd.isna(v) else f"{_count(v)}{delta}"))
        rows.append(row)
    names = dict(ERROR_COLUMNS)
    return Table(f"{shown(dataset, disp or {})}: error profile per model and scheme ({split}; counts, Δ vs Vanilla in brackets, fewer is better)",
                 ["Model", "Scheme", "n"] + [names[c] for c in columns], rows,
                 note="Type-1: predicted, no gold overlap; Type-2: gold entity missed (WeLT claims weighting recovers these); "
                      "Type-3: overlapping with a wrong span or label (WeLT's mismatch types). FairEval: LE label error, "
                      "BE boundary error, LBE label and boundary error.", labels=3)


# ---------------------------------------------------------------------------------------------
# Rendering


def md_escape(s: str) -> str:
    """Text safe in Markdown (and the HTML it may carry): no raw tags, no cell breaks, no links or
    code spans (``_`` is left as it is: names such as bc5cdr_chem are full of it)."""
    s = " ".join(html.escape(str(s), quote=False).splitlines())  # a newline in a label must not start a heading
    return "".join("\\" + ch if ch in "\\|*`[]" else ch for ch in s)


# A sign before a number (``-0.42``, ``[-1.10, +0.25]``), not a hyphen inside a name or exponent
# (``bc5cdr-chem``, ``1e-05``): printed as a real minus (U+2212; LaTeX ``$-$``) in what people read,
# left as ``-`` in the CSV files, which programs read.
SIGN = re.compile(r"(?<![\w.])-(?=\.?\d)")
MINUS = "\u2212"


def minus(text: str) -> str:
    return SIGN.sub(MINUS, str(text))


def to_markdown(t: Table) -> str:
    def cell(c):
        text = minus(md_escape(c.text))
        return f"**{text}**" if c.mark == "best" else f"<u>{text}</u>" if c.mark == "tied" else text

    align = "|" + ":---|" * t.labels + "---:|" * (len(t.header) - t.labels)
    lines = [f"### {minus(md_escape(t.title))}", "", "| " + " | ".join(md_escape(h) for h in t.header) + " |", align]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in t.rows]
    return "\n".join(lines + ([f"\n{minus(md_escape(t.note))}"] if t.note else []) + [""])


LATEX = str.maketrans({"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$", "{": r"\{",
                       "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
                       ">": r"\textgreater{}", "±": r"$\pm$", "Δ": r"$\Delta$", "—": "---", MINUS: "$-$", "−": "$-$",
                       "–": "--", "§": r"\S{}", "≥": r"$\geq$", "≤": r"$\leq$", "★": r"$\star$"})


def to_latex(t: Table, label: str = "") -> str:
    """A booktabs table to paste into a paper (needs ``\\usepackage{booktabs}``): escaped text, a
    real minus, the caption and the note under the rule."""
    def esc(s):
        return minus(s).translate(LATEX)

    def cell(c):
        return rf"\textbf{{{esc(c.text)}}}" if c.mark == "best" else rf"\underline{{{esc(c.text)}}}" if c.mark == "tied" else esc(c.text)

    lines = [r"\begin{table}[ht]", r"\centering", rf"\caption{{{esc(t.title)}}}"] + ([rf"\label{{{label}}}"] if label else [])
    lines += [r"\begin{tabular}{" + "l" * t.labels + "r" * (len(t.header) - t.labels) + "}",
              r"\toprule", " & ".join(esc(h) for h in t.header) + r" \\", r"\midrule"]
    lines += [" & ".join(cell(c) for c in row) + r" \\" for row in t.rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    if t.note:
        lines += [r"\par\smallskip{\footnotesize " + esc(t.note) + "}"]
    return "\n".join(lines + [r"\end{table}", ""])


FORMULA = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet reads as the start of a formula


def csv_cell(value):
    """A CSV cell a spreadsheet will not run (OWASP's CSV-injection rule): text starting with
    ``= + - @``, a tab or a CR gets a leading apostrophe; numbers (``-0.42``, ``+3.60``) stay numbers."""
    if not isinstance(value, str) or not value.startswith(FORMULA):
        return value
    try:
        float(value)
        return value
    except ValueError:
        return "'" + value


def to_csv(t: Table, path: Path, written: list[Path] | None = None) -> None:
    def rows(f):
        w = csv.writer(f)
        w.writerow([csv_cell(h) for h in t.header] + ["marks"])
        for row in t.rows:
            w.writerow([csv_cell(c.text) for c in row]
                       + [csv_cell(";".join(f"{t.header[i]}:{c.mark}" for i, c in enumerate(row) if c.mark))])

    save(path, rows, written)


def to_html(t: Table) -> str:
    def cell(c, i):
        text = html.escape(minus(c.text))
        kind = "label" if i < t.labels else "num"
        if c.mark == "best":
            return f'<td class="{kind} best"><strong>{text}</strong></td>'
        if c.mark == "tied":
            return f'<td class="{kind} tied"><u>{text}</u></td>'
        return f'<td class="{kind}">{text}</td>'

    head = "".join(f'<th class="{"label" if i < t.labels else "num"}">{html.escape(h)}</th>' for i, h in enumerate(t.header))
    body = "".join("<tr>" + "".join(cell(c, i) for i, c in enumerate(row)) + "</tr>" for row in t.rows)
    note = f'<p class="note">{html.escape(minus(t.note))}</p>' if t.note else ""
    return f"<h3>{html.escape(minus(t.title))}</h3><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title><style>
body{{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222;line-height:1.4}}
table{{border-collapse:collapse;margin:.5em 0 .3em;font-variant-numeric:tabular-nums;font-size:14px}}
th,td{{padding:3px 10px;white-space:nowrap}} thead th{{border-top:2px solid #222;border-bottom:1px solid #222}}
tbody tr:last-child td{{border-bottom:2px solid #222}} .num{{text-align:right}} .label{{text-align:left}}
h3{{margin-top:2em;font-size:1.05em}} p.note{{font-size:13px;color:#444;max-width:60em;margin-top:.2em}}
figure{{margin:2em 0}} img{{max-width:100%}} figcaption{{font-size:13px;color:#444;max-width:60em}}
</style></head><body><h1>{title}</h1>{body}</body></html>"""


# ---------------------------------------------------------------------------------------------
# The report


def build(df: pd.DataFrame, split: str = "test", mode: str = "strict", boot: pd.DataFrame | None = None,
          profile: pd.DataFrame | None = None, ranker: Ranker | None = None) -> tuple[list[Table], list[str]]:
    """All tables of a report and the notes about failed and missing runs; ``boot``
    (``bootstrap_vs_vanilla``) and ``profile`` (``error_profile``) add their tables per corpus;
    ``ranker`` (with the runs' predictions) decides the tie marks.

    Every store with a finished run gets at least one F1 table: ``ranking_table`` per corpus ranks
    its configurations over whatever axes the runs vary in (model, head, scheme, lr, batch size).
    The other tables need their axis (several schemes, several learning rates or batch sizes)."""
    ranker = ranker or Ranker(split=split, mode=mode)
    disp = display_names(df)
    tables: list[Table] = []
    notes = []
    failed = df[df["status"] != "FINISHED"]
    notes.append(f"{len(df)} runs read: {len(df) - len(failed)} finished, {len(failed)} not finished "
                 f"({', '.join(f'{n} {s}' for s, n in failed['status'].value_counts().items()) or 'none'}), left out.")
    bad = non_finite_note(df)
    if bad:
        notes.append(bad.format(missing=MISSING))
    if pruned(df).any():
        notes.append(f"{int(pruned(df).sum())} pruned run(s) (stopped early by an adaptive search: tag pruned=true) "
                     "left out of every table and ranking.")
    missing = missing_configurations(df)
    if missing:
        notes.append(f"{len(missing)} configuration(s) without a finished run (shown as {MISSING}): "
                     + "; ".join("/".join(shown(x, disp) for x in c[:2]) + "/" + scheme_names(df).get(c[2], c[2]) for c in missing))
    if finished(df).empty:
        return tables, notes
    datasets = sorted(set(finished(df)["dataset"]))
    schemes = set(df["scheme"])
    if len(schemes) > 1:
        tables.append(overview_table(df, split, mode, ranker))
    tables += [ranking_table(df, d, split, mode, ranker, tuple(values))  # an all-in-one corpus: one per member set
               for (d, *values), _ in finished(df).groupby(["dataset", *(v.column for v in VARIANTS)], dropna=False)]
    if len(schemes) > 1:
        tables += [welt_table(df, d, split, mode, ranker) for d in datasets]
        tables += [wins_table(df, split, mode, ranker)]
        tables.append(best_scheme_table(df, split, mode))
        if "vanilla" in schemes:
            tables.append(wilcoxon_table(df, split, mode))
        if boot is not None and not boot.empty:
            tables += [significance_table(boot, d, split, disp=disp) for d in datasets if (boot["dataset"] == d).any()]
        if profile is not None:
            tables += [error_profile_table(profile, d, split, disp) for d in datasets
                       if profile.loc[profile["dataset"] == d, [c for c, _ in ERROR_COLUMNS]].notna().any().any()]
        if any(c.endswith("_fair_f1") for c in df.columns):
            tables += [faireval_table(df, d, split) for d in datasets]
    tables += variant_tables(df, split, ranker)  # the all-in-one corpus: AIONER's Table 3 (report_aio)
    # Issue 21: the cross-corpus matrices (report_cross) and learning curves (report_curve), where runs have them
    tables += [Table(title, header, [[Cell(c) for c in row] for row in rows], note, labels=1) for title, header, rows, note
               in [*report_cross.tables(df, mode), *report_curve.tables(df, split, mode)]]
    if df["lr"].nunique() > 1 or df["batch_size"].nunique() > 1:
        tables.append(foundation_table(df, split, mode))
    tables += list(corpus_tables(df))
    comparison = paper_comparison(df, split, mode)
    if comparison.rows:
        tables.append(comparison)
    if ranker.untested:
        notes.append(f"{ranker.untested} comparison(s) with the best could not be tested for a tie (no {split} predictions "
                     "logged, other sentences, or report.mode=default): not underlined.")
    return tables, notes


def save(path: Path, content, written: list[Path] | None = None) -> Path:
    """Write one output file into a temporary file in its folder, renamed over ``path``
    (``corpus.write_atomic``): a symlink planted at ``path`` is replaced, never followed, and a
    killed report leaves no half file. ``content``: text, bytes, or a function writing to the open
    (text) file. The path is added to ``written`` (what the report run uploads: those, nothing else)."""
    binary = isinstance(content, bytes)
    write_atomic(path, content if callable(content) else lambda f: f.write(content), binary=binary)
    if written is not None:
        written.append(path)
    return path


def write(df: pd.DataFrame, out: Path, split: str = "test", mode: str = "strict", title: str = "bioner-grid report",
          cache: Path | None = None, resamples: int = 10000, written: list[Path] | None = None, seed: int = 0) -> Path:
    """Write tables (md, tex, csv), figures (png, pdf, svg) and report.html into ``out``; returns the
    HTML path. Per-run artifacts (predictions for the paired bootstrap, error analyses) are fetched
    once into ``cache`` (default ``out/cache``). ``resamples`` and ``seed`` (``report.resamples``,
    ``report.seed``) drive every interval, p-value and tie mark. Every file is written by ``save``
    (a symlink in the way is replaced, never followed) and listed in ``written``."""
    from bioner_grid.report_figures import figures

    out.mkdir(parents=True, exist_ok=True)
    files = RunFiles(cache or out / "cache", df.attrs.get("tracking_uri"))
    ok = finished(df)
    multi = df["scheme"].nunique() > 1 and not ok.empty
    if not ok.empty:  # the tie marks of every store need the predictions, not only a scheme study's
        files.prefetch(ok["run_id"], split)
    ranker = Ranker(files, split, mode, resamples, seed)
    boot = bootstrap_vs_vanilla(df, files, split, resamples, seed, boot=ranker.boot) if multi else None
    cells = cells_vs_vanilla(df, ranker) if multi else None
    profile = error_profile(df, files, split) if multi else None
    tables, notes = build(df, split, mode, boot, profile, ranker)
    written = [] if written is None else written
    save(out / "runs.csv", lambda f: df.map(csv_cell).to_csv(f, index=False), written)
    for i, t in enumerate(tables, start=1):
        stem = f"table{i:02d}"
        save(out / f"{stem}.md", to_markdown(t), written)
        save(out / f"{stem}.tex", to_latex(t, label=f"tab:{stem}"), written)
        to_csv(t, out / f"{stem}.csv", written)
    images = figures(df, out, split, mode, cells)
    images += report_cross.figures(df, out, mode) + report_curve.figures(df, out, split, mode)
    for path, _ in images:  # each figure as PNG (shown in the page), PDF and SVG (for a paper)
        written += [p for p in (path, path.with_suffix(".pdf"), path.with_suffix(".svg")) if p.is_file()]
    body = "".join(f'<p class="note">{html.escape(minus(n))}</p>' for n in notes)
    body += "".join(to_html(t) for t in tables)
    for path, caption in images:
        data = base64.b64encode(path.read_bytes()).decode()
        links = " ".join(f'<a href="{html.escape(path.with_suffix(x).name)}">{x[1:].upper()}</a>' for x in (".pdf", ".svg"))
        body += (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
                 f"<figcaption>{html.escape(minus(caption))} ({links})</figcaption></figure>")
    page = out / "report.html"
    save(page, PAGE.format(title=html.escape(title), body=body), written)
    save(out / "report.md", "\n".join([f"# {md_escape(title)}", ""] + [minus(md_escape(n)) for n in notes] + [""]
                                      + [to_markdown(t) for t in tables]), written)
    return page


def main(argv: list[str]) -> int:
    from bioner_grid.store import RunStore

    cfg = compose(argv)
    r = cfg.report
    if r.resamples < 1000:  # spec.problems says the same for a job's config; the report composes its own
        raise ConfigError(f"report.resamples={r.resamples}: must be at least 1000")
    experiments = [e.strip() for e in str(r.experiment).split(",") if e.strip()]
    for name in experiments:  # submitted sweeps whose jobs have all ended get their summary now
        for line in settle_submitted(cfg.tracking.uri, name):
            print(redact.text(line))
    df = load_runs(cfg.tracking.uri, experiments, r.filter or "")
    if df.empty:
        print(f"error: no runs in experiment(s) {', '.join(experiments)} at {redact.text(cfg.tracking.uri)}"
              + (f" matching {r.filter!r}" if r.filter else ""), file=sys.stderr)
        return 2
    out = Path(r.out)
    cache = Path(cfg.data.cache) / "run_artifacts"  # outside report.out: not logged with the report
    written: list[Path] = []
    page = write(df, out, r.split, r.mode, title=f"bioner-grid report: {', '.join(experiments)}", cache=cache,
                 written=written, resamples=r.resamples, seed=r.seed)
    # Report runs go to their own experiment, not among the training runs they summarise (its
    # artifacts under the configured tracking.artifact_location, as the training runs').
    store = RunStore.from_config(cfg.tracking, experiment=f"{experiments[0]}-reports")
    run = store.create_run(f"report {', '.join(experiments)}",
                           {"kind": "report", "filter": r.filter or "", "experiments": ",".join(experiments)})
    for path in written:  # only what this report wrote: never a stray file beside it (a .env, a key)
        store.log_artifact(run.info.run_id, path)
    store.terminate(run.info.run_id, "FINISHED")
    print(redact.text(f"{len(df)} runs -> {page}"))
    return 0


if __name__ == "__main__":
    from bioner_grid.cli import run

    sys.exit(run("report"))
