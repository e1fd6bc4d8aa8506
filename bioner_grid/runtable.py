"""The runs table (``report.load_runs``: one row per run, grid keys and metrics) and the choices
made on it, shared by the tables (``report``) and the figures (``report_figures``): which runs
count, the schemes in the WeLT paper's order with their display names, metric column names,
per-cell mean ± sd over seeds, the split every "best" is chosen on, and the learning rate chosen
on dev per model and batch size.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd

from bioner_grid.spec import SAFE_NAME

SCHEMES = ["ins", "isns", "ens_0.3", "ens_0.5", "ens_0.9", "vanilla", "welt"]  # the WeLT paper's column order
SCHEME_NAMES = {"ins": "INS", "isns": "ISNS", "ens_0.3": "ENS(0.3)", "ens_0.5": "ENS(0.5)", "ens_0.9": "ENS(0.9)",
                "vanilla": "Vanilla", "welt": "WeLT"}  # for runs recorded before schemes had a `label`


def schemes_of(df: pd.DataFrame) -> list[str]:
    """The schemes the runs used: the WeLT paper's in its column order, any other after them."""
    present = set(df["scheme"].dropna())
    return [s for s in SCHEMES if s in present] + sorted(present - set(SCHEMES))


def scheme_names(df: pd.DataFrame) -> dict[str, str]:
    """Display name of each scheme: its config's ``label`` (as the runs logged it), else the known name."""
    names = dict(SCHEME_NAMES)
    if "scheme_label" in df:
        for scheme, label in df[["scheme", "scheme_label"]].dropna().drop_duplicates("scheme").values:
            names[scheme] = label
    return names


def metric_column(split: str, mode: str, measure: str) -> str:
    return f"{split}_{'strict_' if mode == 'strict' else ''}{measure}"


SCORES = ("_f1", "_precision", "_recall")


def unscorable(df: pd.DataFrame) -> pd.Series:
    """Runs with a score (an F1, precision or recall) logged as inf or NaN (``non_finite``, from the
    store): such a number ranks nothing (an inf would be "best", a NaN silently dropped from a mean)."""
    if "non_finite" not in df:
        return pd.Series(False, index=df.index)
    return df["non_finite"].fillna("").map(lambda names: any(n.endswith(SCORES) for n in names.split(",") if n))


def flagged(df: pd.DataFrame, tag: str) -> pd.Series:
    """Runs whose boolean run tag ``tag`` is ``true`` (its column, ``load_runs``); none where no run has it."""
    if tag not in df:
        return pd.Series(False, index=df.index)
    return df[tag].fillna("").astype(str).eq("true")


def pruned(df: pd.DataFrame) -> pd.Series:
    """Runs an adaptive search stopped early (tag ``pruned=true``, ``bioner_grid.search``): FINISHED,
    but scored after less training than their configuration asks, so never ranked beside the others."""
    return flagged(df, "pruned")


def finished(df: pd.DataFrame) -> pd.DataFrame:
    """The runs every table and ranking counts: FINISHED, with finite scores, not pruned."""
    return df[(df["status"] == "FINISHED") & ~unscorable(df) & ~pruned(df)]


def non_finite_note(df: pd.DataFrame) -> str | None:
    """One line naming the FINISHED runs left out for a non-finite score, and their values."""
    bad = df[(df["status"] == "FINISHED") & unscorable(df)]
    if bad.empty:
        return None
    def values(row) -> str:
        names = [n for n in row["non_finite"].split(",") if n.endswith(SCORES)]
        return ", ".join(f"{n}={row.get(n, 'nan')}" for n in names)
    runs = "; ".join(f"{r['run_id']} ({r['model']}/{r['dataset']}/{r['scheme']} seed {r['seed']:g}: {values(r)})"
                     for _, r in bad.iterrows())
    return (f"{len(bad)} finished run(s) with a non-finite score, left out of every table and ranking "
            f"(shown as {{missing}} where they were the only run): {runs}.")


def cell_stats(df: pd.DataFrame, keys: list[str], column: str) -> pd.DataFrame:
    """Mean, sample std (0 for one seed) and count of ``column`` (in %) per ``keys``, and how many of
    those runs collapsed (``collapsed``: stopped by ``train.stop_collapsed``, tag ``collapsed=true``)."""
    g = (100 * df[column]).groupby([df[k] for k in keys])
    out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1).fillna(0.0), "n": g.count()})
    out["collapsed"] = collapsed(df)[df[column].notna()].groupby([df[k] for k in keys]).sum().reindex(out.index).fillna(0).astype(int)
    return out


def collapsed(df: pd.DataFrame) -> pd.Series:
    """Runs the collapse sentinel stopped (``bioner_grid.collapse``; tag ``collapsed=true``)."""
    return flagged(df, "collapsed")


