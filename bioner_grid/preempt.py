"""Time limit and preemption: lose at most one optimiser step.

Under submitit, SLURM's warning signal (USR2, ``signal_delay_s`` before the time limit, or at a
preemption) runs submitit's handler, which requeues the job and exits at once, wherever the
training is: everything since the last checkpoint is lost. PyTorch Lightning's SLURM support saves
a checkpoint when the signal arrives and then requeues; this module does the same for the
transformers Trainer:

- ``install()`` puts a handler in front of submitit's: while training runs it only sets a flag;
- ``StopAtSignal`` (a TrainerCallback) sees the flag at the end of the current optimiser step and
  asks the Trainer to save a checkpoint and stop. The Trainer writes ``trainer_state.json`` last,
  and a checkpoint without a readable one is never resumed from
  (``pipeline.last_complete_checkpoint``), so a checkpoint cut short is never taken as complete;
- ``requeue_if_signalled()``, once ``trainer.train`` has returned, hands the signal to submitit's
  handler, which requeues and exits; the next attempt resumes from that step.

Outside training (loading, scoring), a signal goes to submitit's handler at once, as before.
"""

from __future__ import annotations

import logging
import os
import signal

from transformers import TrainerCallback

log = logging.getLogger(__name__)


class _State:
    signum: int | None = None  # the signal received while training
    original = None  # submitit's handler
    training = False


def preempt_signal() -> int:
    """submitit's timeout/preemption signal (``SUBMITIT_PREEMPT_SIGNAL``, default USR2)."""
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))


def _handler(signum, frame) -> None:
    if _State.training:
        log.warning("caught %s: finishing the current optimiser step, then checkpoint and requeue",
                    signal.Signals(signum).name)
        _State.signum = signum
    else:
        _State.original(signum, frame)


def install() -> bool:
    """Put the step-finishing handler in front of the one installed for the preemption signal
    (submitit's); nothing to do, and False, where none is installed (not a submitit job)."""
    sig = preempt_signal()
    current = signal.getsignal(sig)
    if current is _handler:
        return True
    if not callable(current):
        return False
    _State.original, _State.signum = current, None
    signal.signal(sig, _handler)
    return True


def _at_epoch_end(state) -> bool:
    return state.epoch is not None and abs(state.epoch - round(state.epoch)) < 1e-9


class StopAtSignal(TrainerCallback):
    """At the end of the optimiser step during which the signal came: save a checkpoint, stop.

    Whatever the schedule does at that step (log, evaluate, save) is left as it is, so the resumed
    job ends exactly as an uninterrupted one: an evaluation moved or added would change which
    checkpoint is best and, through the evaluation loader's seed draw, the random state saved. The
    end of an epoch cut short by the stop is skipped (its evaluation belongs to the resumed job).
    (Runs after DefaultFlowCallback, which the Trainer puts first.)"""

    def on_train_begin(self, args, state, control, **kwargs):
        _State.training = True

    def on_step_end(self, args, state, control, **kwargs):
        if _State.signum is not None:
            epoch_save = _at_epoch_end(state) and args.save_strategy == "epoch"  # on_epoch_end saves, after its evaluation
            log.warning("step %d done: writing checkpoint-%d, then exiting for requeue", state.global_step, state.global_step)
            control.should_save = control.should_save or not epoch_save
            control.should_training_stop = True
        return control

    def on_epoch_end(self, args, state, control, **kwargs):
        if _State.signum is not None and not _at_epoch_end(state):  # stopped mid-epoch: saved already
            control.should_evaluate = control.should_log = control.should_save = False
        return control

    def on_train_end(self, args, state, control, **kwargs):
        _State.training = False


def requeue_if_signalled() -> None:
    """After training: if the signal came, hand it to submitit's handler (requeue and exit)."""
    _State.training = False
    if _State.signum is not None:
        signum, _State.signum = _State.signum, None
        _State.original(signum, None)
