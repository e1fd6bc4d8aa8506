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

SIGTERM and SIGINT (``scancel`` and a node shutdown send SIGTERM first, SIGKILL some seconds
later; Ctrl-C sends SIGINT) are handled the same way outside submitit (``stop_on_signals``, around
the whole command): during training the current step is finished, a checkpoint written and
training stopped; before or after training the run stops at once. Either way ``KeyboardInterrupt``
ends the run KILLED (``pipeline.run``) and the command prints one line saying that the same
command resumes it (from that checkpoint: exactly, as a requeue does). A second signal, or the
deadline, stops at once (the newest complete checkpoint is then resumed). Inside a submitit job
SIGTERM is submitit's (it ignores it and requeues on USR2): a handler someone else installed is
left alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal

from transformers import TrainerCallback

log = logging.getLogger(__name__)

# Seconds from the signal to the requeue at the latest: below SLURM's signal_delay_s (the
# launcher's default is 120 s, tests use 30 s), leaving time for the requeue itself.
GRACE_S = float(os.environ.get("BIONER_PREEMPT_GRACE_S", "20"))


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class _State:
    signum: int | None = None  # the signal received, not yet handed over
    original = None  # submitit's handler
    training_done = False
    stop: int | None = None  # SIGTERM or SIGINT received: end the run KILLED
    in_training = False  # between the Trainer's on_train_begin and on_train_end
    between: int | None = None  # SIGTERM or SIGINT received while a sequential sweep was between jobs


def _pending() -> bool:
    return _State.signum is not None or _State.stop is not None


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


def _requeue_installed() -> bool:
    return signal.getsignal(preempt_signal()) is _handler


def installed() -> bool:
    """Whether training should stop at a signal (``StopAtSignal``): a submitit job's requeue, or
    SIGTERM/SIGINT outside submitit."""
    return _requeue_installed() or any(signal.getsignal(s) is _stop_handler for s in STOP_SIGNALS)


# --- SIGTERM and SIGINT: end the run KILLED, resumable ---------------------------------------


def _stop_now() -> None:
    """``KeyboardInterrupt(line, exit status)``: ``pipeline.run`` ends its run KILLED and puts the
    run's own line in; ``__main__`` prints the line and exits with the status."""
    signal.setitimer(signal.ITIMER_REAL, 0)
    _State.in_training = False
    raise KeyboardInterrupt(f"stopped by {stopped_by()} before a run was opened: nothing recorded; run the same "
                            "command again to start it", exit_code())


def _stop_deadline(signum, frame) -> None:
    log.warning("no checkpoint %.0f s after the signal: stopping without one", GRACE_S)
    _stop_now()


def _stop_handler(signum, frame) -> None:
    name = signal.Signals(signum).name
    if _State.in_training and _State.stop is None and _State.signum is None:
        _State.stop = signum
        log.warning("caught %s: finishing the current optimiser step, then checkpoint and stop (within %.0f s; "
                    "%s again stops at once)", name, GRACE_S, name)
        signal.signal(signal.SIGALRM, _stop_deadline)
        signal.setitimer(signal.ITIMER_REAL, GRACE_S)
        return
    _State.stop = _State.stop or signum
    _stop_now()


def stopped_by() -> str | None:
    """The name of the stop signal received (``SIGTERM``), or None."""
    return signal.Signals(_State.stop).name if _State.stop is not None else None


def exit_code() -> int:
    """The shell's status for a process ended by the signal received (128 + its number)."""
    return 128 + int(_State.stop or signal.SIGINT)


@contextlib.contextmanager
def stop_on_signals():
    """SIGTERM and SIGINT, where nobody else handles them (not inside submitit, which owns SIGTERM),
    stop the command cleanly (``_stop_handler``); the previous handlers come back afterwards."""
    previous = {}
    for sig in STOP_SIGNALS:
        current = signal.getsignal(sig)
        if current in (signal.SIG_DFL, signal.default_int_handler, _between_jobs_handler):
            previous[sig] = current
            signal.signal(sig, _stop_handler)
    _State.stop, _State.in_training = None, False
    try:
        if _State.between is not None:  # came while a sweep set this job up: stop before it opens a run
            _State.stop = _State.between
            _stop_now()
        yield
    finally:
        if _State.stop is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _State.in_training = False


def _between_jobs_handler(signum, frame) -> None:
    if _State.between is None:
        _State.between = signum
        log.warning("caught %s between jobs: the sweep stops before its next job", signal.Signals(signum).name)


@contextlib.contextmanager
def between_jobs():
    """Around a sequential sweep (Hydra's basic launcher: one job after another in this process):
    SIGTERM or SIGINT arriving while no job runs (between two jobs, or while the sweep's parent run
    is written) is only noted; the sweep asks ``stop_before_next_job`` before each job and stops
    there, so its parent run is closed and no job is started half. Inside a job ``stop_on_signals``
    takes the signals over as usual. Without this, SIGTERM between jobs killed the process at once
    (its default action) and left the parent run RUNNING."""
    previous = {}
    for sig in STOP_SIGNALS:
        current = signal.getsignal(sig)
        if current in (signal.SIG_DFL, signal.default_int_handler):
            previous[sig] = current
            signal.signal(sig, _between_jobs_handler)
    _State.between = None
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _State.between = None


def stop_before_next_job(done: int, total: int) -> None:
    """``KeyboardInterrupt(line, exit status)`` (as ``_stop_now``) if a signal came between jobs."""
    if _State.between is None:
        return
    name = signal.Signals(_State.between).name
    raise KeyboardInterrupt(f"stopped by {name} after {done} of {total} jobs of the sweep: the other {total - done} not "
                            "started; run the same command again to run them (finished jobs are skipped)",
                            128 + int(_State.between))


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
        _State.in_training = True

    def on_train_end(self, args, state, control, **kwargs):
        _State.in_training = False

    def on_step_end(self, args, state, control, **kwargs):
        if _pending():
            epoch_save = _at_epoch_end(state) and args.save_strategy == "epoch"  # on_epoch_end saves, after its evaluation
            then = "exiting for requeue" if _State.signum is not None else "stopping"
            log.warning("step %d done: writing checkpoint-%d, then %s", state.global_step, state.global_step, then)
            control.should_save = control.should_save or not epoch_save
            if args.save_total_limit == 1:  # the Trainer would delete this checkpoint as training ends
                args.save_total_limit = 2  # (it keeps only the best one): the next attempt resumes from it
            control.should_training_stop = True
        return control

    def on_epoch_end(self, args, state, control, **kwargs):
        if _pending() and not _at_epoch_end(state):  # stopped mid-epoch: saved already
            control.should_evaluate = control.should_log = control.should_save = False
        return control


def requeue_if_signalled() -> None:
    """After training: if the signal came, hand it to submitit's handler (requeue and exit); a
    signal from now on is handed over at once (nothing left to checkpoint). After SIGTERM/SIGINT
    (its checkpoint written): stop, ``KeyboardInterrupt``."""
    _State.in_training = False
    if _State.stop is not None:
        _stop_now()
    if not _requeue_installed():
        return
    _State.training_done = True
    if _State.signum is not None:
        _hand_over()


def done() -> None:
    """The job's work is over (finished or skipped): no requeue needed; give submitit its handler back."""
    if _requeue_installed():
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(preempt_signal(), _State.original)
        _State.signum = None