def chooser(df: pd.DataFrame, split: str, mode: str) -> str:
    """The split every "best" is chosen on: dev when the runs logged its F1, else (older runs) the
    shown split, which each caption then says."""
    column = metric_column("dev", mode, "f1")
    return "dev" if column in df and finished(df)[column].notna().any() else split


def best_lr(df: pd.DataFrame, split: str = "test", mode: str = "strict", choose: str | None = None) -> pd.DataFrame:
    """Per (model, batch size) the learning rate whose mean F1 on ``choose`` (default: dev when
    logged) is highest, with the mean, sd and n of ``split`` F1 (%) at that learning rate, and the lr
    that ``split`` itself would have picked (``split_lr``, for the record only)."""
    ok = finished(df)
    choose = choose or chooser(df, split, mode)
    keys = ["model_lr_bs", "batch_size", "lr"]  # the model's label without lr and batch size
    shown = cell_stats(ok, keys, metric_column(split, mode, "f1"))
    by = cell_stats(ok, keys, metric_column(choose, mode, "f1"))["mean"].dropna()
    rows = []
    for (model, bs), values in by.groupby(level=[0, 1]):
        lr = values.idxmax()[2]
        own = shown["mean"].xs((model, bs), level=[0, 1]).dropna()
        rows.append({"model": model, "batch_size": bs, "lr": lr, "chosen_on": choose,
                     "mean": shown["mean"].get((model, bs, lr)), "std": shown["std"].get((model, bs, lr)),
                     "n": int(shown["n"].get((model, bs, lr), 0)), "split_lr": own.idxmax() if len(own) else None,
                     "split_best": own.max() if len(own) else None})
    return pd.DataFrame(rows, columns=["model", "batch_size", "lr", "chosen_on", "mean", "std", "n", "split_lr", "split_best"])


# ---------------------------------------------------------------------------------------------
# Display names: ``display_name`` of the model and dataset configs (logged as params), so that the
# tables and figures say NCBI-disease and MiniLM where the run keys say ncbi_disease and minilm.



@lru_cache(maxsize=None)
def packaged_display_name(group: str, name: str) -> str | None:
    """``display_name`` of the packaged config ``conf/<group>/<name>.yaml``, for runs recorded before
    the runs logged it (None where there is no such config or it has none)."""
    from omegaconf import OmegaConf

    from bioner_grid.config import CONF_DIR

    path = Path(CONF_DIR) / group / f"{name}.yaml"
    if not SAFE_NAME.fullmatch(str(name)) or not path.is_file():  # a name that may become a file name
        return None
    value = OmegaConf.load(path).get("display_name")
    return str(value) if value else None


def display_names(df: pd.DataFrame) -> dict[str, str]:
    """Raw model and dataset name -> the name a reader sees: the runs' logged ``display_name``
    (columns ``model_display`` / ``dataset_display``), else the packaged config's, else the name."""
    names: dict[str, str] = {}
    for group, raw, shown in (("model", "model_name", "model_display"), ("dataset", "dataset", "dataset_display")):
        if raw not in df:
            continue
        logged = df[[raw, shown]].dropna().drop_duplicates(raw) if shown in df else pd.DataFrame(columns=[raw, shown])
        for name, display in logged.values:
            names.setdefault(str(name), str(display))
        for name in df[raw].dropna().unique():
            names.setdefault(str(name), packaged_display_name(group, str(name)) or str(name))
    return names


def shown(label, names: dict[str, str]) -> str:
    """A model or dataset label as a reader sees it: the name replaced by its display name, a
    variant's settings kept (``minilm (head=crf)`` -> ``MiniLM (head=crf)``)."""
    label = str(label)
    name, sep, rest = label.partition(" (")
    return names.get(name, name) + sep + rest


def n_range(counts) -> str:
    """The seeds behind a line's points, for its legend: ``n=2``, or ``n=1–2`` where they differ."""
    low, high = int(min(counts)), int(max(counts))
    return f"n={low}" + (f"–{high}" if high > low else "")


def readable(df: pd.DataFrame):
    """Three functions, raw name -> the name a reader sees, for the models, the schemes and the
    corpora of these runs: display names from the runs or configs (``bc5cdr_disease`` ->
    ``BC5CDR-disease``). A corpus only scored as an extra test set (never trained on, so not in the
    runs' ``dataset``) is named by its packaged dataset config."""
    names, schemes = display_names(df), scheme_names(df)

    def corpus(name: str) -> str:
        return names.get(name) or packaged_display_name("dataset", name) or name

    return (lambda model: shown(model, names)), (lambda scheme: schemes.get(scheme, scheme)), corpus
