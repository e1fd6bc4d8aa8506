"""tracking=server: an MLflow server on PostgreSQL (launchers/tracking-server.sh) under concurrent jobs,
and what it refuses to strangers on the same machine: anonymous REST calls, PostgreSQL logins
without the password, a superuser shell through ``COPY ... TO PROGRAM``.

Needs PostgreSQL's server binaries: skipped without them unless REQUIRE_POSTGRES=1 (set by .ci/run).
"""

import glob
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import NamedTuple

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from conftest import ROOT
from conftest import SLICE

pytestmark = pytest.mark.server
MLFLOW_PORT, PG_PORT = 5077, 5477
SCRIPT = str(ROOT / "launchers" / "tracking-server.sh")
CREDENTIAL_VARS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "PGPASSWORD", "PGPASSFILE")


class Tracking(NamedTuple):
    uri: str  # what `start` printed
    state: Path
    credentials: dict  # MLFLOW_TRACKING_USERNAME / _PASSWORD, as `env` gives them to a job


def anonymous_env(**extra) -> dict:
    """This process's environment without any credential (nor a ~/.pgpass): a stranger's shell."""
    env = {k: v for k, v in os.environ.items() if k not in CREDENTIAL_VARS}
    return {**env, "PGPASSFILE": "/nonexistent/pgpass", **extra}


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
    state = Path(tempfile.mkdtemp(prefix="bioner-tracking-"))
    env = anonymous_env(PYTHON=sys.executable, MLFLOW_PORT=str(MLFLOW_PORT), PG_PORT=str(PG_PORT))
    r = subprocess.run([SCRIPT, "start", str(state)], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    exported = subprocess.run([SCRIPT, "env", str(state)], capture_output=True, text=True, env=env, timeout=60)
    assert exported.returncode == 0, exported.stderr
    credentials = dict(line.removeprefix("export ").split("=", 1) for line in exported.stdout.splitlines())
    yield Tracking(r.stdout.strip(), state, credentials)
    subprocess.run([SCRIPT, "stop", str(state)], env=env, timeout=120)
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def as_job(server, monkeypatch):
    """This test process holding the credential, as a job does after `eval "$(tracking-server.sh env)"`."""
    for k, v in server.credentials.items():
        monkeypatch.setenv(k, v)
    return MlflowClient(server.uri)


def post(url: str, body: dict, auth: tuple[str, str] | None = None) -> int:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST")
    if auth:
        import base64

        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as e:
        return e.code


def test_start_prints_the_uri_only_and_the_credential_comes_from_env(server):
    assert server.uri == f"http://127.0.0.1:{MLFLOW_PORT}"
    assert sorted(server.credentials) == ["MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_USERNAME"]
    assert len(server.credentials["MLFLOW_TRACKING_PASSWORD"]) >= 32 and server.credentials["MLFLOW_TRACKING_PASSWORD"] != "password1234"
    # `env` on a terminal would put the password on the screen: refused
    r = subprocess.run(["script", "-qec", f"{SCRIPT} env {server.state}", "/dev/null"], capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "eval" in r.stdout and server.credentials["MLFLOW_TRACKING_PASSWORD"] not in r.stdout


def test_anonymous_or_wrong_password_rest_calls_are_refused(server):
    create = f"{server.uri}/api/2.0/mlflow/experiments/create"
    assert post(create, {"name": "anonymous"}) == 401
    assert post(create, {"name": "guessed"}, ("admin", "password1234")) == 401  # MLflow's old default
    assert post(create, {"name": "wrong"}, ("admin", "wrong")) == 401
    assert post(f"{server.uri}/api/2.0/mlflow/experiments/search", {"max_results": 10}) == 401
    with pytest.raises(MlflowException, match="401|not authenticated|Unauthorized"):
        MlflowClient(server.uri).search_experiments()  # the client without the variables
    user, password = server.credentials["MLFLOW_TRACKING_USERNAME"], server.credentials["MLFLOW_TRACKING_PASSWORD"]
    assert post(create, {"name": "with-the-credential"}, (user, password)) == 200


def psql(user: str, sql: str, **env) -> subprocess.CompletedProcess:
    """``psql -h 127.0.0.1 -U user`` from a shell with no credential (``-w``: never prompt)."""
    args = ["psql", "-w", "-X", "-h", "127.0.0.1", "-p", str(PG_PORT), "-U", user, "-d", "mlflow", "-tAc", sql]
    return subprocess.run(args, capture_output=True, text=True, env=anonymous_env(**env), timeout=60, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("user", ["postgres", "mlflow"])
def test_postgres_refuses_logins_without_the_password(server, user):
    r = psql(user, "SELECT 1")
    assert r.returncode != 0 and "no password supplied" in r.stderr, r.stdout + r.stderr
    r = psql(user, "COPY (SELECT 1) TO PROGRAM 'id'", PGPASSWORD="wrong")
    assert r.returncode != 0 and f'password authentication failed for user "{user}"' in r.stderr, r.stdout + r.stderr
    hba = [line.split() for line in (server.state / "pg" / "pg_hba.conf").read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert hba and {fields[-1] for fields in hba} == {"scram-sha-256"}  # no trust line


def test_the_store_role_holds_no_superuser_power(server):
    """Even with the store's own password (what the MLflow server holds), no shell as postgres."""
    pgpass = str(server.state / "secrets" / "pgpass")
    r = psql("mlflow", "COPY (SELECT 1) TO PROGRAM 'id'", PGPASSFILE=pgpass)
    assert r.returncode != 0 and "must be superuser or have privileges of the pg_execute_server_program role" in r.stderr
    r = psql("mlflow", "SELECT rolsuper, rolcreaterole, rolcreatedb, pg_get_userbyid(datdba), current_setting('listen_addresses') "
                       "FROM pg_roles, pg_database WHERE rolname = current_user AND datname = 'mlflow'", PGPASSFILE=pgpass)
    assert r.returncode == 0 and r.stdout.strip() == "f|f|f|mlflow|127.0.0.1", r.stderr


def test_secrets_are_private_and_on_no_command_line(server):
    secrets = server.state / "secrets"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
    assert stat.S_IMODE(server.state.stat().st_mode) in (0o700, 0o711)  # 0711 as root: user postgres passes through
    values = {}
    for f in secrets.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
        values[f.name] = f.read_text().strip()
    assert {"postgres.password", "mlflow-db.password", "mlflow-admin.password", "pgpass", "client.env"} <= set(values)
    passwords = [values[k] for k in ("postgres.password", "mlflow-db.password", "mlflow-admin.password", "flask-secret.key")]
    assert len(set(passwords)) == 4 and all(len(p) >= 32 for p in passwords)
    command_lines = []
    for f in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            command_lines.append(Path(f).read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:  # a process that ended meanwhile
            pass
    assert any("mlflow server --app-name basic-auth" in c for c in command_lines)
    assert not [c for c in command_lines if any(p in c for p in passwords)]
    logs = (server.state / "mlflow.log").read_text() + (server.state / "initdb.log").read_text()
    assert not [p for p in passwords if p in logs]


def test_eight_concurrent_jobs_lose_no_run_and_no_metric(server, as_job):
    experiment = as_job.create_experiment("concurrency")
    job_env = {**anonymous_env(), **server.credentials}  # what `eval "$(tracking-server.sh env)"` exports
    started = time.time()
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, server.uri, experiment, str(i)], stderr=subprocess.PIPE,
                              text=True, env=job_env)
             for i in range(1, 9)]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    wall = time.time() - started
    assert all(p.returncode == 0 for p in procs), errors
    runs = as_job.search_runs([experiment], max_results=100)
    assert sorted(int(r.data.tags["job"]) for r in runs) == list(range(1, 9))
    for r in runs:
        i = int(r.data.tags["job"])
        assert r.info.status == "FINISHED" and len(r.data.params) == 30 and r.data.params["p7"] == str(7 * i)
        loss = sorted((m.step, m.value) for m in as_job.get_metric_history(r.info.run_id, "loss"))
        assert loss == [(s, pytest.approx(1.0 / (s + 1 + i))) for s in range(100)]
        assert len(as_job.get_metric_history(r.info.run_id, "f1")) == 100
        assert [a.path for a in as_job.list_artifacts(r.info.run_id)] == ["note.txt"]
    print(f"8 concurrent jobs, {8 * 200} metric points, {8 * 30} params: all recorded in {wall:.1f} s")


def test_a_job_without_the_credential_records_nothing(server, as_job):
    experiment = as_job.create_experiment("strangers")
    r = subprocess.run([sys.executable, "-c", WORKER, server.uri, experiment, "1"], capture_output=True, text=True,
                       env=anonymous_env(), timeout=300)
    assert r.returncode != 0 and "401" in r.stderr
    assert as_job.search_runs([experiment]) == []


def test_a_real_run_logs_to_the_server(server, as_job, tmp_path, data_root):
    r = subprocess.run([sys.executable, "-m", "bioner_grid", "tracking=server", f"tracking.uri={server.uri}",
                        "tracking.experiment=pipeline", f"data.root={data_root}", *SLICE, f"hydra.run.dir={tmp_path}/run"],
                       cwd=tmp_path, capture_output=True, text=True, timeout=600, env={**anonymous_env(), **server.credentials})
    assert r.returncode == 0, r.stderr[-3000:]
    (run,) = as_job.search_runs([as_job.get_experiment_by_name("pipeline").experiment_id])
    assert run.info.status == "FINISHED" and run.data.metrics["test/strict_f1"] >= 0
    assert "predictions_test.conll" in {a.path for a in as_job.list_artifacts(run.info.run_id)}
    assert server.credentials["MLFLOW_TRACKING_PASSWORD"] not in r.stdout + r.stderr


def test_a_state_folder_left_with_trust_authentication_is_refused(tmp_path):
    """A state folder made by the old script (PostgreSQL with `-A trust`) is not started again."""
    initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not initdb:
        pytest.skip("PostgreSQL server binaries not installed")
    state = Path(tempfile.mkdtemp(prefix="bioner-tracking-old-"))
    try:
        (state / "pg").mkdir()
        as_postgres = ["su", "postgres", "-s", "/bin/sh", "-c"] if os.getuid() == 0 else ["sh", "-c"]
        if os.getuid() == 0:
            os.chmod(state, 0o755)
            shutil.chown(state / "pg", "postgres")
        subprocess.run([*as_postgres, f"{initdb[-1]} -D {state}/pg -U postgres -A trust --no-sync"], check=True,
                       capture_output=True, timeout=300)
        env = anonymous_env(PYTHON=sys.executable, MLFLOW_PORT=str(MLFLOW_PORT + 1), PG_PORT=str(PG_PORT + 1))
        r = subprocess.run([SCRIPT, "start", str(state)], capture_output=True, text=True, env=env, timeout=300)
        assert r.returncode == 1 and "initialised with trust" in r.stderr and r.stdout == "", r.stderr
        assert "postmaster.pid" not in os.listdir(state / "pg")  # PostgreSQL was not started
    finally:
        shutil.rmtree(state, ignore_errors=True)
