"""The command line end to end: tiny_bert on a slice of real NCBI into a temporary MLflow store."""

import json
import logging
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from bioner_grid.errors import JobFailed
from conftest import ROOT, SLICE, app_inproc, cli, run_inproc, runs


@pytest.fixture(scope="module")
def single_run(tmp_path_factory, data_root):
    tmp = tmp_path_factory.mktemp("single")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        run_inproc(tmp, data_root, *SLICE, out=tmp / "run")
    return tmp


def test_run_lands_in_mlflow_with_params_metrics_tags(single_run):
    df = runs(single_run)
    assert len(df) == 1
    row = df.iloc[0]
    assert row["status"] == "FINISHED"
    for tag, value in {"model": "tiny_bert", "dataset": "ncbi_disease", "scheme": "welt", "lr": "0.0003",
                       "batch_size": "16", "seed": "42", "weights_degenerate": "false"}.items():
        assert row[f"tags.{tag}"] == value
    assert len(row["tags.git_commit"]) in (7, 40) or row["tags.git_commit"] == "unknown"
    assert row["tags.git_dirty"] in ("true", "false", "unknown")
    # operational tags grouped apart under ops.; no empty slurm_job_id outside SLURM
    assert row["tags.ops.host"] and row["tags.ops.pid"] and float(row["tags.ops.heartbeat"]) > 0
    assert row["tags.ops.output_dir"] and row["tags.ops.checkpoint_dirs"].endswith("checkpoints")
    assert "tags.ops.slurm_job_id" not in row or pd.isna(row["tags.ops.slurm_job_id"])
    assert not {"tags.heartbeat", "tags.pid", "tags.host", "tags.hostname", "tags.output_dir"} & set(row.dropna().index)
    # what the run is, in one line, on top of its page in the UI, with its scores once finished
    assert row["tags.mlflow.note.content"] == (
        f"**tiny_bert** on **ncbi_disease**, scheme **welt**, lr 0.0003, batch 16, seed 42 · dev strict F1 "
        f"{100 * row['metrics.dev_strict_f1']:.1f} %, test strict F1 **{100 * row['metrics.test_strict_f1']:.1f}** %")
    # corpus figures are params (constant: no charts), read back as the data_* columns the report uses
    from bioner_grid.store import run_metrics

    assert row["params.corpus.train_sentences"] == "96" and "metrics.data/train_sentences" not in row
    assert run_metrics(MlflowClient().get_run(row["run_id"]))["data_train_sentences"] == 96
    assert row["params.train.lr"] == "0.0003" and row["params.model.family"] == "bert"
    w = {c: float(row[f"params.weight.{c}"]) for c in "OBI"}
    assert w["B"] > w["I"] > w["O"] and sum(w.values()) == pytest.approx(1.0, abs=1e-5)  # WeLT: softmax(1 - n/N)
    for m in ("test_f1", "test_precision", "test_recall", "test_strict_f1", "dev_strict_f1", "test_Disease_f1",
              "test_strict_Disease_f1", "train_seconds", "peak_rss_mb"):
        assert 0 <= row[f"metrics.{m}"] < float("inf"), m
    client = MlflowClient()
    run_id = row["run_id"]
    assert [m.step for m in client.get_metric_history(run_id, "train/loss")] == [6, 12]  # 96 sentences / 16, 2 epochs
    assert len(client.get_metric_history(run_id, "dev/epoch_strict_f1")) == 2
    # In MLflow every metric is grouped by stage (the UI's sections); strict F1 is the plain name.
    logged = set(client.get_run(run_id).data.metrics)
    assert {"test/strict_f1", "test/default_f1", "dev/strict_f1", "test/fair_f1", "time/train_seconds",
            "memory/peak_rss_mb"} <= logged
    assert {m.split("/")[0] for m in logged} <= {"train", "dev", "test", "time", "memory", "system"}, logged
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"config.yaml", "class_weights.json", "predictions_dev.conll", "predictions_test.conll", "result.json",
            "error_analysis_dev.json", "error_analysis_test.json"} <= artifacts
    for m in ("fair_f1", "weighted_f1", "fair_FP", "fair_FN", "fair_LE", "fair_BE", "fair_BES", "fair_BEL", "fair_BEO", "fair_LBE"):
        assert row[f"metrics.dev_{m}"] >= 0 and row[f"metrics.test_{m}"] >= 0, m
    analysis = json.loads(Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="error_analysis_test.json")).read_text())
    assert set(analysis) == {"type1", "type2", "type3"} and all(len(v["examples"]) <= 20 for v in analysis.values())
    weights = json.loads(Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="class_weights.json")).read_text())
    assert weights["labels"] == ["O", "B-Disease", "I-Disease"] and weights["counts"]["O"] > weights["counts"]["B"]


