"""The collapse sentinel: stop a run that has collapsed instead of training it to its last epoch.

A learning rate far too high for a model (lr 1e-3 on a BERT-sized encoder, the foundation grid's
top row) sends fine-tuning to the all-``O`` solution within the first epoch: the model predicts no
entity, its dev loss settles at the loss of always answering ``O``, and every later epoch
costs the same compute for a dev F1 of 0.00. Or the loss becomes NaN/inf and nothing after that
step means anything. ``train.stop_collapsed`` (``CollapseSentinel``) stops such a run after an
evaluation; the run ends FINISHED with the tag ``collapsed=true`` (its dev and test scores are
those of the all-``O`` model it is: a measured result of that configuration, which a relaunch must
not train again), and the report shows its cells as "collapsed", not 0.00.

The rule (``collapse_reason``, a pure function over the run's evaluations):

- the training loss or the dev loss is not finite: collapsed at once;
- the model predicted no entity on dev at each of the last ``train.collapse_after`` evaluations
  **and** over those evaluations its loss fell by less than ``MIN_DROP`` (relative).

The second condition is what spares a slow start: a learning rate that finds its first entities
only in epoch 2 or 3 also predicts nothing at first, but its loss is still falling. Which loss was
decided by measured runs (MiniLM, NCBI-disease, 240 training / 100 dev sentences, batch 16, 5
epochs, this CPU; the numbers are in tests/test_collapse.py): the dev loss, measured at the
evaluation, not the training loss logged with it, which is the mean over the epoch:

- lr 5e-3 collapsed (no entity in any of the 5 epochs, dev F1 0.00 throughout): its training loss
  kept drifting down (0.673, 0.380, 0.341, 0.310, 0.336: the all-``O`` model growing surer) while
  its dev loss stayed flat (0.352, 0.364, 0.351, 0.379, 0.353);
- lr 1e-3 started slowly and recovered (no entity in epochs 1-2, then dev F1 9.6, 26.5, 20.7): its
  training loss was flat before the first entities (0.503, 0.500) while its dev loss fell 28%
  (0.339, 0.244);
- lr 5e-5, a slow start (its first 6 entities in epoch 3, dev F1 12.8 and 26.6 in epochs 4-5):
  dev loss 0.328, 0.251 (-23%), 0.207, 0.182, 0.168;
- lr 3e-5, slower still (no entity in 5 epochs): dev loss 0.530, 0.286, 0.242, 0.223, 0.217, each
  at least 10% below the one two evaluations before.

A rule on the training loss would have stopped the run that recovered and trained the collapsed
one to its end; on the dev loss (the training loss only where none is logged) it stops the
collapsed run at its second evaluation (+3% dev loss; measured with the sentinel on: 32 of 80
steps trained, 60% of the training saved) and spares the three others at every evaluation (their
smallest fall over a window: 10%). Hence the
defaults ``collapse_after=2`` and ``MIN_DROP=0.05``; ``collapse_after=1`` would stop all four at
their first evaluation (nothing to compare with). With early stopping on (``train.patience=2``, the
default) an all-zero run stops after its third evaluation anyway; the sentinel saves most where
there is none (``train=welt_authors``: 10 to 100 epochs).

The history is rebuilt from the Trainer's own ``state.log_history`` at every evaluation, not kept
in the callback: a run resumed from a checkpoint (``trainer_state.json``) decides exactly as the
uninterrupted one would.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from transformers import TrainerCallback

log = logging.getLogger(__name__)

# The smallest relative fall of the loss, over the last ``collapse_after`` evaluations, that still
# counts as "falling". Why 5%: see the module docstring (measured runs).
MIN_DROP = 0.05
# The metric the dev scorer adds for the rule: how many entities the model predicted on dev.
PRED_ENTITIES = "eval_pred_entities"


@dataclass(frozen=True)
class Evaluation:
    """One evaluation as the rule sees it: the training loss logged with it (the mean over the steps
    since the previous log), the dev loss, and the number of entities predicted on dev."""

    loss: float
    entities: int
    dev_loss: float | None = None  # None: not logged


def collapse_reason(history: list[Evaluation], after: int, min_drop: float = MIN_DROP) -> str | None:
    """Why the run whose evaluations are ``history`` (oldest first) has collapsed, or None.

    Collapsed when the newest evaluation's training or dev loss is not finite, or when the last
    ``after`` evaluations all predicted no entity on dev and the loss stopped falling over them:
    ``loss[-1] > (1 - min_drop) * loss[ref]``, ``ref`` the evaluation before the window (the
    window's first while there is none before it). The loss compared is the dev loss (the
    training loss where no dev loss was logged): see the module's docstring for why. Fewer than
    ``after`` evaluations: never."""
    if not history:
        return None
    last = history[-1]
    if not math.isfinite(last.loss) or last.dev_loss is not None and not math.isfinite(last.dev_loss):
        return f"the loss is not finite (train {last.loss:g}, dev {last.dev_loss})"
    if after < 1 or len(history) < after:
        return None
    window = history[-after:]
    if any(e.entities > 0 for e in window):
        return None
    ref = history[-after - 1] if len(history) > after else history[0]
    which, now, then = ("dev", last.dev_loss, ref.dev_loss) if last.dev_loss is not None and ref.dev_loss is not None \
        else ("training", last.loss, ref.loss)
    if now <= (1 - min_drop) * then:
        return None  # still learning (a slow start): let it run
    return (f"no entity predicted on dev in {after} evaluation(s) in a row, and the {which} loss fell by less than "
            f"{100 * min_drop:g}% ({then:.4f} -> {now:.4f})")


def history_of(log_history: list[dict]) -> list[Evaluation]:
    """The evaluations of a Trainer's ``state.log_history``, each with the training loss logged last
    before it (the Trainer logs the loss, then evaluates, at the same step)."""
    out, loss = [], math.nan
    for entry in log_history:
        if "loss" in entry:
            loss = float(entry["loss"])
        if PRED_ENTITIES in entry:
            dev_loss = entry.get("eval_loss")
            out.append(Evaluation(loss, int(entry[PRED_ENTITIES]), None if dev_loss is None else float(dev_loss)))
    return out


class CollapseSentinel(TrainerCallback):
    """Stops training after an evaluation at which ``collapse_reason`` finds the run collapsed;
    ``reason`` says why (None: it did not collapse), and ``at_epoch`` when."""

    def __init__(self, after: int, min_drop: float = MIN_DROP):
        self.after, self.min_drop = int(after), float(min_drop)
        self.reason: str | None = None
        self.at_epoch: float | None = None

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if self.reason or PRED_ENTITIES not in (metrics or {}):
            return
        reason = collapse_reason(history_of(state.log_history), self.after, self.min_drop)
        if reason:
            self.reason, self.at_epoch = reason, float(state.epoch or 0)
            log.warning("collapsed at epoch %.2f: %s; stopping (train.stop_collapsed=false trains on)",
                        self.at_epoch, reason)
            control.should_training_stop = True


def sentinels(t) -> tuple[CollapseSentinel, ...]:
    """The sentinel a ``train`` config asks for (``train.stop_collapsed``), as callbacks for ``train.train``."""
    return (CollapseSentinel(int(t.collapse_after)),) if t.stop_collapsed else ()


def outcome(trainer) -> dict[str, str] | None:
    """The run's tags when its sentinel stopped it (``collapsed=true``, why and when), else None."""
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, CollapseSentinel) and callback.reason:
            return {"collapsed": "true", "collapse_reason": callback.reason,
                    "collapsed_at_epoch": f"{callback.at_epoch:g}"}
    return None
