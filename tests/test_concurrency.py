"""Jobs that meet in one store: twins started at the same moment, 8 first writers of a new store,
and a run interrupted twice (kill -9) that still ends as an uninterrupted one."""

import logging
import signal
import sqlite3
import subprocess
import sys
import time

import mlflow
from mlflow import MlflowClient

from conftest import SLICE, run_inproc, runs

TINY = ["model=tiny_bert", "data.max_train_sentences=48", "data.max_eval_sentences=16", "train.max_steps=3",
        "train.batch_size=16", "train.lr=3e-4"]


def start(tmp_path, data_root, *overrides, name="run"):
    """``python -m bioner_grid`` as a background process, its output in ``<name>.log``."""
    args = [sys.executable, "-m", "bioner_grid", f"data.root={data_root}", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
            f"tracking.artifact_location={tmp_path}/artifacts", f"hydra.run.dir={tmp_path}/{name}", *overrides]
    log = open(tmp_path / f"{name}.log", "w")
    return subprocess.Popen(args, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)


def test_the_same_command_twice_at_the_same_moment_trains_once(tmp_path, data_root, caplog, monkeypatch):
    jobs = [start(tmp_path, data_root, *TINY, name=f"twin{i}") for i in (1, 2)]
    assert [j.wait(timeout=600) for j in jobs] == [0, 0]
    logs = [(tmp_path / f"twin{i}.log").read_text() for i in (1, 2)]
    df = runs(tmp_path)
    assert len(df) == 1 and df.iloc[0]["status"] == "FINISHED"  # one run, trained once
    assert sum("is in flight as MLflow run" in log for log in logs) == 1, logs
    assert sum((tmp_path / f"twin{i}" / "result.json").exists() for i in (1, 2)) == 1
    history = MlflowClient().get_metric_history(df.iloc[0]["run_id"], "train/loss")
    assert [m.step for m in history] == [3]  # every metric logged once
    # and a relaunch while nothing runs any more skips it as FINISHED (in this process: no process meets another)
    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO, logger="bioner_grid")
    assert run_inproc(tmp_path, data_root, *TINY, out=tmp_path / "again")["skipped"]
    assert "is FINISHED as MLflow run" in caplog.text


def test_eight_jobs_on_a_store_that_does_not_exist_yet(tmp_path, data_root):
    jobs = [start(tmp_path, data_root, *TINY, f"train.seed={seed}", name=f"seed{seed}") for seed in range(1, 9)]
    codes = [j.wait(timeout=900) for j in jobs]
    assert codes == [0] * 8, [(tmp_path / f"seed{s}.log").read_text()[-2000:] for s, c in zip(range(1, 9), codes) if c]
    df = runs(tmp_path)
    assert sorted(df["tags.seed"].astype(int)) == list(range(1, 9)) and set(df["status"]) == {"FINISHED"}
    assert df["metrics.test_strict_f1"].notna().all() and df["metrics.train_loss"].notna().all()
    with sqlite3.connect(tmp_path / "mlflow.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def wait_for(condition, timeout=300, what=""):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_run_killed_twice_resumes_from_the_first_attempts_checkpoint(tmp_path, data_root, caplog, monkeypatch):
    """kill -9 after a checkpoint; kill -9 the resumed attempt before its own first checkpoint; the
    third attempt still finds the first attempt's checkpoint, and ends as an uninterrupted run."""
    args = [*SLICE, "model=minilm", "train.checkpoint_steps=4"]
    reference = tmp_path / "reference"
    reference.mkdir()
    monkeypatch.chdir(reference)  # the uninterrupted reference and the last attempt in this process: they are not killed
    run_inproc(reference, data_root, *args, out=reference / "run")
    expected = runs(reference).iloc[0]

    first = start(tmp_path, data_root, *args, name="attempt1")
    wait_for(lambda: (tmp_path / "attempt1/checkpoints/checkpoint-4/trainer_state.json").exists() or first.poll() is not None,
             what="the first checkpoint")
    first.send_signal(signal.SIGKILL)
    first.wait()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    (run_id,) = runs(tmp_path)["run_id"]
    assert MlflowClient().get_run(run_id).info.status == "RUNNING"  # killed outright: nobody ended it

    second = start(tmp_path, data_root, *args, name="attempt2")
    tags = lambda: MlflowClient().get_run(run_id).data.tags  # noqa: E731
    wait_for(lambda: "attempt2" in tags().get("ops.checkpoint_dirs", "") or second.poll() is not None,
             what="the second attempt to take over the run")
    second.send_signal(signal.SIGKILL)
    second.wait()
    assert "resuming MLflow run" in (tmp_path / "attempt2.log").read_text()
    assert not list((tmp_path / "attempt2" / "checkpoints").glob("checkpoint-*/trainer_state.json"))  # killed before its own

    monkeypatch.chdir(tmp_path)
    caplog.set_level(logging.INFO, logger="bioner_grid")
    run_inproc(tmp_path, data_root, *args, out=tmp_path / "attempt3")
    assert f"resuming MLflow run {run_id} from {tmp_path}/attempt1/checkpoints/checkpoint-" in caplog.text
    df = runs(tmp_path)
    assert len(df) == 1 and df.iloc[0]["status"] == "FINISHED" and df.iloc[0]["metrics.resumed"] == 1.0
    for m in ("test_strict_f1", "test_f1", "dev_strict_f1", "test_fair_f1", "train_steps"):
        assert df.iloc[0][f"metrics.{m}"] == expected[f"metrics.{m}"], m
    for attempt in ("attempt1", "attempt2", "attempt3"):  # every attempt's checkpoints cleaned up
        assert not (tmp_path / attempt / "checkpoints").exists(), attempt
    print(f"killed twice, resumed: test strict F1 {df.iloc[0]['metrics.test_strict_f1']:.4f} "
          f"= uninterrupted {expected['metrics.test_strict_f1']:.4f}")
