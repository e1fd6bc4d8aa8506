"""Register the best configuration's model per dataset in the MLflow Model Registry, retraining nothing.

    python -m bioner_grid.register tracking.uri=URI report.experiment=NAME[,NAME2] name=NAME
        [report.filter="tags.model = 'biobert'"]

Per dataset, the configuration (model, scheme, lr, batch size) with the best dev strict F1
(``dev_strict_f1``, mean over its seeds) is chosen; of its runs, the one with the best dev score
that saved a model (``train.save_model=true``) is registered as ``NAME-<dataset>``, with the cell's
scores as tags of the new version. When none of its runs saved a model, the command that reruns it
with ``train.save_model=true`` is printed instead: ``save_model`` is not part of the run key, so the
rerun (``train.force=true``) records a new run under the same key and leaves the grid untouched.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pandas as pd
from omegaconf import OmegaConf

from bioner_grid import identity, redact
from bioner_grid.config import compose
from bioner_grid.errors import InputError
from bioner_grid.report import load_runs
from bioner_grid.runtable import finished, unscorable

CONFIG_KEYS = ["model", "scheme", "lr", "batch_size"]  # a configuration: the grid keys but dataset and seed


def best_configurations(df: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, the configuration with the highest mean dev strict F1 (mean, std and count of seeds)."""
    df = finished(df)  # FINISHED, with finite scores: an inf dev F1 is no best
    df = df[df["dev_strict_f1"].notna()]
    cells = (df.groupby(["dataset", *CONFIG_KEYS])
             .agg(dev_strict_f1=("dev_strict_f1", "mean"), dev_strict_f1_std=("dev_strict_f1", "std"),
                  test_strict_f1=("test_strict_f1", "mean"), test_f1=("test_f1", "mean"), seeds=("run_id", "count"))
             .reset_index())
    return cells.loc[cells.groupby("dataset")["dev_strict_f1"].idxmax()].reset_index(drop=True)


def grid_name(store, run) -> str:
    """The experiment a run was launched under: ``grid.name`` of its logged ``config.yaml`` (grid
    settings are no params: they do not define the result)."""
    try:
        return str(OmegaConf.create(store.load_text(run.info.run_id, "config.yaml")).grid.name)
    except Exception:  # noqa: BLE001 - no artifact store reachable: the grid keys alone still reproduce it
        return "adhoc"


def reproduce_command(store, run) -> str:
    """The command that reruns ``run`` with its model saved: its own Hydra overrides when its run
    folder is readable here, else the grid keys from its tags (add the overrides it was launched with)."""
    overrides_file = Path(identity.ops_tag(run.data.tags, "output_dir")) / ".hydra" / "overrides.yaml"
    if overrides_file.is_file():
        overrides = [o for o in OmegaConf.load(overrides_file) if not o.startswith(("hydra", "grid."))]
    else:
        t, grid = run.data.tags, grid_name(store, run)
        overrides = ([f"experiment={grid}"] if grid != "adhoc" else []) + [
            f"model={t['model']}", f"dataset={t['dataset']}", f"scheme={t['scheme']}", f"train.lr={t['lr']}",
            f"train.batch_size={t['batch_size']}", f"train.seed={t['seed']}"]
    return shlex.join(["python", "-m", "bioner_grid", *overrides, "train.save_model=true", "train.force=true"])


def already_registered(store, model_name: str, run_id: str):
    """The version of ``model_name`` registered from ``run_id`` (its ``run_id`` tag, or MLflow's
    own source run), or None."""
    for v in sorted(store.model_versions(model_name), key=lambda v: int(v.version)):
        if v.tags.get("run_id") == run_id or v.run_id == run_id:
            return v
    return None


def pickled_model(flavors: dict) -> str | None:
    """The pickle a logged pyfunc model is loaded from (``python_model.pkl``: what bioner-grid wrote
    before it logged the model as code, ``export.py``), or None for a model given as code."""
    pyfunc = flavors.get("python_function") or {}
    if pyfunc.get("model_code_path") or pyfunc.get("loader_module") == "mlflow.pyfunc.loaders.code_model":
        return None  # models-from-code: loading runs the named .py file, no pickle (it also records a cloudpickle_version)
    model = pyfunc.get("python_model")
    if model and not str(model).endswith(".py"):
        return str(model)
    return "python_model.pkl" if pyfunc.get("loader_module") == "mlflow.pyfunc.model" else None


