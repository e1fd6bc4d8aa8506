"""The job's side of an adaptive search (``bioner_grid.search``): attach to the Optuna trial this
job is, report the dev score at every evaluation, stop when the study's pruner says so.

A module of its own, hooked into ``pipeline.run`` by a few lines and into the Trainer as one more
callback: it imports transformers, which the sweeper (imported at Hydra's plugin discovery) must not.
"""

from __future__ import annotations

import logging
import math

from transformers import TrainerCallback

from bioner_grid.errors import ConfigError
from bioner_grid.search import METRICS, make_pruner, open_storage

log = logging.getLogger(__name__)


def attach(cfg):
    """(the Optuna trial this job is, its storage, its id): ``search.trial`` of ``search.study`` in
    ``search.storage``, with the study's own pruner; None outside a search. ``ConfigError`` when the
    study or trial is not there."""
    import optuna

    s = cfg.search
    if s.trial is None:
        return None
    if not s.study or not s.storage:
        raise ConfigError("search.trial: needs search.study and search.storage (the sweeper sets all three)")
    storage = open_storage(s.storage)
    try:
        study_id = storage.get_study_id_from_name(s.study)
    except KeyError:
        raise ConfigError(f"search.study={s.study}: no such study in {s.storage}") from None
    attrs = storage.get_study_user_attrs(study_id)
    study = optuna.load_study(study_name=s.study, storage=storage, pruner=make_pruner(attrs["pruner"]))
    try:
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, int(s.trial))
    except KeyError:
        raise ConfigError(f"search.trial={s.trial}: study {s.study} has no such trial") from None
    # Optuna has no public call to attach to a trial asked by another process; a Trial over the
    # shared storage is what its own distributed optimisation does in each worker.
    return optuna.trial.Trial(study, trial_id), storage, trial_id


class ReportToTrial(TrainerCallback):
    """At every dev evaluation: report the dev score to the trial (step = the evaluation's number,
    counted from the Trainer's log history, so a resumed run numbers them as the uninterrupted one)
    and stop training when the study's pruner says so (``pruned_at``: that evaluation). The run then
    goes on as any run whose training ended: the best model so far is scored on dev and test."""

    def __init__(self, trial, storage, trial_id: int, key: str = "eval_strict_f1"):
        self.trial, self.storage, self.trial_id, self.key, self.pruned_at = trial, storage, trial_id, key, None

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not metrics or self.key not in metrics:
            return
        step = sum(1 for entry in state.log_history if self.key in entry)
        if self.storage.get_trial(self.trial_id).state.is_finished():  # told already (a relaunch resuming an old run)
            return
        value = float(metrics[self.key])
        self.trial.report(value if math.isfinite(value) else 0.0, step)
        if self.trial.should_prune():
            self.pruned_at = step
            control.should_training_stop = True
            log.info("trial %d pruned at evaluation %d (dev score %.4f): training stops here", self.trial.number,
                     step, value)

    def tags(self) -> dict[str, str]:
        """``pruned=true|false`` (and ``pruned_at_evaluation``) for the run."""
        if self.pruned_at is None:
            return {"pruned": "false"}
        return {"pruned": "true", "pruned_at_evaluation": str(self.pruned_at)}


def callback(cfg, metric: str = "dev_strict_f1") -> ReportToTrial | None:
    """The job's Trainer callback reporting to its trial (None outside a search)."""
    attached = attach(cfg)
    if attached is None:
        return None
    trial, storage, trial_id = attached
    metric = trial.study.user_attrs.get("metric", metric)
    return ReportToTrial(trial, storage, trial_id, METRICS[metric])
