"""Sweep-level checks shared by the launchers and ``python -m bioner_grid.plan``.

- ``preflight``: every model resolves offline, every dataset file exists and every config value is
  valid (``schema.config_problems``), listing all that is missing or wrong at once (before 280 jobs queue, not after);
- ``split_finished``: which jobs' run keys are already FINISHED in the tracking store.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

log = logging.getLogger(__name__)


class PreflightError(RuntimeError):
    """Things a sweep needs that are not there; the message lists every one."""


def model_problem(mcfg) -> str | None:
    """Why ``mcfg`` cannot be loaded offline, or None when it can."""
    from bioner_grid.modeling import resolve

    spec = mcfg.get("tokenizer") or mcfg
    for source, name, revision in {(mcfg.source, mcfg.get("name_or_path"), mcfg.get("revision")),
                                   (spec.source, spec.get("name_or_path"), spec.get("revision"))}:
        if source == "random":
            continue
        if source == "package":
            if importlib.util.find_spec(name) is None:
                return f"model {mcfg.name}: package {name} is not installed"
        elif source == "path":
            if not Path(resolve(source, name)).is_dir():
                return f"model {mcfg.name}: folder {name} not found"
            if (source, name) == (mcfg.source, mcfg.get("name_or_path")) and not any(Path(name).glob("*.safetensors")):
                return f"model {mcfg.name}: folder {name} holds no *.safetensors weights (pickled weights are not loaded)"
        elif source == "hub":
            from huggingface_hub import try_to_load_from_cache

            found = try_to_load_from_cache(name, "config.json", revision=revision or None)
            if not isinstance(found, str):
                return (f"model {mcfg.name}: {name}@{revision or 'main'} is not in the Hugging Face cache "
                        f"(run python -m bioner_grid.prefetch on a node with internet)")
    return None


def dataset_problems(cfg) -> list[str]:
    files = [cfg.dataset.get(split) for split in ("train", "dev", "test")]
    return [f"dataset {cfg.dataset.name}: {f} not found" for f in files if f and not Path(f).is_file()]


def preflight(configs) -> list[str]:
    """Every problem of every job's model and data, each listed once."""
    problems: dict[str, None] = {}
    from bioner_grid.schema import config_problems

    for cfg in configs:
        for p in [model_problem(cfg.model), *dataset_problems(cfg), *config_problems(cfg)]:
            if p:
                problems[p] = None
    return list(problems)


def split_finished(configs) -> tuple[list[int], dict[int, str]]:
    """Indices of the jobs to run, and ``index -> MLflow run id`` of those already FINISHED
    (``train.force=true`` runs a job anyway)."""
    from bioner_grid import tracking

    finished_by_store: dict[tuple, dict[str, str]] = {}
    todo, done = [], {}
    for i, cfg in enumerate(configs):
        store = (cfg.tracking.uri, cfg.tracking.experiment)
        if store not in finished_by_store:
            finished_by_store[store] = tracking.finished_keys(cfg.tracking)
        run_id = finished_by_store[store].get(tracking.run_key(cfg))
        if run_id and not cfg.train.force:
            done[i] = run_id
        else:
            todo.append(i)
    return todo, done


def prepare(configs, check: bool = True, skip_finished: bool = True) -> list[int]:
    """Preflight (raises ``PreflightError``) and skip-finished; returns the indices to launch."""
    if check:
        problems = preflight(configs)
        if problems:
            raise PreflightError(f"preflight: {len(problems)} problem(s), nothing launched:\n  - " + "\n  - ".join(problems))
    if not skip_finished:
        return list(range(len(configs)))
    todo, done = split_finished(configs)
    log.info("skipping %d of %d runs already FINISHED in the tracking store; launching %d", len(done), len(configs), len(todo))
    return todo
