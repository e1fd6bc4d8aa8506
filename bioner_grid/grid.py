"""Sweep-level checks shared by the launchers and ``python -m bioner_grid.plan``.

- ``preflight``: every job's config passes the run specification's rules (``spec.problems``, the
  same function the job calls), every model resolves offline and every dataset file exists, listing
  all that is missing or wrong at once (before 280 jobs queue, not after);
- ``decisions``: what the tracking store says of each job (FINISHED, IN FLIGHT, STALE, TODO), by the
  same rule a job applies when it starts (``identity.decide``).

huggingface_hub (its HTTP stack, ~0.4 s) and ``bioner_grid.tracking`` (mlflow, ~1.3 s) are imported
where used: ``plan`` and ``prefetch`` import this module at start-up.
"""

from __future__ import annotations

import importlib.util
import logging
import subprocess
from pathlib import Path

from omegaconf import OmegaConf

from bioner_grid import identity, spec
from bioner_grid.errors import InputError

log = logging.getLogger(__name__)


PreflightError = InputError  # its old name: a sweep's preflight failure is bad input (exit 2), every problem listed


def partition_gres(partition: str | None) -> list[str] | None:
    """The generic resources (``gpu:a100:4``, ``(null)``) of a SLURM partition's nodes, from
    ``sinfo -h -p PARTITION -o %G`` (the default partition when None); None when sinfo cannot tell."""
    try:
        r = subprocess.run(["sinfo", "-h", *(["-p", partition] if partition else []), "-o", "%P %G"],
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    rows = [line.split(None, 1) for line in r.stdout.splitlines() if line.strip()]
    if r.returncode != 0 or not rows:
        return None
    if not partition:  # sinfo marks the default partition with a '*'
        rows = [row for row in rows if row[0].endswith("*")] or rows
    return [row[1] if len(row) > 1 else "(null)" for row in rows]


def gpu_problem(partition: str | None, gpus: int) -> str | None:
    """Why a SLURM job asking for ``gpus`` GPUs per node cannot run on ``partition``, or None."""
    if not gpus:
        return None
    gres = partition_gres(partition)
    if gres is None or any("gpu" in g for g in gres):
        return None  # no sinfo answer: let sbatch decide
    where = f"partition {partition}" if partition else "the default partition"
    return (f"hydra.launcher.gpus_per_node={gpus} but {where} has no GPU (sinfo GRES: {', '.join(sorted(set(gres)))}); "
            f"pass hydra.launcher.gpus_per_node=0 or hydra.launcher.partition=<a GPU partition>")


def model_problem(mcfg) -> str | None:
    """Why ``mcfg`` cannot be loaded offline, or None when it can."""
    tok = mcfg.get("tokenizer") or mcfg  # a random model's tokenizer comes from another (spec.RandomModelSchema)
    for source, name, revision in {(mcfg.source, mcfg.name_or_path, mcfg.get("revision")),
                                   (tok.source, tok.name_or_path, tok.get("revision"))}:
        if source == "random":
            continue
        if source == "package":
            if importlib.util.find_spec(name) is None:
                return f"model {mcfg.name}: package {name} is not installed"
        elif source == "path":
            if not Path(name).is_dir():
                return f"model {mcfg.name}: folder {name} not found"
            if (source, name) == (mcfg.source, mcfg.name_or_path) and not any(Path(name).glob("*.safetensors")):
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


def preflight(configs, files: bool = True, rules: bool = True) -> list[str]:
    """Every problem of every job, each listed once: its config (``spec.problems``, unless
    ``rules`` is false because the caller has just applied them) and, with ``files``, its model and
    data files (a config with problems is not looked further into; each model looked up once)."""
    problems: dict[str, None] = {}
    models: dict[str, str | None] = {}
    for cfg in configs:
        found = spec.problems(cfg) if rules else []
        if not found and files:
            mkey = repr(sorted(OmegaConf.to_container(cfg.model, resolve=True).items()))
            if mkey not in models:
                models[mkey] = model_problem(cfg.model)
            found = [p for p in [models[mkey], *dataset_problems(cfg)] if p]
        problems.update(dict.fromkeys(found))
    return list(problems)


def store_runs(configs) -> dict[tuple, list]:
    """Every run of each tracking store and experiment the jobs use, newest first: one search
    (``search_runs``, all pages) per store, however many jobs (an empty list for a store or
    experiment that does not exist: nothing is created)."""
    from bioner_grid.store import RunStore

    out: dict[tuple, list] = {}
    for cfg in configs:
        where = (cfg.tracking.uri, cfg.tracking.experiment)
        if where not in out:
            store = RunStore.from_config(cfg.tracking)
            out[where] = [] if store.missing() else store.search(order_by=["attributes.start_time DESC"])
    return out


def decisions(configs, keys: list[str] | None = None, runs: dict[tuple, list] | None = None) -> list:
    """``identity.decide``'s verdict for every job: FINISHED, IN FLIGHT, STALE (to continue) or TODO,
    from one look-up of each tracking store (``store_runs``, or ``runs`` where the caller has it).
    ``keys``: the jobs' run keys where the caller has them already."""
    from bioner_grid import tracking

    runs = runs if runs is not None else store_runs(configs)
    by_key: dict[tuple, dict[str, list]] = {}
    for where, found in runs.items():
        table = by_key.setdefault(where, {})
        for r in found:
            if "run_key" in r.data.tags:
                table.setdefault(r.data.tags["run_key"], []).append(r)
    out = []
    for cfg in configs:
        key = keys[len(out)] if keys is not None else identity.run_key(cfg)
        out.append(tracking.decide(cfg, by_key[(cfg.tracking.uri, cfg.tracking.experiment)].get(key, [])))
    return out


def select_jobs(configs, check: bool = True, skip_finished: bool = True, counts: dict | None = None) -> list[int]:
    """Preflight (``InputError`` listing every problem; the config rules run whatever ``check``
    says, the model and file look-ups only with it) and skip-finished / in-flight; the indices to
    launch. ``counts``, when given, receives how many were FINISHED, IN FLIGHT and STALE."""
    problems = preflight(configs, files=check)
    if problems:
        raise InputError(f"preflight: {len(problems)} problem(s), nothing launched: " + "; ".join(problems))
    from bioner_grid import tracking

    for tcfg in {(c.tracking.uri, c.tracking.experiment): c.tracking for c in configs}.values():
        tracking.check_store(tcfg)  # each store answers, in seconds, before it is asked anything or used
    if not skip_finished:
        return list(range(len(configs)))
    verdicts = decisions(configs)
    todo = [i for i, d in enumerate(verdicts) if d.action not in ("finished", "in_flight")]
    counts = counts if counts is not None else {}
    counts.update({s: sum(d.status == s for d in verdicts) for s in ("FINISHED", "IN FLIGHT", "STALE")})
    log.info("skipping %d of %d runs already FINISHED in the tracking store and %d in flight; launching %d "
             "(%d of them continue a stopped run)", counts["FINISHED"], len(configs), counts["IN FLIGHT"], len(todo),
             counts["STALE"])
    return todo
