"""The store (bioner_grid.store): the pipeline run in-process against a real SQLite store in
tmp_path, a store locked or away mid-run, metric names MLflow refuses."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from bioner_grid.config import compose
from bioner_grid.errors import StoreError
from bioner_grid.store import RunStore, metric_name, safe_name, transient
from conftest import SLICE, free_port, start_server, stop_server

EXPERIMENT = "bioner-grid"


def overrides(tmp_path: Path, data_root, *more) -> list[str]:
    return [*SLICE, f"data.root={data_root}", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
            f"tracking.artifact_location={tmp_path}/artifacts", "tracking.system_metrics=false", *more]


def only_run(uri: str):
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    (run,) = client.search_runs([experiment.experiment_id])
    return client, run


def steps(client, run_id: str, name: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, name))


def test_a_run_in_process_lands_in_its_own_store_and_sets_no_global_uri(tmp_path, data_root):
    from bioner_grid import pipeline

    before = mlflow.get_tracking_uri()
    result = pipeline.run(compose(overrides(tmp_path, data_root)), tmp_path / "run")
    assert mlflow.get_tracking_uri() == before  # the store is explicit: nothing global changed
    client, run = only_run(f"sqlite:///{tmp_path}/mlflow.db")
    assert run.info.status == "FINISHED" and result["run_id"] == run.info.run_id
    assert steps(client, run.info.run_id, "train/loss") == [6, 12]  # 96 sentences / 16, 2 epochs
    assert steps(client, run.info.run_id, "dev/epoch_strict_f1") == [6, 12]
    assert {"test/strict_f1", "test/default_f1", "dev/strict_f1", "time/train_seconds", "memory/peak_rss_mb",
            "train/resumed"} <= set(run.data.metrics)
    assert not [m for m in run.data.metrics if m.startswith("data/")]  # corpus figures: params corpus.*
    assert run.data.params["corpus.train_sentences"] == "96" and int(run.data.params["corpus.test_n_B"]) > 0
    assert run.data.metrics["test/strict_f1"] == pytest.approx(result["metrics"]["test_strict_f1"])
    assert run.data.params["train.lr"] == "0.0003" and run.data.tags["run_key"] == result["run_key"]
    assert {"config.yaml", "class_weights.json", "predictions_test.conll", "result.json"} <= {
        a.path for a in client.list_artifacts(run.info.run_id)}
    assert [d.dataset.name for d in run.inputs.dataset_inputs] == ["ncbi_disease"] * 3
    # the same configuration again: FINISHED run key, skipped, nothing new recorded
    again = pipeline.run(compose(overrides(tmp_path, data_root)), tmp_path / "run2")
    assert again == {"skipped": True, "status": "FINISHED", "run_key": result["run_key"], "run_id": run.info.run_id}
    assert len(client.search_runs([run.info.experiment_id])) == 1


def hold_lock_when(db: Path, ready, seconds: float, events: dict) -> threading.Thread:
    """A thread that waits until ``ready()`` then holds an exclusive transaction on ``db`` for
    ``seconds``, or until ``events["stop"]`` is set (every other connection waits, then gets
    "database is locked"; MLflow waits 20 s, its ``PRAGMA busy_timeout``)."""
    events.setdefault("stop", threading.Event())

    def hold():
        while not ready():
            time.sleep(0.05)
        con = sqlite3.connect(db, timeout=60, isolation_level=None)
        con.execute("BEGIN EXCLUSIVE")
        events["locked"] = time.time()
        events["stop"].wait(seconds)
        events["released"] = time.time()
        con.execute("COMMIT")
        con.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    return thread


def running(db: Path) -> bool:
    """Whether the store holds a RUNNING run (read without MLflow: no schema is created)."""
    try:
        with sqlite3.connect(db, timeout=1) as con:
            return con.execute("SELECT count(*) FROM runs WHERE status = 'RUNNING'").fetchone()[0] > 0
    except sqlite3.Error:
        return False


def test_sqlite_locked_for_30_s_mid_run_ends_finished_with_every_step(tmp_path, data_root):
    """MLflow's own SQLite wait is 5 s; a writer holding the file for 30 s failed the run before."""
    from bioner_grid import pipeline

    events: dict = {}
    thread = hold_lock_when(tmp_path / "mlflow.db", lambda: running(tmp_path / "mlflow.db"), 30, events)
    result = pipeline.run(compose(overrides(tmp_path, data_root, "tracking.retry_s=120")), tmp_path / "run")
    thread.join()
    assert "released" in events
    client, run = only_run(f"sqlite:///{tmp_path}/mlflow.db")
    assert run.info.status == "FINISHED" and result["run_id"] == run.info.run_id
    assert steps(client, run.info.run_id, "train/loss") == [6, 12]
    assert steps(client, run.info.run_id, "dev/epoch_strict_f1") == [6, 12]
    assert run.data.metrics["test/strict_f1"] == pytest.approx(result["metrics"]["test_strict_f1"])
    assert {"config.yaml", "class_weights.json", "result.json"} <= {a.path for a in client.list_artifacts(run.info.run_id)}


