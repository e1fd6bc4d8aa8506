"""``python -m bioner_grid.plan experiment=welt_grid [overrides]``: the jobs a sweep would launch.

Prints every job (its sweep overrides and run key), the count, what the tracking store says of
each (FINISHED, IN FLIGHT: a live job runs it, STALE: a stopped run a launch continues, TODO), its
expected training time and the grid's total in CPU- / GPU-hours (``bioner_grid.estimate``, from the
store's finished runs; "no data to estimate from" where it has none), and the preflight problems
(models not resolvable offline, missing data files). Launches nothing.
"""

from __future__ import annotations

import itertools
import sys
from collections import Counter

from hydra import initialize_config_dir
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from bioner_grid import estimate, identity, redact, search, spec
from bioner_grid.config import CONF_DIR, compose_here, compose_jobs
from bioner_grid.errors import ConfigError
from bioner_grid.grid import decisions, preflight, store_runs
from bioner_grid.sweep import settle_submitted


def sweep_jobs(overrides: list[str]) -> tuple[list[str], list[list[str]]]:
    """(fixed overrides, one override list per job): ``expand`` without its note."""
    fixed, jobs, _ = expand(overrides)
    return fixed, jobs


def expand(overrides: list[str]) -> tuple[list[str], list[list[str]], str | None]:
    """(fixed overrides, one override list per job, a note on an adaptive search or None) as
    Hydra's basic sweeper expands them: the experiment's ``hydra.sweeper.params`` with command-line
    sweeps taking precedence. Under ``hydra/sweeper=optuna``, the cells of its search space."""
    parser = OverridesParser.create()
    parsed = parser.parse_overrides(overrides)
    fixed = [o.input_line for o in parsed if not o.is_sweep_override()]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose_here(fixed, return_hydra_config=True)
    params = {k: str(v) for k, v in (cfg.hydra.sweeper.params or {}).items()}
    for o in parsed:
        if o.is_sweep_override():
            params[o.get_key_element()] = o.input_line.split("=", 1)[1]
    if "optuna" in str(cfg.hydra.sweeper.get("_target_", "")).lower():
        return fixed, *search_cells(params, int(cfg.hydra.sweeper.n_trials))
    sweep = parser.parse_overrides([f"{k}={v}" for k, v in params.items()])
    batches = BasicSweeper.split_arguments(sweep, max_batch_size=None)
    return fixed, [job for batch in batches for job in batch], None


def search_cells(params: dict[str, str], n_trials: int) -> tuple[list[list[str]], str]:
    """An adaptive search's space as jobs to list: every cell of a discrete space (choice, range),
    and an interval at its two ends, the values it is checked and estimated at (``hydra.sweeper.params``
    that are not a space are in every job, as the sweeper gives them); with the note saying how many
    trials the search runs and how it picks them."""
    from optuna.distributions import CategoricalDistribution

    typed = [f"{k}={v}" for k, v in params.items()]
    space, fixed = search.parse_space(typed)
    intervals = {o.get_key_element() for o in OverridesParser.create().parse_overrides(typed) if o.is_interval_sweep()}
    values = {}
    for key, d in space.items():
        if key in intervals:
            values[key] = [d.low, d.high]
        elif isinstance(d, CategoricalDistribution):
            values[key] = list(d.choices)
        else:  # range(): an integer distribution with its step
            values[key] = list(range(d.low, d.high + 1, d.step))
    jobs = [fixed + [search.override(k, v) for k, v in zip(values, cell)] for cell in itertools.product(*values.values())]
    where = (f"{', '.join(k for k in values if k in intervals)}: listed at the ends of its interval, the trials' values "
             "are chosen as the search goes" if intervals else f"{len(jobs)} cells listed")
    note = (f"search (hydra/sweeper=optuna): at most n_trials={n_trials} trials over "
            f"{', '.join(f'{k}={v}' for k, v in params.items() if k in space)}; {where}; each trial is chosen from the "
            "results so far, a FINISHED configuration is reused, a pruned trial stops early")
    return jobs, note


def job_configs(fixed: list[str], jobs: list[list[str]]):
    """Every job's config, as ``compose_here(fixed + job)`` gives it (``config.compose_jobs``: each
    YAML file parsed once, not once per job)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose_jobs([fixed + job for job in jobs])


def check_jobs(jobs: list[list[str]], configs) -> None:
    """``ConfigError`` naming every problem of every job (``spec.problems``, as a sweep's preflight
    and the job itself apply it): no run key can be computed for a config that breaks the rules."""
    problems: dict[str, list[str]] = {}
    for job, cfg in zip(jobs, configs):
        try:  # every interpolation once, here, not again by each rule and the run key (plan only reads)
            OmegaConf.resolve(cfg)
        except OmegaConfBaseException:
            pass  # left as it is: spec.problems names the key
        for p in spec.problems(cfg):
            problems.setdefault(p, []).append(" ".join(job))
    if problems:
        raise ConfigError("; ".join(f"{p}" + (f" ({len(js)} jobs)" if len(js) > 1 else "") for p, js in problems.items()))


def main(argv: list[str]) -> int:
    fixed, jobs, search_note = expand(argv)
    configs = job_configs(fixed, jobs)
    check_jobs(jobs, configs)
    keys = [identity.run_key(cfg) for cfg in configs]
    runs = store_runs(configs)  # one search of each store: the verdicts and the time estimates
    verdicts = decisions(configs, keys, runs)
    known = {where: estimate.samples(found) for where, found in runs.items()}
    estimates = [estimate.estimate(cfg, known[(cfg.tracking.uri, cfg.tracking.experiment)]) for cfg in configs]
    name = configs[0].grid.name if configs else "?"
    counts = Counter(d.status for d in verdicts)
    listed = f"{len(jobs)} configurations of its search space" if search_note else f"{len(jobs)} jobs"
    print(redact.text(f"experiment {name}: {listed}; tracking {configs[0].tracking.uri} "
                      f"(experiment {configs[0].tracking.experiment}): "
                      + ", ".join(f"{counts[s]} {s}" for s in ("FINISHED", "IN FLIGHT", "STALE", "TODO"))))
    if search_note:
        print(redact.text(search_note))
    for i, (job, key, d, e) in enumerate(zip(jobs, keys, verdicts, estimates)):
        status = f"{d.status} {d.run_id}" if d.run_id else d.status
        print(redact.text(f"  #{i:<3} {' '.join(job):<70} key {key}  {status}  train {e.text()}"))
    todo = [e for d, e in zip(verdicts, estimates) if d.status != "FINISHED"]
    total = f"expected training time: {estimate.sweep_total(estimates)} for all {len(estimates)} jobs"
    print(total + (f"; {estimate.sweep_total(todo)} for the {len(todo)} not FINISHED" if len(todo) < len(estimates) else ""))
    problems = preflight(configs, rules=False)  # the config rules passed above (check_jobs): the models and files
    print(redact.text(f"preflight: {len(problems)} problem(s)" + "".join(f"\n  - {p}" for p in problems)))
    if configs:  # submitted sweeps (grid.wait=false) whose jobs have all ended get their summary now
        for line in settle_submitted(configs[0].tracking.uri, configs[0].tracking.experiment):
            print(redact.text(line))
    return 0


if __name__ == "__main__":
    from bioner_grid.cli import run

    sys.exit(run("plan"))
