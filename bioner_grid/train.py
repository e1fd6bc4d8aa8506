"""Fine-tuning with the transformers Trainer and a class-weighted cross-entropy loss.

Dynamic padding (``DataCollatorForTokenClassification``) and length-grouped batches keep the
padding small; the device and precision are ``runtime``'s. The loss is the head's
(``heads.head_of``): weighted cross-entropy for softmax, the CRF's own likelihood. Dev sets are
scored by a function the caller passes (``scoring.score``): training sits below scoring in the
package's layers (tests/test_imports.py).
"""

from __future__ import annotations

import errno
import logging
import math
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Sampler, SequentialSampler
from transformers import (
    DataCollatorForTokenClassification,
    EarlyStoppingCallback,
    PrinterCallback,
    ProgressCallback,
    Trainer,
    TrainerCallback,
    TrainerState,
    TrainingArguments,
)
from transformers.trainer import TRAINER_STATE_NAME
from transformers.trainer_pt_utils import LengthGroupedSampler, get_length_grouped_indices

from bioner_grid import errors, preempt
from bioner_grid.align import Window, by_length, predictions_to_tags
from bioner_grid.heads import head_of
from bioner_grid.runtime import pick_precision

log = logging.getLogger(__name__)


class EpochSeededLengthGroupedSampler(Sampler):
    """Length-grouped batches whose shuffle depends on (seed, epoch) only.

    transformers' ``LengthGroupedSampler`` draws from the global torch RNG when an epoch starts. A
    run resumed from a checkpoint in epoch k > 0 reaches that point with the RNG in another state
    than the uninterrupted run had (it skips the earlier epochs), so it would train on other
    batches and end elsewhere. Seeding each epoch's shuffle from ``seed + epoch`` (the Trainer
    calls ``set_epoch``) makes a requeued job finish exactly as an uninterrupted one."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int):
        self.lengths, self.batch_size, self.seed, self.epoch = lengths, batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(get_length_grouped_indices(self.lengths, self.batch_size, generator=generator))


class WeightedLossTrainer(Trainer):
    """Trainer whose loss is the head's: ``CrossEntropyLoss(weight=class_weights)`` over the
    labelled sub-tokens for softmax, the path likelihood for a CRF (``heads``)."""

    # Our loss is a per-batch (weighted) mean: the Trainer divides it by the accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(self, *args, class_weights: list[float] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.class_weights = None if class_weights is None else torch.tensor(class_weights, dtype=torch.float32)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = head_of(model).loss(model, inputs, self.class_weights)
        return (loss, outputs) if return_outputs else loss

    def _get_train_sampler(self, train_dataset=None):
        sampler = super()._get_train_sampler(train_dataset)
        if isinstance(sampler, LengthGroupedSampler):
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            return EpochSeededLengthGroupedSampler(sampler.lengths, sampler.batch_size, seed)
        return sampler

    def _save_checkpoint(self, model, trial):
        """The Trainer's checkpoint, or on a full disk or quota (ENOSPC, EDQUOT: a shared file
        system's usual fault) an ``OSError`` naming the checkpoint folder, with the half-written folder
        removed: the Trainer writes ``trainer_state.json`` last and deletes older checkpoints only
        after a save succeeded, so the previous checkpoint stays complete and the run resumes from it."""
        folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
        existed = folder.exists()
        try:
            super()._save_checkpoint(model, trial)
        except Exception as e:
            if not errors.disk_full(e):
                raise
            if not existed:
                shutil.rmtree(folder, ignore_errors=True)
            quota = getattr(e, "errno", None) == errno.EDQUOT or "Disk quota exceeded" in str(e)
            earlier = sorted((p for p in folder.parent.glob("checkpoint-*") if (p / "trainer_state.json").is_file()),
                             key=lambda p: int(p.name.rsplit("-", 1)[1]))
            kept = f"{earlier[-1].name} is kept" if earlier else "no earlier checkpoint"
            raise OSError(errno.EDQUOT if quota else errno.ENOSPC,
                          f"{'disk quota exceeded' if quota else 'no space left on device'} while writing this checkpoint "
                          f"({errors.one_line(e)}); removed it, {kept}", str(folder)) from None

    def _get_eval_sampler(self, eval_dataset):
        # Predictions must come back in dataset order to be stitched into sentences; the Trainer
        # would length-group them. Evaluation sets are sorted by length beforehand instead.
        return SequentialSampler(eval_dataset)


class Clock(TrainerCallback):
    """This attempt's training time split: seconds in optimiser steps (forward, backward, update)
    and in dev evaluations, and how many evaluations; the rest is what the Trainer does between
    (checkpoints, setup). Plan's estimates scale the steps with the training words and the rest
    with the evaluations (``bioner_grid.estimate``)."""

    def __init__(self):
        self.step_seconds, self.eval_seconds, self.evaluations, self._started = 0.0, 0.0, 0, None

    def on_step_begin(self, args, state, control, **kwargs):
        self._started = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        if self._started is not None:
            self.step_seconds += time.perf_counter() - self._started
            self._started = None

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.eval_seconds += float((metrics or {}).get("eval_runtime", 0.0))
        self.evaluations += 1


def clock(trainer) -> Clock:
    """The ``Clock`` of a trainer built by ``train``."""
    return next(c for c in trainer.callback_handler.callbacks if isinstance(c, Clock))


class EpochLog(TrainerCallback):
    """Hands the train loss and dev scores of every logging/evaluation point (each epoch, or every
    ``train.checkpoint_steps`` steps) to ``sink(metrics, global step)``."""

    def __init__(self, sink):
        self.sink = sink

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        step = int(state.global_step)
        picked = {}
        if "loss" in logs:
            picked["train_loss"] = logs["loss"]
        for key in ("eval_f1", "eval_strict_f1", "eval_loss", "eval_pred_entities"):
            if key in logs:
                picked[key.replace("eval_", "dev_epoch_")] = logs[key]
        if picked:
            self.sink(picked, step)


def on_terminal() -> bool:
    """Whether output goes to a terminal (progress bars) rather than a file (a SLURM log: plain lines)."""
    return sys.stdout.isatty()


def _duration(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


class TerminalProgress(TrainerCallback):
    """What a researcher watches: on a terminal a progress bar per epoch; in a log file (no TTY) a
    plain line every ``period`` seconds (no carriage returns); and one line per evaluation,
    ``epoch 2/5  loss 0.108  dev strict F1 73.9%  P 69.9%  R 78.4%``. Replaces the Trainer's own
    bar and its printed dicts."""

    def __init__(self, tty: bool | None = None, period: float = 30.0):
        self.tty = on_terminal() if tty is None else tty
        self.period, self.bar, self.loss = period, None, None

    def _epochs(self, state) -> int:
        return max(1, math.ceil(state.num_train_epochs or 1))

    def _steps_per_epoch(self, state) -> int:
        return max(1, math.ceil(state.max_steps / self._epochs(state)))

    def _write(self, line: str) -> None:
        if self.bar is not None:
            from tqdm.auto import tqdm

            with tqdm.external_write_mode():
                log.info(line)
        else:
            log.info(line)

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = self.last = time.monotonic()
        self.first_step = state.global_step  # > 0 when resumed from a checkpoint

    def on_epoch_begin(self, args, state, control, **kwargs):
        if self.tty:
            from tqdm.auto import tqdm

            per_epoch = self._steps_per_epoch(state)
            epoch = min(state.global_step // per_epoch + 1, self._epochs(state))
            done = state.global_step - (epoch - 1) * per_epoch
            self.bar = tqdm(total=min(per_epoch, state.max_steps - (epoch - 1) * per_epoch), initial=done,
                            desc=f"epoch {epoch}/{self._epochs(state)}", unit="step", dynamic_ncols=True, leave=True)

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(1)
            return
        now = time.monotonic()
        if now - self.last >= self.period:
            self.last = now
            done = state.global_step - self.first_step
            eta = (now - self.started) / done * (state.max_steps - state.global_step) if done else 0
            log.info("epoch %.2f/%d  step %d/%d  elapsed %s  eta %s", state.epoch or 0, self._epochs(state),
                     state.global_step, state.max_steps, _duration(now - self.started), _duration(eta))

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def on_train_end(self, args, state, control, **kwargs):
        self.on_epoch_end(args, state, control)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.loss = float(logs["loss"])

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if metrics is None or "eval_strict_f1" not in metrics:
            return
        epoch = state.epoch or 0
        shown = f"{epoch:.0f}" if abs(epoch - round(epoch)) < 1e-6 else f"{epoch:.2f}"
        loss = "" if self.loss is None else f"  loss {self.loss:.3f}"
        self._write(f"epoch {shown}/{self._epochs(state)}{loss}  dev strict F1 {100 * metrics['eval_strict_f1']:.1f}%  "
                    f"P {100 * metrics.get('eval_strict_precision', 0):.1f}%  R {100 * metrics.get('eval_strict_recall', 0):.1f}%")


def argmax_logits(logits, labels):
    """Keep only label ids, not full logits, while evaluating."""
    return logits.argmax(dim=-1)


def predicted_entities(pred: list[list[str]]) -> int:
    """How many entities the tags hold: each ``B-X``, and each ``I-X`` that does not continue an entity
    of its type (conlleval's reading, as seqeval's default mode); AIONER's ``O-Task`` is O."""
    n, prev = 0, "O"
    for sent in pred:
        prev = "O"
        for tag in sent:
            if tag[0] == "B" or tag[0] == "I" and (prev[0] == "O" or prev[2:] != tag[2:]):
                n += 1
            prev = tag
    return n