def test_result_json_and_predictions_file(single_run):
    result = json.loads((single_run / "run" / "result.json").read_text())
    row = runs(single_run).iloc[0]
    assert result["run_id"] == row["run_id"]
    assert result["metrics"]["test_strict_f1"] == pytest.approx(row["metrics.test_strict_f1"])
    assert (result["model"], result["dataset"], result["scheme"]) == ("tiny_bert", "ncbi_disease", "welt")
    lines = (single_run / "run" / "predictions_test.conll").read_text().split("\n")
    rows = [line.split("\t") for line in lines if line]
    assert len(rows) == sum(1 for line in (ROOT.parent / "shared/datasets/conll/NCBI-disease/test.tsv").read_text().split("\n\n")[:40] for t in line.split("\n") if t)
    assert all(len(r) == 3 and r[2] in ("O", "B-Disease", "I-Disease") for r in rows)


def test_faireval_traditional_counts_agree_with_seqeval_strict_on_real_predictions(single_run):
    from bioner_grid.evaluate import load_pair
    from bioner_grid.faireval import evaluate, spans_from_bio

    _, gold, pred = load_pair(single_run / "run" / "predictions_test.conll")
    counts = evaluate([spans_from_bio(t) for t in gold], [spans_from_bio(t) for t in pred]).traditional
    row = runs(single_run).iloc[0]
    assert counts["TP"] > 0 and counts["FP"] > 0  # the tiny model does predict entities, right and wrong
    assert counts["TP"] / (counts["TP"] + counts["FP"]) == pytest.approx(row["metrics.test_strict_precision"])
    assert counts["TP"] / (counts["TP"] + counts["FN"]) == pytest.approx(row["metrics.test_strict_recall"])
    assert row["metrics.test_fair_TP"] == counts["TP"]


def test_finished_configuration_is_skipped_and_force_reruns_it_identically(single_run, data_root, caplog, monkeypatch):
    monkeypatch.chdir(single_run)
    caplog.set_level(logging.INFO, logger="bioner_grid")
    assert run_inproc(single_run, data_root, *SLICE, out=single_run / "again")["skipped"]
    assert "is FINISHED as MLflow run" in caplog.text and "skipping" in caplog.text
    assert len(runs(single_run)) == 1 and not (single_run / "again" / "result.json").exists()

    run_inproc(single_run, data_root, *SLICE, "train.force=true", out=single_run / "run2")
    df = runs(single_run)
    assert len(df) == 2  # the first run is kept, not overwritten
    assert df.iloc[0]["tags.run_key"] == df.iloc[1]["tags.run_key"]
    metrics = [c for c in df.columns if c.startswith("metrics.") and "seconds" not in c and "rss" not in c
               and not c.startswith("metrics.system/")]  # time and the machine's load are no result
    assert df.iloc[0][metrics].tolist() == df.iloc[1][metrics].tolist()  # same command, same metrics


def test_last_complete_checkpoint_passes_over_ones_cut_short(tmp_path):
    from bioner_grid.tracking import last_complete_checkpoint

    assert last_complete_checkpoint(tmp_path / "none") is None
    for step, state in ((5, "{}"), (10, '{"global_step": 10}'), (20, None), (30, '{"global_st')):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "model.safetensors").write_bytes(b"weights")
        if state is not None:
            (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(state)
    (tmp_path / "checkpoint-old").mkdir()
    # 30: state cut short, 20: no state yet (killed while saving); 10 is the newest whole one
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")


def test_killed_run_resumes_from_its_last_whole_checkpoint_with_the_same_result(tmp_path, data_root, caplog, monkeypatch):
    """A job killed while saving a checkpoint (SLURM time limit, preemption) leaves a folder cut
    short; the relaunch passes over it, continues the same MLflow run and ends as it would have."""
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO, logger="bioner_grid")
    args = [*SLICE, "train.checkpoint_steps=4", "train.keep_checkpoints=true"]
    run_inproc(tmp_path, data_root, *args, out=tmp_path / "run")
    first = runs(tmp_path).iloc[0]
    MlflowClient().set_terminated(first["run_id"], "KILLED")  # as if the job had died before finishing
    cut_short = tmp_path / "run" / "checkpoints" / "checkpoint-99"
    cut_short.mkdir()
    (cut_short / "model.safetensors").write_bytes(b"half a model")

    caplog.clear()
    run_inproc(tmp_path, data_root, *args, out=tmp_path / "relaunch")
    log = caplog.text
    assert "checkpoint-99 was not written to the end" in log and "resuming MLflow run" in log
    df = runs(tmp_path)
    assert len(df) == 1 and df.iloc[0]["run_id"] == first["run_id"]  # one run per key, continued
    row = df.iloc[0]
    assert row["status"] == "FINISHED" and row["metrics.resumed"] == 1.0
    for m in ("test_strict_f1", "test_f1", "dev_strict_f1", "test_fair_f1"):
        assert row[f"metrics.{m}"] == first[f"metrics.{m}"], m


