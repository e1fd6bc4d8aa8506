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
    assert reason and "no entity predicted on dev in 2 evaluation(s)" in reason and "training loss" in reason
    assert "(0.3100 -> 0.3050)" in reason
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


def test_the_dev_loss_decides_where_it_is_logged():
    # MiniLM, NCBI-disease (240 sentences), lr 5e-3, batch 16: it never predicts an entity; its mean
    # training loss keeps drifting down (0.6726 -> 0.3796, the all-O model growing surer) while its
    # dev loss is flat (0.3521 -> 0.3645): collapsed at the second evaluation.
    measured = [Evaluation(0.6726, 0, 0.3521), Evaluation(0.3796, 0, 0.3645)]
    reason = collapse_reason(measured, 2)
    assert reason and "the dev loss fell by less than 5%" in reason and "(0.3521 -> 0.3645)" in reason
    assert collapse_reason([Evaluation(e.loss, e.entities) for e in measured], 2) is None  # the training loss would spare it


def test_a_measured_slow_start_is_never_stopped():
    # MiniLM, NCBI-disease (240 sentences), lr 5e-5: its first entities (6) in epoch 3, dev F1 12.8 in epoch 4
    measured = [Evaluation(0.8239, 0, 0.3278), Evaluation(0.3247, 0, 0.2508), Evaluation(0.2165, 6, 0.2068),
                Evaluation(0.1608, 57, 0.1823), Evaluation(0.1433, 117, 0.1682)]
    assert all(collapse_reason(measured[:i], 2) is None for i in range(1, 6))
    # lr 3e-5: no entity in 5 epochs, but its dev loss never stops falling
    slower = [Evaluation(0.9373, 0, 0.5303), Evaluation(0.4107, 0, 0.2861), Evaluation(0.2594, 0, 0.2423),
              Evaluation(0.2086, 0, 0.2227), Evaluation(0.1968, 0, 0.2168)]
    assert all(collapse_reason(slower[:i], 2) is None for i in range(1, 6))
    assert collapse_reason(slower[:1], 1) is not None  # collapse_after=1 would stop it at once


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
    assert row["tags.mlflow.note.content"].startswith(f"**Collapsed** at epoch {row['tags.collapsed_at_epoch']} (")


def test_the_report_shows_collapsed_cells_as_collapsed(tmp_path):
    from mlflow import MlflowClient

    from bioner_grid import report
    from bioner_grid.store import metric_name

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    exp = client.create_experiment("grid", artifact_location=(tmp_path / "art").as_uri())

    def run(scheme, seed, f1, collapsed=False):
        tags = {"model": "minilm", "dataset": "ncbi_disease", "scheme": scheme, "lr": "0.001", "batch_size": "16",
                "seed": str(seed), **({"collapsed": "true"} if collapsed else {})}
        r = client.create_run(exp, tags=tags)
        for k in ("test_strict_f1", "test_strict_precision", "test_strict_recall"):
            client.log_metric(r.info.run_id, metric_name(k), f1)
        client.set_terminated(r.info.run_id, "FINISHED")

    for seed in (1, 2):
        run("vanilla", seed, 0.0, collapsed=True)  # every seed collapsed: "collapsed", not 0.00
        run("welt", seed, 0.70 + seed / 100, collapsed=False)
    run("ins", 1, 0.0, collapsed=True)
    run("ins", 2, 0.60)  # one seed of two collapsed: the mean over both, and the count
    df = report.load_runs(uri, ["grid"])
    overview = report.overview_table(df)
    cells = {h: c for h, c in zip(overview.header, overview.rows[0])}
    assert cells["Vanilla"].text == "collapsed" and cells["Vanilla"].mark is None
    assert cells["WeLT"].text == "71.50 ± 0.71 (n=2)" and cells["WeLT"].mark == "best"
    assert cells["INS"].text == "30.00 ± 42.43 (n=2) (1 collapsed)"
    f_row = next(r for r in report.welt_table(df, "ncbi_disease").rows if r[1].text == "F")
    assert [c.text for c in f_row[2:]] == ["30.00 ± 42.43 (n=2) (1 collapsed)", "collapsed", "71.50 ± 0.71 (n=2)"]


def test_collapse_after_must_be_positive_and_the_settings_keep_run_keys(data_root):
    from bioner_grid import identity, spec
    from bioner_grid.config import compose

    root = f"data.root={data_root}"
    assert "train.collapse_after=0: must be a positive integer (evaluations)" in spec.problems(
        compose([root, "train.collapse_after=0"]))
    # operational: a run key (and so every run recorded before the sentinel) is the same with it on or off
    keys = {identity.run_key(compose([root, *o])) for o in ([], ["train.stop_collapsed=false"], ["train.collapse_after=5"])}
    assert len(keys) == 1