def make_compute_metrics(windows: list[Window], gold: list[list[str]], id2label: dict[int, str], score):
    """Entity-level scores of the dev set (``score(gold, pred)``: ``scoring.score``'s seqeval modes),
    with windows stitched back into whole sentences."""

    def compute(eval_pred):
        pred = predictions_to_tags(windows, eval_pred.predictions, id2label, len(gold))
        s = score(gold, pred)
        return {"f1": s["default"]["f1"], "strict_f1": s["strict"]["f1"], "strict_precision": s["strict"]["precision"], "strict_recall": s["strict"]["recall"],
                "pred_entities": predicted_entities(pred)}  # the collapse sentinel's signal (bioner_grid.collapse)

    return compute


SELECT = ("best_dev", "last")


def training_arguments(t, output_dir: str, device: str) -> TrainingArguments:
    """TrainingArguments from the ``train`` config group. ``train.select``: ``best_dev`` ends with
    the checkpoint of the best dev strict F1 (``load_best_model_at_end``), ``last`` with the model of
    the final epoch (or step), as the WeLT authors' script scored it."""
    select = t.select
    if select not in SELECT:
        raise ValueError(f"train.select must be best_dev or last, got {select!r}")
    precision = pick_precision(t.precision, device)
    capped = t.max_steps and t.max_steps > 0
    # Evaluate, checkpoint and log every `checkpoint_steps` steps, else once per epoch (or at max_steps).
    every = int(t.checkpoint_steps) if t.checkpoint_steps else (int(t.max_steps) if capped else None)
    strategy = "steps" if every else "epoch"
    return TrainingArguments(
        output_dir=output_dir,
        learning_rate=float(t.lr),
        per_device_train_batch_size=int(t.batch_size),
        per_device_eval_batch_size=int(t.eval_batch_size),
        gradient_accumulation_steps=int(t.grad_accum),
        num_train_epochs=float(t.epochs),
        max_steps=int(t.max_steps) if capped else -1,
        warmup_steps=float(t.warmup_ratio),
        weight_decay=float(t.weight_decay),
        seed=int(t.seed),
        data_seed=int(t.seed),
        eval_strategy=strategy,
        save_strategy=strategy,
        logging_strategy=strategy,
        eval_steps=every,
        save_steps=every,
        logging_steps=every,
        load_best_model_at_end=select == "best_dev",
        # tracked for best_dev and early stopping only: the Trainer keeps the best checkpoint it tracks
        metric_for_best_model="strict_f1" if select == "best_dev" or t.patience else None,
        greater_is_better=True,
        save_total_limit=1,
        # A resumed run continues early stopping's count of evaluations without improvement (saved
        # in the checkpoint's trainer_state.json): reset to 0 it would train for up to `patience`
        # more evaluations than the uninterrupted run did.
        restore_callback_states_from_checkpoint=True,
        train_sampling_strategy="group_by_length" if t.length_grouped else "random",
        use_cpu=device == "cpu",
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        report_to="none",
        disable_tqdm=not on_terminal(),  # TerminalProgress replaces the Trainer's bar and printed dicts either way
        dataloader_num_workers=0,
    )