def register(store, df: pd.DataFrame, name: str) -> list[str]:
    """Register each dataset's best model (``store``: a ``store.RunStore``); returns one line per
    dataset (registered, or the command to run)."""
    from bioner_grid.store import run_metrics  # mlflow, ~1.3 s: where the store is used, as in report.py

    lines = []
    for cell in best_configurations(df).itertuples(index=False):
        same = (df["dataset"] == cell.dataset) & (df["status"] == "FINISHED") & ~unscorable(df)
        for key in CONFIG_KEYS:
            same &= df[key] == getattr(cell, key)
        runs = df[same].sort_values("dev_strict_f1", ascending=False)
        candidates = [store.get_run(r) for r in runs["run_id"]]
        saved = [r for r in candidates if r.data.tags.get("model_uri")]
        what = (f"{cell.dataset}: {cell.model} {cell.scheme} lr {cell.lr:g} bs {cell.batch_size:g}, "
                f"dev strict F1 {100 * cell.dev_strict_f1:.2f}% ({cell.seeds} seed{'s' if cell.seeds > 1 else ''})")
        if not saved:
            lines.append(f"{what}: no saved model; to save it, run:\n  {reproduce_command(store, candidates[0])}")
            continue
        run = saved[0]
        metrics = run_metrics(run)
        tags = {"dataset": cell.dataset, "model": cell.model, "scheme": cell.scheme, "lr": f"{cell.lr:g}",
                "batch_size": f"{cell.batch_size:g}", "seeds": str(cell.seeds), "run_id": run.info.run_id,
                "run_key": run.data.tags.get("run_key", ""),
                **{k: f"{getattr(cell, k):.4f}" for k in ("dev_strict_f1", "test_strict_f1", "test_f1")},
                **{f"run_{k}": f"{metrics[k]:.4f}" for k in ("dev_strict_f1", "test_strict_f1")}}
        pickle = pickled_model(store.model_flavors(run.data.tags["model_uri"]))
        if pickle:  # registering hands it to others, whose mlflow.pyfunc.load_model would run the pickle
            lines.append(f"{what}: not registered: its model {run.data.tags['model_uri']} is a pickled pyfunc ({pickle}, "
                         "logged by an older bioner-grid), which mlflow.pyfunc.load_model unpickles (runs code); "
                         f"to log it as code, run:\n  {reproduce_command(store, run)}")
            continue
        earlier = already_registered(store, f"{name}-{cell.dataset}", run.info.run_id)
        if earlier is not None:  # idempotent: a second `register` adds no version of the same run
            lines.append(f"{what}: already registered as models:/{earlier.name}/{earlier.version} "
                         f"(run {run.info.run_id}); nothing new")
            continue
        version = store.register_model(run.data.tags["model_uri"], f"{name}-{cell.dataset}", tags=tags)
        lines.append(f"{what}: registered models:/{version.name}/{version.version} (run {run.info.run_id})")
    return lines


def main(argv: list[str]) -> int:
    names = [a.split("=", 1)[1] for a in argv if a.startswith("name=")]
    if len(names) != 1 or not names[0]:
        print("usage: python -m bioner_grid.register tracking.uri=URI report.experiment=NAME name=NAME "
              "[report.filter=...]", file=sys.stderr)
        return 2
    cfg = compose([a for a in argv if not a.startswith("name=")])
    experiments = [e.strip() for e in str(cfg.report.experiment).split(",") if e.strip()]
    df = load_runs(cfg.tracking.uri, experiments, cfg.report.filter or "")
    if df.empty or "dev_strict_f1" not in df:
        raise InputError(f"report.experiment={','.join(experiments)}: no scored runs at {cfg.tracking.uri}")  # printed masked
    from bioner_grid.store import RunStore

    for line in register(RunStore(cfg.tracking.uri, experiments[0], retry_s=cfg.tracking.retry_s), df, names[0]):
        print(redact.text(line))
    return 0


if __name__ == "__main__":
    from bioner_grid.cli import run

    sys.exit(run("register"))
