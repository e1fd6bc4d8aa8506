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

from bioner_grid import aio, cachedir, redact
from bioner_grid.errors import DataError
from bioner_grid.config import compose
from bioner_grid.corpus import write_atomic
from bioner_grid.identity import GRID_KEYS, defines_result
from bioner_grid.runtable import (
    SCHEME_NAMES,
    SCHEMES,
    best_lr,
    cell_stats,
    chooser,
    finished,
    metric_column,
    non_finite_note,
    scheme_names,
    schemes_of,
)
from bioner_grid.significance import cached_predictions, compare
from bioner_grid.sweep import settle_submitted

log = logging.getLogger(__name__)

KEYS = list(GRID_KEYS)
MEASURES = {"precision": "P", "recall": "R", "f1": "F"}
MISSING = "—"
# Corpus variants' report hooks, called for any runs: the run tag each reads into a column, its
# name for a corpus in the corpus tables, its own tables (aio.ReportHooks: the all-in-one corpus).
VARIANTS = (aio.REPORT,)


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
                                     "non_finite"])
    if "tags.kind" in df:  # report runs (older stores kept them beside the training runs) and sweep parents
        df = df[~df["tags.kind"].fillna("").isin(["report", "sweep"])]
    columns = {"run_id": df["run_id"], "status": df["status"]}
    columns.update({key: df.get(f"tags.{key}") for key in KEYS})
    columns.update({v.column: df.get(f"tags.{v.column}") for v in VARIANTS})
    columns["scheme_label"] = df["params.scheme.label"] if "params.scheme.label" in df else None
    columns["non_finite"] = df.get("non_finite", "")  # scores logged as inf/NaN
    for c in (c for c in df.columns if c.startswith("metrics.")):  # read grouped (test/strict_f1) or older flat
        columns[c[len("metrics."):]] = df[c]
    out = pd.DataFrame(columns, index=df.index)
    for key in ("lr", "batch_size", "seed"):
        out[key] = pd.to_numeric(out[key], errors="coerce")
    settings = df[[c for c in df.columns if (c.startswith("params.") and defines_result(c[len("params."):])
                                            and c != "params.train.seed") or c.startswith("tags.data_sha256.")]]
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
        sub = settings.loc[idx, columns].astype(str)
        scheme = runs.loc[idx, "scheme"].astype(str)
        # A scheme's own settings (scheme.kind, .beta) differ from scheme to scheme by definition: only
        # a difference within one scheme makes a variant.
        varying = [c for c in columns if (sub[c].groupby(scheme).nunique().max() if c.startswith("params.scheme.")
                                          else sub[c].nunique()) > 1]
        for i in idx:
            if varying:
                shown = ", ".join(f"{_setting_name(c)}={sub.at[i, c][:8] if c.startswith('tags.') else sub.at[i, c]}"
                                  for c in varying)
                labels.at[i] = f"{runs.at[i, 'model']} ({shown})"
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
    mark: str | None = None  # "best" | "second"


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[Cell]]
    note: str = ""


def fmt(mean: float | None, std: float | None = None, n: int = 1) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return MISSING
    return f"{mean:.2f} ± {std:.2f} (n={n})" if n > 1 else f"{mean:.2f}"


def marks(values: list[float | None]) -> list[str | None]:
    """Best and second-best of a row, compared as printed (two decimals); ties share the mark."""
    shown = [round(v, 2) if v is not None and not math.isnan(v) else None for v in values]
    distinct = sorted({v for v in shown if v is not None}, reverse=True)
    best = distinct[0] if distinct else None
    second = distinct[1] if len(distinct) > 1 else None
    return ["best" if v is not None and v == best else "second" if v is not None and v == second else None for v in shown]


