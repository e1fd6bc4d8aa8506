"""Comparison tables and figures from MLflow runs: what goes into a paper.

``python -m bioner_grid.report tracking.uri=URI report.experiment=NAME report.out=DIR
[report.filter="tags.sweep = 'SWEEP_ID'"] [report.mode=strict|default] [report.split=test|dev]``

Reads the runs of one or more MLflow experiments into a pandas DataFrame (one row per run: grid
keys and metrics), writes Markdown, LaTeX (booktabs) and CSV tables, PNG figures and one
self-contained ``report.html`` into ``report.out``, and logs them all as artifacts of a ``report``
run. Seeds of one configuration are averaged (mean ± sample std); runs that did not finish are
counted and left out; configurations without a finished run show as "—" and are listed.
"""

from __future__ import annotations

import base64
import csv
import html
import logging
import math
import sys
from collections import Counter
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd
from scipy import stats

from bioner_grid.identity import GRID_KEYS, defines_result

log = logging.getLogger(__name__)

SCHEMES = ["ins", "isns", "ens_0.3", "ens_0.5", "ens_0.9", "vanilla", "welt"]  # the WeLT paper's column order
SCHEME_NAMES = {"ins": "INS", "isns": "ISNS", "ens_0.3": "ENS(0.3)", "ens_0.5": "ENS(0.5)", "ens_0.9": "ENS(0.9)",
                "vanilla": "Vanilla", "welt": "WeLT"}  # for runs recorded before schemes had a `label`
KEYS = list(GRID_KEYS)
MEASURES = {"precision": "P", "recall": "R", "f1": "F"}
MISSING = "—"


# ---------------------------------------------------------------------------------------------
# Runs


def load_runs(uri: str, experiments: list[str], filter_string: str = "") -> pd.DataFrame:
    """One row per run: ``run_id``, ``status``, the grid keys (tags), ``cell_key`` and every metric
    (bare names).

    ``model`` is the row label the tables use: the model's name, followed by every result-defining
    setting (head, epochs, lr, …) that differs between the runs of that model on that dataset, so
    that different configurations are never averaged as if they were seeds (``model_name`` keeps
    the bare name; ``model_lr_bs`` leaves lr and batch size out, for the views that compare them)."""
    import mlflow

    from bioner_grid.tracking import resolve_uri

    mlflow.set_tracking_uri(resolve_uri(uri))
    df = mlflow.search_runs(experiment_names=experiments, filter_string=filter_string or "")
    if df.empty:
        return pd.DataFrame(columns=["run_id", "status", *KEYS, "cell_key", "scheme_label", "model_name", "model_lr_bs"])
    if "tags.kind" in df:  # report runs (older stores kept them beside the training runs) and sweep parents
        df = df[~df["tags.kind"].fillna("").isin(["report", "sweep"])]
    columns = {"run_id": df["run_id"], "status": df["status"]}
    columns.update({key: df.get(f"tags.{key}") for key in KEYS})
    columns["aio_members"] = df["tags.aio_members"] if "tags.aio_members" in df else None
    columns["scheme_label"] = df["params.scheme.label"] if "params.scheme.label" in df else None
    columns.update({c[len("metrics."):]: df[c] for c in df.columns if c.startswith("metrics.")})
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
    return out.reset_index(drop=True)


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
        sub = settings.loc[idx, columns]
        varying = [c for c in columns if sub[c].astype(str).nunique() > 1]
        for i in idx:
            if varying:
                shown = ", ".join(f"{_setting_name(c)}={str(sub.at[i, c])[:8] if c.startswith('tags.') else sub.at[i, c]}"
                                  for c in varying)
                labels.at[i] = f"{runs.at[i, 'model']} ({shown})"
    return labels


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


def finished(df: pd.DataFrame) -> pd.DataFrame:
    return df[df["status"] == "FINISHED"]


def cell_stats(df: pd.DataFrame, keys: list[str], column: str) -> pd.DataFrame:
    """Mean, sample std (0 for one seed) and count of ``column`` (in %) per ``keys``."""
    g = (100 * df[column]).groupby([df[k] for k in keys])
    out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1).fillna(0.0), "n": g.count()})
    return out


# ---------------------------------------------------------------------------------------------
# Tables: a list of rows of cells; a cell is text with an optional mark (best / second)


