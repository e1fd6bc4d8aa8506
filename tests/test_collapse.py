"""The collapse sentinel (``train.stop_collapsed``, bioner_grid/collapse.py): the rule as a pure
function over a run's evaluations, the Trainer's log read into that history, the dev scorer's
count of predicted entities, and one tiny run that collapses, stops early and is recorded so."""

from __future__ import annotations

import math

import pytest

from bioner_grid import collapse
from bioner_grid.collapse import Evaluation, collapse_reason, history_of
from bioner_grid.train import predicted_entities
from conftest import SLICE, run_inproc, runs


def h(*points):
    """A history from (training loss, entities predicted on dev) pairs."""
    return [Evaluation(loss, n) for loss, n in points]


def test_too_few_evaluations_never_collapse():
    assert collapse_reason([], 2) is None
    assert collapse_reason(h((0.30, 0)), 2) is None


def test_no_entity_and_a_flat_loss_is_a_collapse():
    reason = collapse_reason(h((0.31, 0), (0.305, 0)), 2)
    assert reason and "no entity predicted on dev in 2 evaluation(s)" in reason and "train 0.3100 -> 0.3050" in reason
    # the reference is the evaluation before the window: from 0.9 the loss is still falling
    assert collapse_reason(h((0.9, 3), (0.31, 0), (0.305, 0)), 2) is None
    assert collapse_reason(h((0.31, 3), (0.31, 0), (0.305, 0)), 2) is not None


def test_a_slow_start_is_spared_while_its_loss_falls():
    # no entity yet, but the loss fell by far more than MIN_DROP: still learning
    assert collapse_reason(h((0.60, 0), (0.40, 0)), 2) is None
    assert collapse_reason(h((0.60, 0), (0.40, 0), (0.30, 0)), 2) is None
    # exactly at the threshold counts as falling; just above it does not
    assert collapse_reason(h((1.0, 0), (1.0 - collapse.MIN_DROP, 0)), 2) is None
    assert collapse_reason(h((1.0, 0), (1.0 - collapse.MIN_DROP + 1e-3, 0)), 2) is not None


def test_a_falling_dev_loss_spares_a_run_whose_training_loss_is_flat():
    # MiniLM, NCBI-disease (240 sentences), lr 1e-3, batch 16: epochs 1-2 predict nothing and the mean
    # training loss is flat (0.5032 -> 0.5002), but the dev loss falls 28%; epoch 3 finds entities
    # (dev strict F1 9.6, then 26.5). Measured: see bioner_grid/collapse.py.
    measured = [Evaluation(0.5032, 0, 0.3388), Evaluation(0.5002, 0, 0.2443)]
    assert collapse_reason(measured, 2) is None
    assert collapse_reason([Evaluation(e.loss, e.entities) for e in measured], 2) is not None  # train loss alone: stopped


def test_any_entity_in_the_window_spares_the_run():
    assert collapse_reason(h((0.30, 0), (0.30, 1)), 2) is None
    assert collapse_reason(h((0.30, 1), (0.30, 0)), 2) is None
    assert collapse_reason(h((0.30, 1), (0.30, 0), (0.30, 0)), 2) is not None  # the entity is before the window


def test_collapse_after_sets_the_window():
    flat = h((0.30, 0), (0.30, 0), (0.30, 0))
    assert collapse_reason(flat[:2], 3) is None and collapse_reason(flat, 3) is not None
    assert collapse_reason(flat[:1], 1) is not None  # one evaluation, compared with itself: no fall


@pytest.mark.parametrize("loss, dev_loss", [(math.nan, 0.3), (math.inf, None), (0.3, math.nan)])
def test_a_loss_that_is_not_finite_collapses_at_once(loss, dev_loss):
    reason = collapse_reason([Evaluation(loss, 5, dev_loss)], 2)
    assert reason and reason.startswith("the loss is not finite")


def test_history_is_read_from_the_trainers_log():
    log = [{"loss": 0.9, "step": 6}, {"eval_loss": 0.5, "eval_pred_entities": 0, "step": 6},
           {"loss": 0.4, "step": 12}, {"eval_loss": 0.45, "eval_pred_entities": 3, "step": 12},
           {"train_runtime": 10.0, "step": 12}]
    assert history_of(log) == [Evaluation(0.9, 0, 0.5), Evaluation(0.4, 3, 0.45)]


def test_predicted_entities_are_counted_as_conlleval_reads_them():
    assert predicted_entities([["O", "B-Disease", "I-Disease", "O"], ["I-Disease", "I-Disease", "B-Chemical"]]) == 3
    assert predicted_entities([["O-Disease", "B-Gene", "I-Chemical", "O-ALL"]]) == 2  # a type change starts one
    assert predicted_entities([["O", "O"], []]) == 0


def test_a_huge_learning_rate_collapses_stops_early_and_is_recorded(tmp_path, data_root, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    result = run_inproc(tmp_path, data_root, *SLICE, "train.lr=1e30", "train.epochs=4", "train.patience=null",
                        "train.save_model=false", f"data.cache={tmp_path}/cache")
    row = runs(tmp_path).iloc[0]
    assert row["status"] == "FINISHED" and row["tags.collapsed"] == "true"
    assert "not finite" in row["tags.collapse_reason"] and result["collapsed"] == row["tags.collapse_reason"]
    assert float(row["tags.collapsed_at_epoch"]) == row["metrics.train_epochs"] < 4  # stopped, not trained to the end
    assert any("COLLAPSED at epoch" in r.getMessage() for r in caplog.records)