def train(model, tokenizer, args, train_windows, dev_windows, dev_gold, id2label, class_weights, patience, sink,
          resume_from: str | None = None, callbacks: tuple[TrainerCallback, ...] = (), *, score):
    """Fine-tune ``model``; returns the Trainer holding the model ``args`` select (best dev strict F1
    or the last). ``score(gold, pred)`` scores the dev set at each evaluation (``scoring.score``);
    ``callbacks``: more Trainer callbacks (a test stops a run right after a checkpoint)."""
    dev_windows = by_length(dev_windows)
    callbacks = [EpochLog(sink), Clock(), *callbacks]
    if preempt.installed():  # a submitit job: on the time-limit signal, finish the step, checkpoint, requeue
        callbacks.append(preempt.StopAtSignal())
    if patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=int(patience)))
    trainer = WeightedLossTrainer(
        model=model,
        args=args,
        train_dataset=[w.features() for w in train_windows],
        eval_dataset=[w.features() for w in dev_windows],
        data_collator=DataCollatorForTokenClassification(tokenizer),
        processing_class=tokenizer,
        compute_metrics=make_compute_metrics(dev_windows, dev_gold, id2label, score),
        preprocess_logits_for_metrics=argmax_logits,
        callbacks=callbacks,
        class_weights=class_weights,
    )
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(TerminalProgress())
    if not on_terminal():  # no tqdm carriage returns in log files (saving model shards)
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    finished = schedule_done(resume_from)
    if finished is None:
        trainer.train(resume_from_checkpoint=resume_from)
    else:
        restore_finished(trainer, resume_from, finished)
    preempt.requeue_if_signalled()
    return trainer