@dataclass
class Cell:
    text: str
    mark: str | None = None  # "best" | "second"
    value: float | None = None


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
    """WeLT Tables 2-9 for one corpus: rows model x {P, R, F}, columns the seven schemes."""
    ok = finished(df[df["dataset"] == dataset])
    schemes, names = schemes_of(df), scheme_names(df)
    rows = []
    for model in sorted(set(df.loc[df["dataset"] == dataset, "model"])):
        for measure, short in MEASURES.items():
            st = cell_stats(ok[ok["model"] == model], ["scheme"], metric_column(split, mode, measure))
            means = [st["mean"].get(s) for s in schemes]
            row = [Cell(model), Cell(short)]
            for s, mean, mark in zip(schemes, means, marks(means)):
                std, n = (st["std"].get(s), int(st["n"].get(s))) if s in st.index else (None, 0)
                row.append(Cell(fmt(mean, std, n), mark, mean))
            rows.append(row)
    return Table(f"{dataset}: {split} {mode} P/R/F1 (%) per model and scheme", ["Model", ""] + [names.get(s, s) for s in schemes], rows)


def missing_configurations(df: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(model, dataset, scheme) of the grid spanned by the runs that has no finished run."""
    ok = set(map(tuple, finished(df)[["model", "dataset", "scheme"]].values))
    grid = [(m, d, s) for m in sorted(set(df["model"])) for d in sorted(set(df["dataset"])) for s in sorted(set(df["scheme"]))]
    return [c for c in grid if c not in ok]


def corpus_tables(df: pd.DataFrame) -> tuple[Table, Table]:
    """WeLT Table 1 (class distribution of the training split) and Table 11 (sentences per split)."""
    classes, sentences = [], []
    for (dataset, members), runs in finished(df).groupby(["dataset", "aio_members"], dropna=False):
        r = runs.iloc[0]
        if isinstance(members, str):  # all-in-one runs differ by their member corpora
            parts = members.split(",")
            dataset = f"{dataset} ({parts[0] if len(parts) == 1 else f'{len(parts)} corpora'})"
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
                    + [Cell(f"{f1['mean'] - p['f1']:+.2f}", value=f1["mean"] - p["f1"])])
    return Table(f"Ours ({split}, {mode}) versus the WeLT paper", ["Dataset", "Model", "Scheme", "P", "R", "F1",
                                                                   "paper P", "paper R", "paper F1", "ΔF1"], rows)


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
        rows.append([Cell(names[scheme]), Cell(str(len(d))), Cell(f"{d.median():+.2f}" if len(d) else MISSING),
                     Cell(str(int((d > 0).sum()))), Cell(str(int((d < 0).sum()))), Cell(str(int((d == 0).sum()))), Cell(p)])
    return Table(f"Schemes versus Vanilla over matched (model, dataset, seed) cells ({split} {mode} F1)",
                 ["Scheme", "pairs", "median ΔF1", "wins", "losses", "ties", "Wilcoxon p"], rows)


def wins_table(df: pd.DataFrame, split: str = "test", mode: str = "strict") -> Table:
    """Per scheme: in how many (model, dataset) cells it is best and second best (mean F1)."""
    st = cell_stats(finished(df), ["model", "dataset", "scheme"], metric_column(split, mode, "f1"))["mean"]
    counts: Counter = Counter()  # (scheme, "best" | "second") -> cells
    for _, cell in st.groupby(level=[0, 1]):
        counts.update((k[2], m) for k, m in zip(cell.index, marks(list(cell.values))) if m)
    names = scheme_names(df)
    return Table("Wins: (model, dataset) cells where a scheme is best / second best", ["Scheme", "best", "second"],
                 [[Cell(names[s]), Cell(str(counts[s, "best"])), Cell(str(counts[s, "second"]))] for s in schemes_of(df)])


def faireval_table(df: pd.DataFrame, dataset: str, split: str = "test") -> Table:
    """WeLT Table 10: seqeval strict F1 beside FairEval fair F1 per model x scheme for one corpus."""
    ok = finished(df[df["dataset"] == dataset])
    strict = cell_stats(ok, ["model", "scheme"], f"{split}_strict_f1")["mean"]
    fair = cell_stats(ok, ["model", "scheme"], f"{split}_fair_f1")["mean"] if f"{split}_fair_f1" in ok else pd.Series(dtype=float)
    schemes, names = schemes_of(ok), scheme_names(df)
    rows = [[Cell(model)] + [Cell(f"{fmt(strict.get((model, s)))} / {fmt(fair.get((model, s)))}") for s in schemes]
            for model in sorted(set(ok["model"]))]
    return Table(f"{dataset}: seqeval strict F1 / FairEval fair F1 ({split})", ["Model"] + [names[s] for s in schemes], rows)


def aio_table(df: pd.DataFrame, split: str = "test") -> Table:
    """AIONER's layout: per member corpus, strict F1 of a single-corpus run (only that member) beside
    the all-in-one run that merged it with the others; Δ = AIO − single."""
    ok = finished(df[df["aio_members"].notna()])
    members = ok["aio_members"].str.split(",")
    single, merged = ok[members.str.len() == 1], ok[members.str.len() > 1]
    names = [m for m in dict.fromkeys(n for ms in members for n in ms)]
    rows = []
    for name in names:
        col = f"{split}_{name}_strict_f1"
        alone = 100 * single.loc[single["aio_members"] == name, col].mean() if col in single else float("nan")
        together = 100 * merged[col].mean() if col in merged else float("nan")
        delta = together - alone
        rows.append([Cell(name), Cell(fmt(alone)), Cell(fmt(together)), Cell(MISSING if math.isnan(delta) else f"{delta:+.2f}")])
    return Table(f"All-in-one versus single-corpus training ({split} strict F1, %)", ["Corpus", "single corpus", "AIO", "Δ"], rows)


def foundation_table(df: pd.DataFrame, split: str = "test", mode: str = "strict") -> Table:
    """F1 per model x batch size at the model's best learning rate (the foundation study's table)."""
    st = cell_stats(finished(df), ["model_lr_bs", "batch_size", "lr"], metric_column(split, mode, "f1"))
    sizes = sorted(st.index.get_level_values(1).unique())
    rows = []
    for model in sorted(st.index.get_level_values(0).unique()):
        m = st.loc[model]
        best_lr = m["mean"].groupby(level=1).mean().idxmax()
        row = [Cell(model), Cell(f"{best_lr:g}")]
        for bs in sizes:
            key = (bs, best_lr)
            row.append(Cell(fmt(m["mean"].get(key), m["std"].get(key), int(m["n"].get(key, 0)))))
        rows.append(row)
    return Table(f"F1 (%) per model and batch size at the best learning rate ({split} {mode})",
                 ["Model", "best lr"] + [f"batch {int(b)}" for b in sizes], rows)


# ---------------------------------------------------------------------------------------------
# Rendering


def to_markdown(t: Table) -> str:
    def cell(c):
        return f"**{c.text}**" if c.mark == "best" else f"<u>{c.text}</u>" if c.mark == "second" else c.text

    lines = [f"### {t.title}", "", "| " + " | ".join(t.header) + " |", "|" + "---|" * len(t.header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in t.rows]
    return "\n".join(lines + ([f"\n{t.note}"] if t.note else []) + [""])


def to_latex(t: Table) -> str:
    def esc(s):
        return s.replace("\\", r"\textbackslash{}").replace("_", r"\_").replace("%", r"\%").replace("&", r"\&").replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("—", "---")

    def cell(c):
        return rf"\textbf{{{esc(c.text)}}}" if c.mark == "best" else rf"\underline{{{esc(c.text)}}}" if c.mark == "second" else esc(c.text)

    lines = [r"\begin{table}[ht]", r"\centering", rf"\caption{{{esc(t.title)}}}", r"\begin{tabular}{" + "l" * 2 + "r" * (len(t.header) - 2) + "}",
             r"\toprule", " & ".join(esc(h) for h in t.header) + r" \\", r"\midrule"]
    lines += [" & ".join(cell(c) for c in row) + r" \\" for row in t.rows]
    return "\n".join(lines + [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""])


def to_csv(t: Table, path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(t.header + ["marks"])
        for row in t.rows:
            w.writerow([c.text for c in row] + [";".join(f"{t.header[i]}:{c.mark}" for i, c in enumerate(row) if c.mark)])


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


def build(df: pd.DataFrame, split: str = "test", mode: str = "strict") -> tuple[list[Table], list[str]]:
    """All tables of a report and the notes about failed and missing runs."""
    tables: list[Table] = []
    notes = []
    failed = df[df["status"] != "FINISHED"]
    notes.append(f"{len(df)} runs read: {len(df) - len(failed)} finished, {len(failed)} not finished "
                 f"({', '.join(f'{n} {s}' for s, n in failed['status'].value_counts().items()) or 'none'}), left out.")
    missing = missing_configurations(df)
    if missing:
        notes.append(f"{len(missing)} configuration(s) without a finished run (shown as {MISSING}): "
                     + "; ".join("/".join(c) for c in missing))
    if finished(df).empty:
        return tables, notes
    datasets = sorted(set(finished(df)["dataset"]))
    schemes = set(df["scheme"])
    if len(schemes) > 1:
        tables += [welt_table(df, d, split, mode) for d in datasets]
        tables += [wins_table(df, split, mode)]
        if "vanilla" in schemes:
            tables.append(wilcoxon_table(df, split, mode))
        if any(c.endswith("_fair_f1") for c in df.columns):
            tables += [faireval_table(df, d, split) for d in datasets]
    if df["aio_members"].notna().any():
        tables.append(aio_table(df, split))
    if df["lr"].nunique() > 1 or df["batch_size"].nunique() > 1:
        tables.append(foundation_table(df, split, mode))
    tables += list(corpus_tables(df))
    comparison = paper_comparison(df, split, mode)
    if comparison.rows:
        tables.append(comparison)
    return tables, notes


def write(df: pd.DataFrame, out: Path, split: str = "test", mode: str = "strict", title: str = "bioner-grid report") -> Path:
    """Write tables (md, tex, csv), figures (png) and report.html into ``out``; returns the HTML path."""
    from bioner_grid.report_figures import figures

    out.mkdir(parents=True, exist_ok=True)
    tables, notes = build(df, split, mode)
    df.to_csv(out / "runs.csv", index=False)
    names = []
    for i, t in enumerate(tables, start=1):
        stem = f"table{i:02d}"
        (out / f"{stem}.md").write_text(to_markdown(t), encoding="utf-8")
        (out / f"{stem}.tex").write_text(to_latex(t), encoding="utf-8")
        to_csv(t, out / f"{stem}.csv")
        names.append(stem)
    images = figures(df, out, split, mode)
    body = "".join(f"<p>{html.escape(n)}</p>" for n in notes)
    body += "".join(to_html(t) for t in tables)
    for path, caption in images:
        data = base64.b64encode(path.read_bytes()).decode()
        body += f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}"><figcaption>{html.escape(caption)}</figcaption></figure>'
    page = out / "report.html"
    page.write_text(PAGE.format(title=html.escape(title), body=body), encoding="utf-8")
    (out / "report.md").write_text("\n".join([f"# {title}", ""] + notes + [""] + [to_markdown(t) for t in tables]), encoding="utf-8")
    return page


def main(argv: list[str]) -> int:
    import mlflow

    from bioner_grid.config import compose

    cfg = compose(argv)
    r = cfg.report
    experiments = [e.strip() for e in str(r.experiment).split(",") if e.strip()]
    from bioner_grid.sweep import settle_submitted

    for name in experiments:  # submitted sweeps whose jobs have all ended get their summary now
        for line in settle_submitted(cfg.tracking.uri, name):
            print(line)
    df = load_runs(cfg.tracking.uri, experiments, r.filter or "")
    if df.empty:
        print(f"error: no runs in experiment(s) {', '.join(experiments)} at {cfg.tracking.uri}"
              + (f" matching {r.filter!r}" if r.filter else ""), file=sys.stderr)
        return 2
    out = Path(r.out)
    page = write(df, out, r.split, r.mode, title=f"bioner-grid report: {', '.join(experiments)}")
    # Report runs go to their own experiment, not among the training runs they summarise (its
    # artifacts under the configured tracking.artifact_location, as the training runs').
    from omegaconf import OmegaConf

    from bioner_grid import tracking

    experiment_id = tracking.setup(OmegaConf.merge(cfg.tracking, {"experiment": f"{experiments[0]}-reports"}))
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"report {', '.join(experiments)}",
                          tags={"kind": "report", "filter": r.filter or "", "experiments": ",".join(experiments)}):
        mlflow.log_artifacts(str(out))
    print(f"{len(df)} runs -> {page}")
    return 0


if __name__ == "__main__":
    from bioner_grid.cli import run

    sys.exit(run("report"))
