"""Adaptive search with pruning on Optuna (``hydra/sweeper=optuna``): the parts a job and the sweeper share.

The sweeper (``launchers/hydra_plugins/bioner_grid_launcher/optuna_sweeper.py``) asks Optuna for
trials in batches of ``hydra.sweeper.n_jobs`` and launches each as an ordinary job through any
``hydra/launcher`` (basic, submitit local, SLURM), with ``search.trial``, ``search.study`` and
``search.storage`` on its command line. The job (``pipeline.run``) attaches to its trial through
the study's storage, so it works in its own process on any node: at every dev evaluation it
reports the dev strict F1 (step = the evaluation's number, 1, 2, ...) and asks the study's pruner
whether to stop (``bioner_grid.pruning``: apart, as it imports transformers, which the sweeper
must not at Hydra's plugin discovery). The sweeper then reads each trial's outcome from the tracking
store and tells the study; a configuration already FINISHED in the store (``identity.decide``) is
not trained again: its recorded dev curve and dev F1 are told instead.

A pruned run ends **FINISHED** with tag ``pruned=true`` (and ``pruned_at_evaluation``), and its
trial is PRUNED. Not KILLED: in this project KILLED means "stopped, resume me" (``identity.decide``
continues a KILLED run from its checkpoint), and a pruned run must never be resumed; not FAILED
(nothing went wrong, and FAILED runs are rerun as new). FINISHED makes skip-finished treat it as
done, it keeps its dev and test metrics (of the best model it reached), and the reports leave it
out of every ranking by its tag (``runtable.finished``), counted apart.

Reproducible decisions: the sampler is seeded with ``sampler.seed`` plus the number of trials the
study already holds (so a relaunch continues the sequence, never repeats it), and the pruners only
compare a trial with trials told before its batch was asked (Optuna's median pruner reads COMPLETE
trials only; the sweeper tells a batch's trials after the whole batch). With ``n_jobs=1`` the same
seed and study give the same trials and pruning decisions; with ``pruner.kind=halving`` and
``n_jobs>1`` the rungs also count the batch's running trials, so decisions there may depend on timing.

optuna is imported where used: ``pipeline`` imports this module in every job, search or not, and
Hydra imports the sweeper (which imports this module) whenever it discovers plugins.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path
from urllib.parse import urlsplit

from bioner_grid.errors import ConfigError
from bioner_grid.identity import GRID_KEYS

log = logging.getLogger(__name__)

# What a search may maximise (flat metric names of the dev-selected model), and the per-evaluation
# value a job reports for it (the Trainer's eval_* key; logged as dev_epoch_*).
METRICS = {"dev_strict_f1": "eval_strict_f1", "dev_f1": "eval_f1"}
EPOCH_METRIC = {"dev_strict_f1": "dev_epoch_strict_f1", "dev_f1": "dev_epoch_f1"}
SAMPLERS = ("tpe", "random")
PRUNERS = ("median", "halving", "none")
# override keys of the search space -> the grid key it varies (the sweep's ``varying`` tag, run names)
GRID_KEY_OF = {"model": "model", "dataset": "dataset", "scheme": "scheme", "train.lr": "lr",
               "train.batch_size": "batch_size", "train.seed": "seed"}


# ---------------------------------------------------------------------------------------------
# The search space: Hydra's sweep overrides as Optuna distributions (the Hydra Optuna plugin's rules)


def distribution(override):
    """The Optuna distribution of one sweep override: ``choice(8,16,32)`` categorical,
    ``range(1,5)`` integers (stop excluded, as Hydra's range), ``interval(a, b)`` uniform (integer
    when both ends are), ``tag(log, interval(a, b))`` log-uniform. ``ConfigError`` for the rest."""
    from hydra.core.override_parser.types import Glob, Transformer
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    key = override.get_key_element()
    if isinstance(override.value(), Glob):
        raise ConfigError(f"{key}: {override.input_line}: a search space takes choice(...), range(...), "
                          "interval(...) or tag(log, interval(...))")
    if override.is_choice_sweep() or (override.is_range_sweep() and override.value().shuffle):
        return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
    if override.is_range_sweep():
        r = override.value()
        if all(isinstance(v, int) for v in (r.start, r.stop, r.step)):
            if r.step <= 0 or r.stop <= r.start:
                raise ConfigError(f"{key}: range({r.start}, {r.stop}, {r.step}) is empty")
            return IntDistribution(r.start, r.start + r.step * ((r.stop - 1 - r.start) // r.step), step=r.step)
        return CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
    if override.is_interval_sweep():
        v = override.value()
        log_scale = "log" in v.tags
        if not v.start < v.end or (log_scale and v.start <= 0):
            raise ConfigError(f"{key}: interval({v.start}, {v.end}) must have start < end"
                              + (" and start > 0 on a log scale" if log_scale else ""))
        if isinstance(v.start, int) and isinstance(v.end, int):
            return IntDistribution(v.start, v.end, log=log_scale)
        return FloatDistribution(float(v.start), float(v.end), log=log_scale)
    raise ConfigError(f"{key}: {override.input_line}: a search space takes choice(...), range(...), "
                      "interval(...) or tag(log, interval(...))")


def parse_space(arguments: list[str]) -> tuple[dict, list[str]]:
    """(the search space ``{override key: distribution}``, the fixed overrides as typed) of a
    command line's task overrides. ``ConfigError`` naming the override for what does not parse."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    try:
        parsed = OverridesParser.create().parse_overrides(list(arguments))
    except OverrideParseException as e:
        raise ConfigError(f"command line: {str(e).splitlines()[0]}") from None
    space, fixed = {}, []
    for o in parsed:
        if o.is_sweep_override():
            space[o.get_key_element()] = distribution(o)
        else:
            fixed.append(o.input_line)
    return space, fixed