def test_logging_a_metric_never_waits_for_a_locked_store(tmp_path):
    store = RunStore(f"sqlite:///{tmp_path}/mlflow.db", "buffer", retry_s=60)
    run = store.open_run(tags={"run_key": "k"})
    events: dict = {}
    thread = hold_lock_when(tmp_path / "mlflow.db", lambda: True, 8, events)
    while "locked" not in events:
        time.sleep(0.01)
    waits = []
    for step in range(50):
        started = time.monotonic()
        run.log_metrics({"train_loss": 1.0 / (step + 1)}, step=step)
        waits.append(time.monotonic() - started)
    assert "released" not in events and max(waits) < 0.05  # queued while the file is locked
    run.close("FINISHED")  # waits for the lock to go, then sends them all
    thread.join()
    client = MlflowClient(store.uri)
    assert client.get_run(run.run_id).info.status == "FINISHED"
    assert steps(client, run.run_id, "train/loss") == list(range(50))


def test_store_locked_past_retry_s_is_one_line_and_exit_1(tmp_path, data_root):
    db = tmp_path / "mlflow.db"
    events: dict = {}
    thread = hold_lock_when(db, lambda: running(db), 300, events)
    r = subprocess.run([sys.executable, "-m", "bioner_grid", *overrides(tmp_path, data_root, "tracking.retry_s=3"),
                        f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert "released" not in events  # it gave up while the store was still locked
    events["stop"].set()
    thread.join()
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    assert lines[-1].startswith(f"error: tracking store sqlite:///{db}: ") and "database is locked" in lines[-1]
    assert lines[-1].endswith("(still failing after 3 s of retries, tracking.retry_s)")
    # it could not be marked FAILED while the file was locked: RUNNING, its heartbeat stopped, so a
    # relaunch continues it once the heartbeat is stale (identity.decide)
    assert [r.info.status for r in MlflowClient(f"sqlite:///{db}").search_runs(["1"])] == ["RUNNING"]


def test_names_mlflow_refuses_are_made_safe_in_one_place():
    assert safe_name("Gene(Protein)") == "Gene_Protein_" and safe_name("a b/c-d.e_f") == "a b/c-d.e_f"
    assert metric_name("test_strict_Gene(Protein)_f1") == "test/strict_Gene_Protein__f1"
    assert metric_name("data_train_n_B-Gene(Protein)") == "data/train_n_B-Gene_Protein_"


def test_an_entity_type_mlflow_cannot_name_trains_to_finished(tmp_path):
    from bioner_grid import pipeline

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    sentence = "The\tO\nBRCA1\tB-Gene(Protein)\nprotein\tI-Gene(Protein)\nbinds\tO\nDNA\tB-Chemical\n.\tO\n\n"
    for split in ("train", "dev", "test"):
        (corpus / f"{split}.tsv").write_text(sentence * 8, encoding="utf-8")
    cfg = compose(overrides(tmp_path, corpus, "dataset=conll_files", "dataset.name=genes",
                            *[f"dataset.{s}={corpus}/{s}.tsv" for s in ("train", "dev", "test")], "train.epochs=1"))
    pipeline.run(cfg, tmp_path / "run")
    client, run = only_run(f"sqlite:///{tmp_path}/mlflow.db")
    assert run.info.status == "FINISHED"
    assert "test/strict_Gene_Protein__f1" in run.data.metrics and "test/strict_Chemical_f1" in run.data.metrics


def test_what_is_transient():
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, TEMPORARILY_UNAVAILABLE

    assert transient(MlflowException("(sqlite3.OperationalError) database is locked", TEMPORARILY_UNAVAILABLE))
    try:
        raise MlflowException("API request to http://h/api failed with exception x")
    except MlflowException as wrapped:
        try:
            raise wrapped from ConnectionRefusedError(111, "Connection refused")
        except MlflowException as e:
            assert transient(e)
    assert not transient(MlflowException("Invalid metric name", INVALID_PARAMETER_VALUE))


def test_a_server_that_never_answers_is_a_store_error_after_retry_s(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    store = RunStore(f"http://user:secret@127.0.0.1:{port}", "x", retry_s=2)
    started = time.monotonic()
    with pytest.raises(StoreError) as e:
        store.experiment_id()
    assert 2 <= time.monotonic() - started < 30
    assert str(e.value).startswith(f"tracking store http://127.0.0.1:{port}: ") and "secret" not in str(e.value)


@pytest.mark.server  # ~3.5 min on 2 CPUs: two server starts and a run
def test_a_tracking_server_restarted_mid_run_loses_nothing(tmp_path, data_root):
    """The server goes away once the run is RUNNING, for ~15 s, and comes back on the same port."""
    state, port = tmp_path / "server", free_port()
    state.mkdir()
    server = start_server(state, port)
    uri = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "bioner_grid", *SLICE, f"data.root={data_root}", "tracking=server",
            f"tracking.uri={uri}", "tracking.system_metrics=false", "tracking.retry_s=120", f"hydra.run.dir={tmp_path}/run"]
    job = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        client = MlflowClient(uri)
        deadline = time.time() + 300
        while time.time() < deadline and job.poll() is None:
            experiment = client.get_experiment_by_name(EXPERIMENT)
            if experiment and client.search_runs([experiment.experiment_id], "attributes.status = 'RUNNING'"):
                break
            time.sleep(0.2)
        stop_server(server)
        time.sleep(15)
        server = start_server(state, port)
        out, _ = job.communicate(timeout=600)
        assert job.returncode == 0, out[-3000:]
        assert "retrying for up to 120 s" in out and "answers again" in out  # the outage was met, and outlasted
        client, run = only_run(uri)
        assert run.info.status == "FINISHED"
        assert steps(client, run.info.run_id, "train/loss") == [6, 12]
        assert "test/strict_f1" in run.data.metrics
        assert "predictions_test.conll" in {a.path for a in client.list_artifacts(run.info.run_id)}
    finally:
        if job.poll() is None:
            job.kill()
        stop_server(server)


@pytest.mark.server  # ~45 s on 2 shared CPUs: a server start and 30 races
def test_jobs_logging_one_corpus_at_once_against_a_server_both_record_it(tmp_path, data_root, caplog):
    """Two schemes on one corpus in one sweep: parallel jobs log the same dataset inputs (same name
    and digest) at the same moment. MLflow's server checks that the dataset is missing and then
    inserts it, so all of them may insert it and all but one fail on the datasets table's unique
    constraint; every job must record its inputs all the same. Four runs race on a new dataset
    each round (a new ``dataset.name``): before the fix 32 of the 120 logs failed."""
    caplog.set_level("INFO", logger="bioner_grid.store")
    state, port = tmp_path / "server", free_port()
    state.mkdir()
    server = start_server(state, port)
    try:
        store = RunStore(f"http://127.0.0.1:{port}", EXPERIMENT, retry_s=10)
        runs = [store.open_run(run_name=f"job{k}") for k in range(4)]
        cfg = compose(["dataset=ncbi_disease", f"data.root={data_root}"])
        rounds, errors = 30, []
        for i in range(rounds):
            cfg.dataset.name = f"ncbi_disease_{i}"
            barrier = threading.Barrier(len(runs))

            def log(run):
                barrier.wait()
                try:
                    run.log_corpora(cfg)
                except Exception as e:  # noqa: BLE001 (collected: the assertion below shows them)
                    errors.append(f"round {i}: {e}"[:300])

            threads = [threading.Thread(target=log, args=(run,)) for run in runs]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert not errors, f"{len(errors)} job(s) failed to log their inputs:\n" + "\n".join(errors[:5])
        assert "created by another job at the same moment" in caplog.text  # the race was met (32 times in 30 rounds before the fix)
        client = MlflowClient(store.uri)
        for run in runs:
            inputs = client.get_run(run.run_id).inputs.dataset_inputs
            logged = sorted((d.dataset.name, {t.key: t.value for t in d.tags}["mlflow.data.context"]) for d in inputs)
            assert logged == sorted((f"ncbi_disease_{i}", split) for i in range(rounds) for split in ("train", "dev", "test"))
            run.close("FINISHED")
    finally:
        stop_server(server)


def test_a_saved_model_lands_in_the_runs_experiment_and_artifact_folder(tmp_path, data_root, monkeypatch):
    """MLflow creates a logged model in the active experiment, not its source run's: the store sets
    it around the call, so the model is not put in the Default experiment's ./mlruns/0 under the
    working directory."""
    from bioner_grid import pipeline

    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    pipeline.run(compose(overrides(tmp_path, data_root, "train.save_model=true")), tmp_path / "run")
    client, run = only_run(f"sqlite:///{tmp_path}/mlflow.db")
    assert run.info.status == "FINISHED" and run.data.tags["model_uri"].startswith("models:/")
    (model,) = client.search_logged_models(experiment_ids=[run.info.experiment_id])
    assert model.source_run_id == run.info.run_id
    assert model.artifact_location.startswith((tmp_path / "artifacts").as_uri())
    assert not (work / "mlruns").exists() and "MLFLOW_EXPERIMENT_ID" not in __import__("os").environ


def test_a_logged_model_downloads_from_the_store_named_whatever_the_global_tracking_uri(tmp_path, monkeypatch):
    """A sweep job's model lives in MLflow only (``models:/m-…``). ``tag model=RUN_ID tracking.uri=X``
    and ``tag_compare`` fetch it from X even when MLflow's global tracking URI names another store
    (MLflow 3.17's ``download_artifacts(models:/…, tracking_uri=X)`` looked in the global one:
    "Logged model with ID … not found"); registered versions likewise."""
    import mlflow
    from mlflow import MlflowClient

    from bioner_grid.store import RunStore

    uri = f"sqlite:///{tmp_path}/store.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment("e", artifact_location=(tmp_path / "art").as_uri())
    run = client.create_run(experiment)
    model = client.create_logged_model(experiment, name="model", source_run_id=run.info.run_id)
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "bioner_grid.json").write_text('{"labels": ["O"], "max_seq_length": 8}\n')
    client.log_model_artifacts(model.model_id, str(folder))
    tracking_uri = mlflow.tracking._tracking_service.utils
    monkeypatch.setattr(tracking_uri, "_tracking_uri", uri)  # MLflow registers a logged model from the global store
    client.create_registered_model("bioner-x")
    client.create_model_version("bioner-x", f"models:/{model.model_id}", run_id=run.info.run_id)
    client.set_registered_model_alias("bioner-x", "best", "1")
    monkeypatch.setattr(tracking_uri, "_tracking_uri", f"sqlite:///{tmp_path}/other.db")
    store = RunStore(uri, "")
    for spec in (f"models:/{model.model_id}", "models:/bioner-x/1", "models:/bioner-x@best"):
        local = store.download_uri(spec)
        assert (local / "bioner_grid.json").read_text().startswith('{"labels"'), spec