def schedule_done(checkpoint: str | None) -> TrainerState | None:
    """The trainer state saved in ``checkpoint`` when its schedule had run to the end (global step
    at max steps: a signal during the last step, or a requeue after training), else None."""
    if checkpoint is None:
        return None
    state = TrainerState.load_from_json(str(Path(checkpoint) / TRAINER_STATE_NAME))
    return state if state.max_steps > 0 and state.global_step >= state.max_steps else None


def restore_finished(trainer, checkpoint: str, state: TrainerState) -> None:
    """Take up a run whose checkpoint ends its schedule without training on: the model of that
    checkpoint, then the best one where ``train.select`` asks for it, as the Trainer's own end of
    training does. Written by hand because ``Trainer.train`` resumed from such a checkpoint runs
    one step more when max_steps is not a whole number of epochs (it re-enters the last, partial
    epoch and counts steps only after one; transformers 5.24), so the result would differ from
    the uninterrupted run's."""
    log.info("checkpoint %s ends the schedule (step %d of %d): not training further", checkpoint,
             state.global_step, state.max_steps)
    trainer._load_from_checkpoint(checkpoint)
    trainer.state = state
    if trainer.args.load_best_model_at_end and state.best_model_checkpoint is not None:
        trainer._load_best_model()


def predict(trainer, windows: list[Window], id2label: dict[int, str], n_sentences: int) -> list[list[str]]:
    """Predicted tags for every word of every sentence."""
    windows = by_length(windows)
    compute_metrics, trainer.compute_metrics = trainer.compute_metrics, None  # those score the dev set
    try:
        out = trainer.predict([w.features() for w in windows])
    finally:
        trainer.compute_metrics = compute_metrics
    ids = np.asarray(out.predictions)
    if ids.ndim == 3:  # full logits (a Trainer without argmax_logits)
        ids = ids.argmax(axis=-1)
    return predictions_to_tags(windows, ids, id2label, n_sentences)
