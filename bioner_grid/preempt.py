"""Time limit and preemption: lose at most one optimiser step.

Under submitit, SLURM's warning signal (USR2, ``signal_delay_s`` before the time limit, or at a
preemption) runs submitit's handler, which requeues the job and exits at once, wherever the job
is: everything since the last checkpoint is lost, and an attempt still loading when the signal
comes makes no progress at all. PyTorch Lightning's SLURM support saves a checkpoint when the
signal arrives and then requeues; this module does the same for the transformers Trainer:

- ``install()`` (at job start) puts a handler in front of submitit's that only notes the signal
  and sets a deadline (``GRACE_S``, an alarm);
- ``StopAtSignal`` (a TrainerCallback) sees it at the end of the current optimiser step (or, if
  the signal came while loading, of the first step) and asks the Trainer to save a checkpoint and
  stop. The Trainer writes ``trainer_state.json`` last, and a checkpoint without a readable one is
  never resumed from (``pipeline.last_complete_checkpoint``), so one cut short is never taken as
  complete;
- ``requeue_if_signalled()``, once ``trainer.train`` has returned, hands the signal to submitit's
  handler, which requeues and exits; the next attempt resumes from that step;
- if no checkpoint is written by the deadline (a step slower than the grace, a signal after
  training), the alarm hands the signal over anyway, so the job is always requeued in time.
"""

from __future__ import annotations

import logging
import os
import signal

from transformers import TrainerCallback

log = logging.getLogger(__name__)

# Seconds from the signal to the requeue at the latest: below SLURM's signal_delay_s (the
# launcher's default is 120 s, tests use 30 s), leaving time for the requeue itself.
GRACE_S = float(os.environ.get("BIONER_PREEMPT_GRACE_S", "20"))


class _State:
    signum: int | None = None  # the signal received, not yet handed over
    original = None  # submitit's handler
    training_done = False


def preempt_signal() -> int:
    """submitit's timeout/preemption signal (``SUBMITIT_PREEMPT_SIGNAL``, default USR2)."""
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))


def _hand_over(*_) -> None:
    """Give the signal to submitit's handler (it requeues the job and exits)."""
    signal.setitimer(signal.ITIMER_REAL, 0)
    signum, _State.signum = _State.signum, None
    _State.original(signum, None)


def _deadline(signum, frame) -> None:
    log.warning("no checkpoint %.0f s after the signal: requeueing without one", GRACE_S)
    _hand_over()


def _handler(signum, frame) -> None:
    if _State.training_done:
        _State.signum = signum
        _hand_over()
        return
    if _State.signum is None:
        log.warning("caught %s: finishing the current optimiser step, then checkpoint and requeue (within %.0f s)",
                    signal.Signals(signum).name, GRACE_S)
        _State.signum = signum
        signal.signal(signal.SIGALRM, _deadline)
        signal.setitimer(signal.ITIMER_REAL, GRACE_S)


def install() -> bool:
    """Put the step-finishing handler in front of the one installed for the preemption signal
    (submitit's); nothing to do, and False, where none is installed (not a submitit job)."""
    sig = preempt_signal()
    current = signal.getsignal(sig)
    if current is _handler:
        return True
    if not callable(current):
        return False
    _State.original, _State.signum, _State.training_done = current, None, False
    signal.signal(sig, _handler)
    return True


def installed() -> bool:
    return signal.getsignal(preempt_signal()) is _handler


def _at_epoch_end(state) -> bool:
    return state.epoch is not None and abs(state.epoch - round(state.epoch)) < 1e-9


class StopAtSignal(TrainerCallback):
    """At the end of the optimiser step during which the signal came: save a checkpoint, stop.

    Whatever the schedule does at that step (log, evaluate, save) is left as it is, so the resumed
    job ends exactly as an uninterrupted one: an evaluation moved or added would change which
    checkpoint is best and, through the evaluation loader's seed draw, the random state saved. The
    end of an epoch cut short by the stop is skipped (its evaluation belongs to the resumed job).
    (Runs after DefaultFlowCallback, which the Trainer puts first.)"""

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


def requeue_if_signalled() -> None:
    """After training: if the signal came, hand it to submitit's handler (requeue and exit); a
    signal from now on is handed over at once (nothing left to checkpoint)."""
    if not installed():
        return
    _State.training_done = True
    if _State.signum is not None:
        _hand_over()


def done() -> None:
    """The job's work is over (finished or skipped): no requeue needed; give submitit its handler back."""
    if installed():
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(preempt_signal(), _State.original)
        _State.signum = None