def welt_table(df: pd.DataFrame, dataset: str, split: str = "test", mode: str = "strict") -> Table:
    """WeLT Tables 2-9 for one corpus: rows model x {P, R, F}, columns the seven schemes. Best and
    second best are marked by the dev scores when the runs have them (``chooser``), the values shown
    are ``split``'s."""
    ok = finished(df[df["dataset"] == dataset])
    choose = chooser(df, split, mode)
    schemes, names = schemes_of(df), scheme_names(df)
    rows = []
    for model in sorted(set(df.loc[df["dataset"] == dataset, "model"])):
        for measure, short in MEASURES.items():
            st = cell_stats(ok[ok["model"] == model], ["scheme"], metric_column(split, mode, measure))
            means = [st["mean"].get(s) for s in schemes]
            chosen = means if choose == split else _means(ok[ok["model"] == model], ["scheme"], metric_column(choose, mode, measure), schemes)
            row = [Cell(model), Cell(short)]
            for s, mean, mark in zip(schemes, means, marks(chosen)):
                std, n = (st["std"].get(s), int(st["n"].get(s))) if s in st.index else (None, 0)
                row.append(Cell(fmt(mean, std, n), mark))
            rows.append(row)
    return Table(f"{dataset}: {split} {mode} P/R/F1 (%) per model and scheme (mean ± sd over seeds; "
                 f"bold / underlined: best / second on {choose}, {split} shown)", ["Model", ""] + [names.get(s, s) for s in schemes], rows,
                 note=seeds_note(ok))


def overview_table(df: pd.DataFrame, split: str = "test", mode: str = "strict") -> Table:
    """The study at a glance: one row per corpus (and model), one column per scheme, F1 as mean ± sd
    over seeds (n), best and second marked by the dev scores when the runs have them."""
    ok = finished(df)
    choose = chooser(df, split, mode)
    schemes, names = schemes_of(df), scheme_names(df)
    column = metric_column(split, mode, "f1")
    rows = []
    for (dataset, model), runs in ok.groupby(["dataset", "model"], sort=True):
        st = cell_stats(runs, ["scheme"], column)
        chosen = [st["mean"].get(s) for s in schemes] if choose == split else \
            _means(runs, ["scheme"], metric_column(choose, mode, "f1"), schemes)
        row = [Cell(dataset), Cell(model)]
        for s, mark in zip(schemes, marks(chosen)):
            row.append(Cell(fmt(st["mean"][s], st["std"][s], int(st["n"][s])), mark) if s in st.index else Cell(MISSING))
        rows.append(row)
    return Table(f"Overview: {split} {mode} F1 (%) per corpus and scheme (mean ± sd over seeds; bold / underlined: "
                 f"best / second on {choose})", ["Dataset", "Model"] + [names.get(s, s) for s in schemes], rows,
                 note=seeds_note(ok))