def test_run_stopped_before_its_first_checkpoint_starts_over_in_the_same_mlflow_run(tmp_path, data_root, caplog, monkeypatch):
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO, logger="bioner_grid")
    run_inproc(tmp_path, data_root, *SLICE, out=tmp_path / "run")
    first = runs(tmp_path).iloc[0]  # its checkpoints are deleted once it has finished
    MlflowClient().set_terminated(first["run_id"], "KILLED")  # as if preempted before the first checkpoint

    caplog.clear()
    run_inproc(tmp_path, data_root, *SLICE, out=tmp_path / "relaunch")
    assert f"continuing MLflow run {first['run_id']} from the start" in caplog.text
    df = runs(tmp_path)
    assert len(df) == 1 and df.iloc[0]["status"] == "FINISHED" and df.iloc[0]["metrics.resumed"] == 0.0
    assert df.iloc[0]["metrics.test_strict_f1"] == first["metrics.test_strict_f1"]

    # a FAILED run (an error, not a stop) is kept as it is; the relaunch records a new run
    MlflowClient().set_terminated(first["run_id"], "FAILED")
    run_inproc(tmp_path, data_root, *SLICE, out=tmp_path / "after_failure")
    assert sorted(runs(tmp_path)["status"]) == ["FAILED", "FINISHED"]


def test_bad_input_stops_before_anything_is_recorded(tmp_path, data_root, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "bad.tsv"
    bad.write_text("Aspirin\tO\ninduced\tB-Disease\nasthma\tX-Disease\n")
    with pytest.raises(JobFailed) as stopped:
        run_inproc(tmp_path, data_root, "model=tiny_bert", "dataset=conll_files", f"dataset.train={bad}", "dataset.split=0.8")
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: {bad}:3: tag 'X-Disease' is not IOB2 (expected O, B, I, B-<type> or I-<type>)"
    assert not (tmp_path / "mlflow.db").exists() or runs(tmp_path).empty


def test_missing_data_root_is_one_line(tmp_path):
    r = cli(tmp_path, tmp_path / "nowhere", "model=tiny_bert")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path}/nowhere:0: data root not found; pass data.root=PATH or set BIONER_DATA (default ../shared/datasets)")


def test_multirun_sweeps_schemes_and_flags_uniform_weights(tmp_path, data_root, monkeypatch, capsys):
    # the sweep in this process (Hydra's basic launcher runs its jobs in it; a real one: tests/test_cli.py)
    r = app_inproc(monkeypatch, capsys, tmp_path, "-m", f"data.root={data_root}", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
                   f"tracking.artifact_location={tmp_path}/artifacts", *SLICE, "train.epochs=1", "scheme=vanilla,ens_0.3",
                   f"hydra.sweep.dir={tmp_path}/sweep")
    assert r.returncode == 0, r.stderr[-3000:]
    df = runs(tmp_path).set_index("tags.scheme")
    assert sorted(df.index) == ["ens_0.3", "vanilla"]
    assert df.loc["ens_0.3", "tags.weights_degenerate"] == "true"
    assert df.loc["vanilla", "tags.weights_degenerate"] == "false"
    # uniform weights are vanilla cross-entropy: same loss up to float rounding
    assert df.loc["ens_0.3", "metrics.train_loss"] == pytest.approx(df.loc["vanilla", "metrics.train_loss"], rel=1e-4)
    assert len(list((tmp_path / "sweep").glob("*/result.json"))) == 2