def override(key: str, value) -> str:
    """A sampled value as a command-line override (floats in full: the run key hashes the value)."""
    return f"{key}={'null' if value is None else repr(value) if isinstance(value, float) else value}"


def probe(space: dict) -> list[str]:
    """One point of the space per key (the low end, or the first choice): composed once before
    anything runs, so that a key that does not exist stops the search with one line."""
    from optuna.distributions import CategoricalDistribution

    return [override(k, d.choices[0] if isinstance(d, CategoricalDistribution) else d.low) for k, d in space.items()]


def varying(space: dict) -> list[str]:
    return [GRID_KEY_OF[k] for k in space if k in GRID_KEY_OF and GRID_KEY_OF[k] in GRID_KEYS]


# ---------------------------------------------------------------------------------------------
# The study: where it lives, its name, sampler and pruner


def default_storage(tracking_uri: str) -> str:
    """The study's storage beside the tracking store: ``sqlite:///<dir>/mlflow.db`` ->
    ``sqlite:///<dir>/mlflow.optuna.db``; a file store (a folder) -> ``<folder>/optuna.db``; a
    tracking server (whose database the jobs do not reach) -> the journal file
    ``outputs/optuna/studies.journal`` under the launch folder (Optuna's file-locked log, for a file
    system every node shares, as the sweep folder is), or pass ``hydra.sweeper.storage=postgresql://...``."""
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri[len("sqlite:///"):]).resolve()
        return f"sqlite:///{path.with_name(path.stem + '.optuna' + (path.suffix or '.db'))}"
    if "://" not in tracking_uri or tracking_uri.startswith("file://"):
        folder = Path(tracking_uri[len("file://"):] if tracking_uri.startswith("file://") else tracking_uri).resolve()
        return f"sqlite:///{folder / 'optuna.db'}"
    return str(Path("outputs/optuna/studies.journal").resolve())


def check_storage(url: str) -> None:
    """A storage URL may not carry a password: it goes on every job's command line."""
    if "://" in url and urlsplit(url).password:
        raise ConfigError("hydra.sweeper.storage: the URL holds a password, which would be written into every job's "
                          "command line and config; give it through PGPASSWORD or ~/.pgpass instead")


def open_storage(url: str):
    """The Optuna storage at ``url``: an SQLAlchemy URL (SQLite waits up to 60 s for a lock held by
    another trial's job), else a journal file path."""
    import optuna

    if "://" not in url:
        from optuna.storages.journal import JournalFileBackend

        Path(url).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(url))
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.RDBStorage(url, engine_kwargs=kwargs)


def study_name(grid_name: str, space: dict, fixed: list[str], settings: dict) -> str:
    """``<grid.name>-<hash>``: the same command (search space, fixed overrides, metric, sampler and
    pruner) names the same study, so a relaunch continues it; ``n_trials`` and ``n_jobs`` are left
    out (raise ``n_trials`` to search further in the same study)."""
    described = {"space": {k: repr(d) for k, d in sorted(space.items())}, "fixed": sorted(fixed), **settings}
    return f"{grid_name}-{hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:10]}"


