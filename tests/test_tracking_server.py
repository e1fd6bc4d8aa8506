"""tracking=server: an MLflow server on PostgreSQL (launchers/tracking-server.sh) under concurrent jobs.

Needs PostgreSQL's server binaries: skipped without them unless REQUIRE_POSTGRES=1 (set by .ci/run).
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile
import time

import mlflow
import pytest
from mlflow import MlflowClient

from bioner_grid.store import RunStore
from conftest import ROOT
from conftest import SLICE

pytestmark = pytest.mark.server

WORKER = """
import sys, mlflow
uri, experiment, i = sys.argv[1], sys.argv[2], int(sys.argv[3])
mlflow.set_tracking_uri(uri)
with mlflow.start_run(experiment_id=experiment, run_name=f"job{i}", tags={"job": str(i)}):
    mlflow.log_params({f"p{k}": k * i for k in range(30)})
    for step in range(100):
        mlflow.log_metric("loss", 1.0 / (step + 1 + i), step=step)
        mlflow.log_metric("f1", step * i / 1000.0, step=step)
    mlflow.log_text(f"job {i}", "note.txt")
"""


@pytest.fixture(scope="module")
def server():
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail("REQUIRE_POSTGRES=1 but PostgreSQL's server binaries are not installed")
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    # PostgreSQL runs as user postgres, which cannot enter pytest's root-only temp folders
    state = tempfile.mkdtemp(prefix="bioner-tracking-")
    os.chmod(state, 0o755)
    env = {**os.environ, "PYTHON": sys.executable, "MLFLOW_PORT": "5077", "PG_PORT": "5477"}
    script = str(ROOT / "launchers" / "tracking-server.sh")
    r = subprocess.run([script, "start", str(state)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    yield r.stdout.strip()
    subprocess.run([script, "stop", str(state)], env=env, timeout=120)
    shutil.rmtree(state, ignore_errors=True)


def test_eight_concurrent_jobs_lose_no_run_and_no_metric(server):
    experiment = RunStore(server, "concurrency").experiment_id()
    started = time.time()
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, server, experiment, str(i)], stderr=subprocess.PIPE, text=True)
             for i in range(1, 9)]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    wall = time.time() - started
    assert all(p.returncode == 0 for p in procs), errors
    mlflow.set_tracking_uri(server)
    runs = mlflow.search_runs(experiment_ids=[experiment], output_format="list")
    assert sorted(int(r.data.tags["job"]) for r in runs) == list(range(1, 9))
    client = MlflowClient(server)
    for r in runs:
        i = int(r.data.tags["job"])
        assert r.info.status == "FINISHED" and len(r.data.params) == 30 and r.data.params["p7"] == str(7 * i)
        loss = sorted((m.step, m.value) for m in client.get_metric_history(r.info.run_id, "loss"))
        assert loss == [(s, pytest.approx(1.0 / (s + 1 + i))) for s in range(100)]
        assert len(client.get_metric_history(r.info.run_id, "f1")) == 100
        assert [a.path for a in client.list_artifacts(r.info.run_id)] == ["note.txt"]
    print(f"8 concurrent jobs, {8 * 200} metric points, {8 * 30} params: all recorded in {wall:.1f} s")


def test_a_real_run_logs_to_the_server(server, tmp_path, data_root):
    r = subprocess.run([sys.executable, "-m", "bioner_grid", "tracking=server", f"tracking.uri={server}",
                        "tracking.experiment=pipeline", f"data.root={data_root}", *SLICE, f"hydra.run.dir={tmp_path}/run"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    mlflow.set_tracking_uri(server)
    (run,) = mlflow.search_runs(experiment_names=["pipeline"], output_format="list")
    assert run.info.status == "FINISHED" and run.data.metrics["test/strict_f1"] >= 0
    assert "predictions_test.conll" in {a.path for a in MlflowClient(server).list_artifacts(run.info.run_id)}
