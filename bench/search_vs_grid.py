"""An exhaustive lr x batch-size grid against an adaptive search with pruning over the same space:
the best dev strict F1 each found, the test F1 at that choice, and the compute each spent.

    python bench/search_vs_grid.py --grid sqlite:////work/study-search/store.db \
        --search sqlite:////work/study-search/search.db [--experiment search-vs-grid] [--markdown]

Both stores come from the commands in ``docs/search-vs-grid/README.md`` (the grid with Hydra's
basic sweeper, the search with ``hydra/sweeper=optuna``); each keeps its own store, so the search
cannot reuse the grid's finished runs. Compute is counted two ways: the sum of the runs'
``train_seconds`` (wall time on a shared machine: noisy) and the sentences trained on, optimiser
steps x batch size (exact, whatever else ran beside the jobs). The search's choice is its best
trial that was not pruned (as Optuna's ``best_trial``); the grid's is its best run on dev. A run
stopped by ``train.stop_collapsed`` is listed with the epochs it was spared, and the time those
would have cost at the run's own time per epoch (an estimate: those epochs never ran).
"""

from __future__ import annotations

import argparse
import math

import pandas as pd

from bioner_grid.store import RunStore


def runs(uri: str, experiment: str) -> pd.DataFrame:
    """The store's FINISHED training runs (no sweep parent), one row each."""
    df = RunStore(uri, experiment).runs_frame([experiment])
    if df.empty:
        raise SystemExit(f"error: {uri}: no runs in experiment {experiment}")
    df = df[(df["status"] == "FINISHED") & (df.get("tags.kind", pd.Series("", index=df.index)).fillna("") != "sweep")]
    out = pd.DataFrame({
        "lr": df["tags.lr"].astype(float), "batch": df["tags.batch_size"].astype(int),
        "trial": pd.to_numeric(df.get("tags.trial"), errors="coerce"),
        "pruned": df.get("tags.pruned", pd.Series("", index=df.index)).astype(str).eq("true"),
        "collapsed": df.get("tags.collapsed", pd.Series("", index=df.index)).astype(str).eq("true"),
        "dev": 100 * df["metrics.dev_strict_f1"], "test": 100 * df["metrics.test_strict_f1"],
        "epochs": df["metrics.train_epochs"], "steps": df["metrics.train_steps"].astype(int),
        "seconds": df["metrics.train_seconds"],
    })
    out["sentences"] = out["steps"] * out["batch"]
    return out.sort_values(["trial", "lr", "batch"] if out["trial"].notna().any() else ["lr", "batch"]).reset_index(drop=True)


def best(df: pd.DataFrame) -> pd.Series:
    """The run chosen on dev: the best dev strict F1 among the runs that were not pruned."""
    return df[~df["pruned"]].sort_values("dev", ascending=False).iloc[0]


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub Markdown table of ``df``'s cells as they are (pandas' ``to_markdown`` needs tabulate)."""
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(map(str, row)) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def table(df: pd.DataFrame, markdown: bool) -> str:
    cols = ["trial", "lr", "batch", "dev", "test", "epochs", "seconds", "sentences", "pruned", "collapsed"]
    shown = df[[c for c in cols if c != "trial" or df["trial"].notna().any()]].copy()
    for c in ("dev", "test"):
        shown[c] = shown[c].map(lambda v: f"{v:.2f}")
    shown["epochs"] = shown["epochs"].map(lambda v: f"{v:.2f}")
    shown["lr"] = shown["lr"].map(lambda v: f"{v:g}")
    shown["seconds"] = shown["seconds"].map(lambda v: f"{v:.0f}")
    if "trial" in shown:
        shown["trial"] = shown["trial"].map(lambda v: "" if math.isnan(v) else str(int(v)))
    return markdown_table(shown) if markdown else shown.to_string(index=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--grid", required=True, help="tracking URI of the grid's store")
    ap.add_argument("--search", required=True, help="tracking URI of the search's store")
    ap.add_argument("--experiment", default="search-vs-grid")
    ap.add_argument("--markdown", action="store_true", help="tables as Markdown")
    ap.add_argument("--collapse", help="an experiment of the grid's store with runs of collapsing cells (sentinel on/off)")
    args = ap.parse_args()
    grid, search = runs(args.grid, args.experiment), runs(args.search, args.experiment)
    print(f"grid: {len(grid)} runs\n{table(grid, args.markdown)}\n")
    print(f"search: {len(search)} runs trained ({int(search['pruned'].sum())} pruned)\n{table(search, args.markdown)}\n")
    g, s = best(grid), best(search)
    rows = []
    for name, df, b in (("grid", grid, g), ("search", search, s)):
        rows.append({"": name, "runs": len(df), "chosen (lr, batch)": f"{b['lr']:g}, {int(b['batch'])}",
                     "best dev F1": f"{b['dev']:.2f}", "test F1 at it": f"{b['test']:.2f}",
                     "train seconds": f"{df['seconds'].sum():.0f}", "sentences trained": f"{df['sentences'].sum():,}"})
    summary = pd.DataFrame(rows)
    print(markdown_table(summary) if args.markdown else summary.to_string(index=False))
    print(f"\nsearch / grid compute: {100 * search['seconds'].sum() / grid['seconds'].sum():.0f}% of the training "
          f"seconds, {100 * search['sentences'].sum() / grid['sentences'].sum():.0f}% of the sentences trained; "
          f"dev F1 {s['dev'] - g['dev']:+.2f} points against the grid's best")
    sentinel(grid, "grid", args.markdown)
    if args.collapse:
        sentinel(runs(args.grid, args.collapse), f"experiment {args.collapse}", args.markdown)


def sentinel(df: pd.DataFrame, name: str, markdown: bool) -> None:
    """What ``train.stop_collapsed`` saved on the runs it stopped: the epochs spared, at each run's
    own time per epoch (an estimate), and, where the same cell also ran with the sentinel off
    (``train.stop_collapsed=false``, ``train.force=true``), the measured difference."""
    print(f"\ncollapse sentinel, {name}:")
    collapsed = df[df["collapsed"]]
    if not len(collapsed):
        print("no run collapsed")
        return
    print(table(df, markdown))
    planned = math.ceil(df["epochs"].max())
    spared = (planned - collapsed["epochs"]).clip(lower=0)
    saved = (collapsed["seconds"] / collapsed["epochs"] * spared).sum()
    print(f"{len(collapsed)} run(s) stopped as collapsed after {', '.join(f'{e:.2f}' for e in collapsed['epochs'])} of "
          f"{planned} epochs: {spared.sum():.2f} epochs spared, about {saved:.0f} s at their own time per epoch "
          f"({100 * saved / (collapsed['seconds'].sum() + saved):.0f}% of what they would have trained)")
    for _, off in df[~df["collapsed"]].iterrows():
        on = collapsed[(collapsed["lr"] == off["lr"]) & (collapsed["batch"] == off["batch"])]
        if len(on):
            print(f"lr {off['lr']:g} batch {int(off['batch'])}: {off['seconds']:.0f} s and {off['epochs']:.2f} epochs "
                  f"with the sentinel off (dev F1 {off['dev']:.2f}), {on['seconds'].iloc[0]:.0f} s and "
                  f"{on['epochs'].iloc[0]:.2f} epochs with it on (dev F1 {on['dev'].iloc[0]:.2f})")


if __name__ == "__main__":
    main()