def missing_configurations(df: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(model, dataset, scheme) of the grid spanned by the runs that has no finished run."""
    ok = set(map(tuple, finished(df)[["model", "dataset", "scheme"]].values))
    grid = [(m, d, s) for m in sorted(set(df["model"])) for d in sorted(set(df["dataset"])) for s in sorted(set(df["scheme"]))]
    return [c for c in grid if c not in ok]


def corpus_tables(df: pd.DataFrame) -> tuple[Table, Table]:
    """WeLT Table 1 (class distribution of the training split) and Table 11 (sentences per split)."""
    classes, sentences = [], []
    for (dataset, *values), runs in finished(df).groupby(["dataset", *(v.column for v in VARIANTS)], dropna=False):
        r = runs.iloc[0]
        for variant, value in zip(VARIANTS, values):  # all-in-one runs differ by their member corpora
            dataset = variant.corpus_label(dataset, value)
        if "data_train_n_O" not in r or pd.isna(r.get("data_train_n_O")):
            continue
        n = {c: r[f"data_train_n_{c}"] for c in "OBI"}
        total = sum(n.values())
        classes.append([Cell(dataset)] + [Cell(f"{100 * n[c] / total:.2f}") for c in "OBI"])
        sentences.append([Cell(dataset)] + [Cell(str(int(r[f"data_{s}_sentences"]))) for s in ("train", "dev", "test")])
    return (Table("Class distribution of the training split (%)", ["Dataset", "O", "B", "I"], classes),
            Table("Sentences per split", ["Dataset", "Train", "Dev", "Test"], sentences))


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
    names = scheme_names(df)
    for key in ours["f1"].index:
        if key not in paper.index:
            continue
        p = paper.loc[key]
        f1 = ours["f1"].loc[key]
        rows.append([Cell(key[0]), Cell(key[1]), Cell(names.get(key[2], key[2]))]
                    + [Cell(fmt(ours[m].loc[key, "mean"], ours[m].loc[key, "std"], int(ours[m].loc[key, "n"]))) for m in MEASURES]
                    + [Cell(f"{p[m]:.2f}") for m in MEASURES]
                    + [Cell(f"{f1['mean'] - p['f1']:+.2f}")])
    return Table(f"Ours ({split}, {mode}) versus the WeLT paper", ["Dataset", "Model", "Scheme", "P", "R", "F1",
                                                                   "paper P", "paper R", "paper F1", "ΔF1 (points)"], rows)


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
                 ["Scheme", "pairs", "median ΔF1 (points)", "wins", "losses", "ties", "Wilcoxon p", "smallest reachable p"], rows, note)


def wins_table(df: pd.DataFrame, split: str = "test", mode: str = "strict") -> Table:
    """Per scheme: in how many (model, dataset) cells it is best and second best (mean F1 on the
    chooser split: dev when logged)."""
    choose = chooser(df, split, mode)
    st = cell_stats(finished(df), ["model", "dataset", "scheme"], metric_column(choose, mode, "f1"))["mean"]
    counts: Counter = Counter()  # (scheme, "best" | "second") -> cells
    for _, cell in st.groupby(level=[0, 1]):
        counts.update((k[2], m) for k, m in zip(cell.index, marks(list(cell.values))) if m)
    present, names = schemes_of(df), scheme_names(df)
    return Table(f"Wins: (model, dataset) cells where a scheme is best / second best (chosen on {choose} {mode} F1)", ["Scheme", "best", "second"],
                 [[Cell(names[s]), Cell(str(counts[s, "best"])), Cell(str(counts[s, "second"]))] for s in present])


def faireval_table(df: pd.DataFrame, dataset: str, split: str = "test") -> Table:
    """WeLT Table 10: seqeval strict F1 beside FairEval fair F1 per model x scheme for one corpus."""
    ok = finished(df[df["dataset"] == dataset])
    strict = cell_stats(ok, ["model", "scheme"], f"{split}_strict_f1")["mean"]
    fair = cell_stats(ok, ["model", "scheme"], f"{split}_fair_f1")["mean"] if f"{split}_fair_f1" in ok else pd.Series(dtype=float)
    schemes, names = schemes_of(ok), scheme_names(df)
    rows = [[Cell(model)] + [Cell(f"{fmt(strict.get((model, s)))} / {fmt(fair.get((model, s)))}") for s in schemes]
            for model in sorted(set(ok["model"]))]
    return Table(f"{dataset}: seqeval strict F1 / FairEval fair F1 ({split})", ["Model"] + [names[s] for s in schemes], rows)


def _table(title: str, header: list[str], rows: list[list[str]]) -> Table:
    return Table(title, header, [[Cell(text) for text in row] for row in rows])


def variant_tables(df: pd.DataFrame, split: str = "test") -> list[Table]:
    """The tables the corpus variants of the runs add (``VARIANTS``)."""
    return [_table(*t) for v in VARIANTS for t in v.tables(df, split, fmt)]


def aio_table(df: pd.DataFrame, split: str = "test") -> Table:
    """AIONER's layout: per member corpus, single-corpus versus all-in-one strict F1 (``aio.ReportHooks.table``)."""
    return _table(*aio.REPORT.table(df, split, fmt))


def foundation_table(df: pd.DataFrame, split: str = "test", mode: str = "strict") -> Table:
    """F1 per model x batch size at the learning rate chosen on dev for that model and batch size
    (the foundation study's table); the note lists where choosing on the shown split would differ."""
    best = best_lr(df, split, mode)
    choose = chooser(df, split, mode)
    sizes = sorted(best["batch_size"].unique())
    rows, differ = [], []
    for model, m in best.groupby("model"):
        row = [Cell(model)]
        for bs in sizes:
            r = m[m["batch_size"] == bs]
            if r.empty:
                row.append(Cell(MISSING))
                continue
            r = r.iloc[0]
            row.append(Cell(f"{fmt(r['mean'], r['std'], r['n'])} (lr {r['lr']:g}, n={r['n']})"))
            if choose != split and r["split_lr"] != r["lr"]:
                differ.append(f"{model} batch {int(bs)}: lr {r['split_lr']:g} ({r['split_best']:.2f}) instead of {r['lr']:g} ({r['mean']:.2f})")
        rows.append(row)
    note = (f"Learning rate chosen on {choose} {mode} F1 per model and batch size; {split} F1 shown at that choice (mean ± sd over n seeds). "
            + (f"Choosing on {split} would have picked: " + "; ".join(differ) + "." if differ
               else f"Choosing on {split} would have picked the same learning rates." if choose != split
               else "No dev scores logged: chosen on the shown split itself, which flatters the result."))
    return Table(f"{split} {mode} F1 (%) per model and batch size at the learning rate chosen on {choose}",
                 ["Model"] + [f"batch {int(b)}" for b in sizes], rows, note)


def best_scheme_table(df: pd.DataFrame, split: str = "test", mode: str = "strict") -> Table:
    """Per (dataset, model): the scheme with the best mean F1 on dev, and the shown split's F1 at
    that choice beside Vanilla's; the last column says whether choosing on the shown split would differ."""
    ok = finished(df)
    choose = chooser(df, split, mode)
    keys = ["dataset", "model", "scheme"]
    by = cell_stats(ok, keys, metric_column(choose, mode, "f1"))["mean"].dropna()
    shown = cell_stats(ok, keys, metric_column(split, mode, "f1"))
    rows = []
    for (dataset, model), values in by.groupby(level=[0, 1]):
        scheme = values.idxmax()[2]
        own = shown["mean"].xs((dataset, model), level=[0, 1]).dropna()
        mean, n = shown["mean"].get((dataset, model, scheme)), int(shown["n"].get((dataset, model, scheme), 0))
        vanilla = shown["mean"].get((dataset, model, "vanilla"))
        delta = MISSING if vanilla is None or mean is None else f"{mean - vanilla:+.2f}"
        other = own.idxmax() if len(own) else None
        rows.append([Cell(dataset), Cell(model), Cell(SCHEME_NAMES.get(scheme, scheme)), Cell(f"{values.max():.2f}"),
                     Cell(fmt(mean)), Cell(str(n)), Cell(fmt(vanilla)), Cell(delta),
                     Cell("same" if other == scheme else SCHEME_NAMES.get(other, str(other)))])
    return Table(f"Best scheme per model and corpus, chosen on {choose} {mode} F1; {split} F1 (%) shown at that choice",
                 ["Dataset", "Model", f"chosen on {choose}", f"{choose} F1", f"{split} F1", "n", f"Vanilla {split} F1",
                  "ΔF1 vs Vanilla (points)", f"{split} would choose"], rows)


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


def bootstrap_vs_vanilla(df: pd.DataFrame, files: RunFiles, split: str = "test", resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Paired bootstrap (``bioner_grid.significance``) of every scheme run against its Vanilla run on
    the same ``split`` sentences: one row per pair with ``delta``, ``low``, ``high`` (F1 points), ``p``
    and ``within_noise``; pairs without logged predictions are left out."""
    rows = []
    for r in vanilla_pairs(df).sort_values("dataset").itertuples(index=False):  # one corpus's resamples are drawn once
        a, b = files.predictions(r.vanilla_run_id, split), files.predictions(r.run_id, split)
        if a is None or b is None:
            continue
        res = compare(a, b, resamples, seed)
        rows.append({**r._asdict(), "f1_vanilla": res.f1_a, "f1": res.f1_b, "delta": res.delta, "low": res.low,
                     "high": res.high, "p": res.p, "within_noise": res.within_noise, "sentences": res.n})
    return pd.DataFrame(rows, columns=["model", "dataset", "lr", "batch_size", "seed", "scheme", "run_id", "vanilla_run_id",
                                       "f1_vanilla", "f1", "delta", "low", "high", "p", "within_noise", "sentences"])


def significance_table(boot: pd.DataFrame, dataset: str, split: str = "test", resamples: int = 1000) -> Table:
    """One corpus: each scheme's ΔF1 against Vanilla (same model, seed) with its paired bootstrap
    95% interval and p; "within noise" where the interval contains 0."""
    b = boot[boot["dataset"] == dataset]
    order = {s: i for i, s in enumerate(SCHEMES)}
    b = b.sort_values(["model", "seed", "scheme"], key=lambda c: c.map(order) if c.name == "scheme" else c)
    rows = [[Cell(r.model), Cell(SCHEME_NAMES.get(r.scheme, r.scheme)), Cell(f"{r.seed:g}"), Cell(f"{r.f1_vanilla:.2f}"),
             Cell(f"{r.f1:.2f}"), Cell(f"{r.delta:+.2f}"), Cell(f"[{r.low:+.2f}, {r.high:+.2f}]"),
             Cell(f"{r.p:.3f}"), Cell("within noise" if r.within_noise else ("better" if r.delta > 0 else "worse"))]
            for r in b.itertuples(index=False)]
    n = int(b["sentences"].iloc[0]) if len(b) else 0
    return Table(f"{dataset}: ΔF1 against Vanilla with paired bootstrap 95% intervals ({split} strict F1, F1 points)",
                 ["Model", "Scheme", "seed", "Vanilla F1", "F1", "ΔF1 (points)", "95% interval", "p", ""], rows,
                 note=f"Paired bootstrap over the {n} {split} sentences ({resamples} seeded resamples; Koehn 2004, "
                      "Berg-Kirkpatrick et al. 2012); p two-sided. \"within noise\": the interval contains 0.")


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


def error_profile_table(profile: pd.DataFrame, dataset: str, split: str = "test") -> Table:
    """One corpus, rows model x scheme: error counts (mean over seeds) and, in brackets, the
    difference to Vanilla of the same model; fewer is better."""
    p = profile[profile["dataset"] == dataset]
    columns = [c for c, _ in ERROR_COLUMNS if p[c].notna().any()]
    mean = p.groupby(["model", "scheme"])[columns].mean()
    n = p.groupby(["model", "scheme"]).size()
    rows = []
    for (model, scheme) in sorted(mean.index, key=lambda k: (k[0], SCHEMES.index(k[1]) if k[1] in SCHEMES else 99)):
        base = mean.loc[(model, "vanilla")] if (model, "vanilla") in mean.index else None
        row = [Cell(model), Cell(SCHEME_NAMES.get(scheme, scheme)), Cell(str(int(n[(model, scheme)])))]
        for c in columns:
            v = mean.loc[(model, scheme), c]
            delta = "" if base is None or scheme == "vanilla" or pd.isna(base[c]) or pd.isna(v) else f" ({_count(v - base[c], '+')})"
            row.append(Cell(MISSING if pd.isna(v) else f"{_count(v)}{delta}"))
        rows.append(row)
    names = dict(ERROR_COLUMNS)
    return Table(f"{dataset}: error profile per model and scheme ({split}; counts, Δ vs Vanilla in brackets, fewer is better)",
                 ["Model", "Scheme", "n"] + [names[c] for c in columns], rows,
                 note="Type-1: predicted, no gold overlap; Type-2: gold entity missed (WeLT claims weighting recovers these); "
                      "Type-3: overlapping with a wrong span or label (WeLT's mismatch types). FairEval: LE label error, "
                      "BE boundary error, LBE label and boundary error.")


# ---------------------------------------------------------------------------------------------
# Rendering


def md_escape(s: str) -> str:
    """Text safe in Markdown (and the HTML it may carry): no raw tags, no cell breaks, no links or
    code spans (``_`` is left as it is: names such as bc5cdr_chem are full of it)."""
    s = " ".join(html.escape(str(s), quote=False).splitlines())  # a newline in a label must not start a heading
    return "".join("\\" + ch if ch in "\\|*`[]" else ch for ch in s)


def to_markdown(t: Table) -> str:
    def cell(c):
        text = md_escape(c.text)
        return f"**{text}**" if c.mark == "best" else f"<u>{text}</u>" if c.mark == "second" else text

    lines = [f"### {md_escape(t.title)}", "", "| " + " | ".join(md_escape(h) for h in t.header) + " |", "|" + "---|" * len(t.header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in t.rows]
    return "\n".join(lines + ([f"\n{md_escape(t.note)}"] if t.note else []) + [""])


LATEX = str.maketrans({"\\": r"\textbackslash{}", "_": r"\_", "%": r"\%", "&": r"\&", "#": r"\#", "$": r"\$", "{": r"\{",
                       "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "<": r"\textless{}",
                       ">": r"\textgreater{}", "±": r"$\pm$", "Δ": r"$\Delta$", "—": "---"})


def to_latex(t: Table) -> str:
    def esc(s):
        return str(s).translate(LATEX)

    def cell(c):
        return rf"\textbf{{{esc(c.text)}}}" if c.mark == "best" else rf"\underline{{{esc(c.text)}}}" if c.mark == "second" else esc(c.text)

    lines = [r"\begin{table}[ht]", r"\centering", rf"\caption{{{esc(t.title)}}}", r"\begin{tabular}{" + "l" * 2 + "r" * (len(t.header) - 2) + "}",
             r"\toprule", " & ".join(esc(h) for h in t.header) + r" \\", r"\midrule"]
    lines += [" & ".join(cell(c) for c in row) + r" \\" for row in t.rows]
    return "\n".join(lines + [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""])


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
    def cell(c):
        text = html.escape(c.text)
        if c.mark == "best":
            return f'<td class="best"><strong>{text}</strong></td>'
        if c.mark == "second":
            return f'<td class="second"><u>{text}</u></td>'
        return f"<td>{text}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in t.header)
    body = "".join("<tr>" + "".join(cell(c) for c in row) + "</tr>" for row in t.rows)
    note = f"<p>{html.escape(t.note)}</p>" if t.note else ""
    return f"<h3>{html.escape(t.title)}</h3><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>{title}</title><style>
body{{font-family:sans-serif;margin:2em;max-width:1200px}} table{{border-collapse:collapse;margin:1em 0}}
th,td{{border-bottom:1px solid #ccc;padding:3px 8px;text-align:right}} th{{border-bottom:2px solid #333}}
td:first-child,th:first-child{{text-align:left}} img{{max-width:100%}}
</style></head><body><h1>{title}</h1>{body}</body></html>"""


# ---------------------------------------------------------------------------------------------
# The report


def build(df: pd.DataFrame, split: str = "test", mode: str = "strict", boot: pd.DataFrame | None = None,
          profile: pd.DataFrame | None = None) -> tuple[list[Table], list[str]]:
    """All tables of a report and the notes about failed and missing runs; ``boot``
    (``bootstrap_vs_vanilla``) and ``profile`` (``error_profile``) add their tables per corpus."""
    tables: list[Table] = []
    notes = []
    failed = df[df["status"] != "FINISHED"]
    notes.append(f"{len(df)} runs read: {len(df) - len(failed)} finished, {len(failed)} not finished "
                 f"({', '.join(f'{n} {s}' for s, n in failed['status'].value_counts().items()) or 'none'}), left out.")
    bad = non_finite_note(df)
    if bad:
        notes.append(bad.format(missing=MISSING))
    missing = missing_configurations(df)
    if missing:
        notes.append(f"{len(missing)} configuration(s) without a finished run (shown as {MISSING}): "
                     + "; ".join("/".join(c) for c in missing))
    if finished(df).empty:
        return tables, notes
    datasets = sorted(set(finished(df)["dataset"]))
    schemes = set(df["scheme"])
    if len(schemes) > 1:
        tables.append(overview_table(df, split, mode))
        tables += [welt_table(df, d, split, mode) for d in datasets]
        tables += [wins_table(df, split, mode)]
        tables.append(best_scheme_table(df, split, mode))
        if "vanilla" in schemes:
            tables.append(wilcoxon_table(df, split, mode))
        if boot is not None and not boot.empty:
            tables += [significance_table(boot, d, split) for d in datasets if (boot["dataset"] == d).any()]
        if profile is not None:
            tables += [error_profile_table(profile, d, split) for d in datasets
                       if profile.loc[profile["dataset"] == d, [c for c, _ in ERROR_COLUMNS]].notna().any().any()]
        if any(c.endswith("_fair_f1") for c in df.columns):
            tables += [faireval_table(df, d, split) for d in datasets]
    tables += variant_tables(df, split)
    if df["lr"].nunique() > 1 or df["batch_size"].nunique() > 1:
        tables.append(foundation_table(df, split, mode))
    tables += list(corpus_tables(df))
    comparison = paper_comparison(df, split, mode)
    if comparison.rows:
        tables.append(comparison)
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
          cache: Path | None = None, resamples: int = 1000, written: list[Path] | None = None) -> Path:
    """Write tables (md, tex, csv), figures (png) and report.html into ``out``; returns the HTML path.
    Per-run artifacts (predictions for the paired bootstrap, error analyses) are fetched once into
    ``cache`` (default ``out/cache``). Every file is written by ``save`` (a symlink in the way is
    replaced, never followed) and listed in ``written``."""
    from bioner_grid.report_figures import figures

    out.mkdir(parents=True, exist_ok=True)
    files = RunFiles(cache or out / "cache", df.attrs.get("tracking_uri"))
    multi = df["scheme"].nunique() > 1 and not finished(df).empty
    if multi:
        files.prefetch(finished(df)["run_id"], split)
    boot = bootstrap_vs_vanilla(df, files, split, resamples) if multi else None
    profile = error_profile(df, files, split) if multi else None
    tables, notes = build(df, split, mode, boot, profile)
    written = [] if written is None else written
    save(out / "runs.csv", lambda f: df.map(csv_cell).to_csv(f, index=False), written)
    names = []
    for i, t in enumerate(tables, start=1):
        stem = f"table{i:02d}"
        save(out / f"{stem}.md", to_markdown(t), written)
        save(out / f"{stem}.tex", to_latex(t), written)
        to_csv(t, out / f"{stem}.csv", written)
        names.append(stem)
    images = figures(df, out, split, mode, boot)
    written += [path for path, _ in images]
    body = "".join(f"<p>{html.escape(n)}</p>" for n in notes)
    body += "".join(to_html(t) for t in tables)
    for path, caption in images:
        data = base64.b64encode(path.read_bytes()).decode()
        body += f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}</figcaption></figure>'
    page = out / "report.html"
    save(page, PAGE.format(title=html.escape(title), body=body), written)
    save(out / "report.md", "\n".join([f"# {md_escape(title)}", ""] + [md_escape(n) for n in notes] + [""]
                                      + [to_markdown(t) for t in tables]), written)
    return page


def main(argv: list[str]) -> int:
    from bioner_grid.store import RunStore

    cfg = compose(argv)
    r = cfg.report
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
                 written=written)
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