def make_sampler(kind: str, seed: int):
    """The sampler of one batch: seeded by the sweeper with ``sampler.seed + trials already in the
    study``, so the same study asks the same trials on every rerun and a relaunch draws on."""
    import optuna

    if kind == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(spec: dict):
    """The study's pruner from its settings (``hydra.sweeper.pruner``, kept in the study's user
    attributes so that every job prunes by the same rule): ``median`` (Optuna's MedianPruner: stop
    a trial whose dev F1 at an evaluation is below the median of the completed trials' at the same
    evaluation), ``halving`` (asynchronous successive halving, Li et al. 2020: at rung r, after
    ``min_resource * reduction_factor**r`` evaluations, only the top 1/``reduction_factor`` go on)
    or ``none``."""
    import optuna

    if spec["kind"] == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=spec["n_startup_trials"],
                                           n_warmup_steps=spec["n_warmup_steps"])
    if spec["kind"] == "halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=spec["min_resource"],
                                                      reduction_factor=spec["reduction_factor"])
    return optuna.pruners.NopPruner()


def settings_problems(metric: str, direction: str, n_trials: int, n_jobs: int, sampler: dict, pruner: dict) -> list[str]:
    """What is wrong with ``hydra.sweeper``'s settings, each naming its key (empty: fine)."""
    problems = []
    if metric.startswith("test"):
        problems.append(f"hydra.sweeper.metric={metric}: a search chooses on dev, never on test (the test split "
                        "scores the choice once it is made); use dev_strict_f1")
    elif metric not in METRICS:
        problems.append(f"hydra.sweeper.metric={metric}: must be one of {', '.join(METRICS)}")
    if direction != "maximize":
        problems.append(f"hydra.sweeper.direction={direction}: an F1 is maximised (direction=maximize)")
    for key, value in (("n_trials", n_trials), ("n_jobs", n_jobs)):
        if value < 1:
            problems.append(f"hydra.sweeper.{key}={value}: must be a positive integer")
    if sampler["kind"] not in SAMPLERS:
        problems.append(f"hydra.sweeper.sampler.kind={sampler['kind']}: must be one of {', '.join(SAMPLERS)}")
    if pruner["kind"] not in PRUNERS:
        problems.append(f"hydra.sweeper.pruner.kind={pruner['kind']}: must be one of {', '.join(PRUNERS)}")
    for key in ("n_startup_trials", "n_warmup_steps"):
        if pruner[key] < 0:
            problems.append(f"hydra.sweeper.pruner.{key}={pruner[key]}: must be >= 0")
    for key, low in (("min_resource", 1), ("reduction_factor", 2)):
        if pruner[key] < low:
            problems.append(f"hydra.sweeper.pruner.{key}={pruner[key]}: must be >= {low}")
    return problems


# ---------------------------------------------------------------------------------------------
# The job's side


def run_tags(cfg) -> dict[str, str]:
    """The tags of a trial's run: its trial number and study (none outside a search)."""
    if cfg.search.trial is None:
        return {}
    return {"trial": str(cfg.search.trial), "study": str(cfg.search.study)}


# ---------------------------------------------------------------------------------------------
# The sweeper's side: a trial's outcome from the run the store holds


def outcome(store, run, metric: str):
    """(state, value, dev curve) of a trial whose configuration ``run`` recorded: FINISHED with a
    finite ``metric`` -> COMPLETE (PRUNED when tagged ``pruned=true``), else FAIL. The curve is the
    run's per-evaluation dev score (``dev_epoch_*``), numbered 1, 2, ... as the job reported it."""
    from optuna.trial import TrialState

    from bioner_grid.store import real_value, run_metrics

    if run is None or run.info.status != "FINISHED":
        return TrialState.FAIL, None, []
    value = run_metrics(run).get(metric)
    if value is None or not math.isfinite(real_value(value)):
        return TrialState.FAIL, None, []
    curve = [v for _, v in store.metric_history(run.info.run_id, EPOCH_METRIC[metric])]
    state = TrialState.PRUNED if run.data.tags.get("pruned") == "true" else TrialState.COMPLETE
    return state, float(real_value(value)), curve


def tell(study, storage, number: int, state, value, curve: list[float], reported: bool, run_id: str | None,
         reused: bool) -> None:
    """Tell the study a trial's outcome. A reused run's dev curve is reported first (the job of a
    launched trial reported its own), so the pruners compare later trials with it as with any other."""
    import optuna
    from optuna.trial import TrialState

    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name), number)
    if storage.get_trial(trial_id).state.is_finished():  # told by another launch of the same study meanwhile
        log.warning("trial %d was told its outcome by another launch; left as it is", number)
        return
    trial = optuna.trial.Trial(study, trial_id)
    if not reported:
        for step, v in enumerate(curve, start=1):
            trial.report(v if math.isfinite(v) else 0.0, step)
    if run_id:
        trial.set_user_attr("run_id", run_id)
    trial.set_user_attr("reused", reused)
    if state == TrialState.COMPLETE:
        study.tell(number, value)
    elif state == TrialState.PRUNED:
        study.tell(number, state=TrialState.PRUNED)
    else:
        study.tell(number, state=TrialState.FAIL)
