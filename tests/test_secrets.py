"""No command shows or stores a secret (issue 19).

A password in ``tracking.uri`` leaves the config at the edge: the launcher moves ``user:pass@`` into
MLflow's environment variables and gives every job the clean URI, so that submitit's pickles,
``.hydra/*.yaml``, ``multirun.yaml``, the sweep's parent run and the console never hold it. What is
masked rather than removed (a single run's ``.hydra`` files, a URI or a token printed by a command)
goes through ``redact.text``, which knows Hydra's escaped form of an override value (checked here on
files Hydra itself wrote).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra._internal.grammar.utils import escape_special_characters
from hydra.core.override_parser.overrides_parser import OverridesParser

from bioner_grid import redact, tracking
from bioner_grid.config import CONF_DIR
from bioner_grid.errors import InputError
from conftest import DATA, ROOT, free_port, start_server, stop_server

# The env without any MLflow credentials of the caller, this checkout first on the path.
ENV = {**{k: v for k, v in os.environ.items() if k not in tracking.CREDENTIAL_ENV},
       "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'launchers'}", "HF_HUB_OFFLINE": "1"}
# ``=`` and ``,`` are special to Hydra's override grammar (typed escaped on the command line, written
# escaped into overrides.yaml); "s3cr3t" is in every form of it (raw, escaped, percent-encoded).
PASSWORD = "s3cr3t=PW,x"
TYPED = "alice\\:s3cr3t\\=PW\\,x"  # user:pass as typed in an override (Hydra-escaped)
NEEDLE = b"s3cr3t"


@pytest.fixture(autouse=True)
def no_credentials_in_env():
    """split_credentials sets MLflow's variables in this process: each test starts and ends without them."""
    saved = {name: os.environ.pop(name) for name in tracking.CREDENTIAL_ENV if name in os.environ}
    yield
    for name in tracking.CREDENTIAL_ENV:
        os.environ.pop(name, None)
    os.environ.update(saved)


# --- redact.text on what Hydra writes ---

HYDRA_APP = """
import hydra

@hydra.main(version_base=None, config_path=None, config_name=None)
def app(cfg):
    pass

app()
"""
URIS = {  # name -> the override value as a user types it (Hydra-escaped where its grammar needs it)
    "plain": "http\\://alice\\:s3cr3t1@host\\:5000",
    "hydra specials": "http\\://alice\\:s3cr3t2\\=a\\,b\\(c\\)\\{d\\}@host\\:5000",
    "raw @ and percent-encoded": "https\\://alice\\:s3cr3t3@x%40y%3Az@host/mlflow",
}


@pytest.fixture(scope="module")
def hydra_written(tmp_path_factory) -> Path:
    """A sweep of a two-line Hydra app over the URIs above (Hydra's own basic sweeper and launcher):
    each job's overrides.yaml and hydra.yaml as Hydra writes them, escapes and all."""
    tmp = tmp_path_factory.mktemp("hydra_app")
    (tmp / "app.py").write_text(HYDRA_APP)
    r = subprocess.run([sys.executable, "app.py", "-m", f"+tracking.uri={','.join(URIS.values())}",
                        "+tracking.token=t0k\\=en\\,s3cr3t4", f"hydra.sweep.dir={tmp}/sweep"],
                       cwd=tmp, capture_output=True, text=True, timeout=120, env={"PATH": os.environ["PATH"]})
    assert r.returncode == 0, r.stderr[-2000:]
    return tmp / "sweep"


def test_hydra_writes_escaped_credentials_which_redact_masks(hydra_written):
    files = sorted(hydra_written.glob("*/.hydra/*.yaml"))
    assert len(files) == 3 * 3
    overrides = (hydra_written / "1" / ".hydra" / "overrides.yaml").read_text()
    assert "http\\://alice\\:s3cr3t2\\=a\\,b\\(c\\)\\{d\\}@host\\:5000" in overrides  # what the old pattern missed
    for path in files:
        text = path.read_text()
        masked = redact.text(text)
        assert "s3cr3t" not in masked, (path, masked)
        assert masked.count(redact.MASK) >= text.count("s3cr3t")
        assert yaml.safe_load(masked) is not None  # still YAML
    for job, uri in enumerate(URIS.values()):
        masked = yaml.safe_load(redact.text((hydra_written / str(job) / ".hydra" / "overrides.yaml").read_text()))
        parsed = {o.key_or_group: o.value() for o in OverridesParser.create().parse_overrides(masked)}
        scheme, host = uri.split("\\:", 1)[0], uri.rsplit("@", 1)[1].replace("\\", "")
        assert parsed["tracking.uri"] == f"{scheme}://{redact.MASK}@{host}"  # Hydra reads it back
        assert parsed["tracking.token"] == redact.MASK


@pytest.mark.parametrize("line, masked", [
    ("http://alice:pw@h:1/x", "http://REDACTED@h:1/x"),
    ("http://alice:p@ss@h/x", "http://REDACTED@h/x"),  # a raw @ in the password: masked whole
    ("http://alice:p%40ss%3A@h", "http://REDACTED@h"),  # percent-encoded userinfo
    ("next=http%3A%2F%2Falice%3Apw%40h%3A1%2Fx", "next=http%3A%2F%2FREDACTED%40h%3A1%2Fx"),  # an encoded URI
    ("['tracking.uri=http\\\\://alice\\\\:pw@h']", "['tracking.uri=http\\\\://REDACTED@h']"),  # repr of escapes
    ("token: '123 4'", "token: REDACTED"),  # quoted YAML values
    ('hf_token="a b"', "hf_token=REDACTED"),
    ("+tracking.api_key=a\\,b\\=c d", "+tracking.api_key=REDACTED d"),
    ("password: null", "password: null"),
    ("tokenizer: bert  http://127.0.0.1:5000/#/x a@b.c", "tokenizer: bert  http://127.0.0.1:5000/#/x a@b.c"),
])
def test_redact_text(line, masked):
    assert redact.text(line) == masked
    assert redact.text(masked) == masked  # idempotent


# --- tracking.split_credentials ---


def test_split_credentials_moves_them_to_mlflows_variables_decoded():
    assert tracking.split_credentials("http://alice:p%40ss%3Dx@h:5000/p") == "http://h:5000/p"
    assert (os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"]) == ("alice", "p@ss=x")
    assert tracking.split_credentials("http://alice:p%40ss%3Dx@h:5000") == "http://h:5000"  # the same again: fine
    assert tracking.split_credentials("http://h:5000") == "http://h:5000"
    assert tracking.resolve_uri("https://alice@h") == "https://h"  # a user name alone: the same one, fine
    with pytest.raises(InputError, match="MLFLOW_TRACKING_USERNAME is already set to a different value"):
        tracking.resolve_uri("https://bob@h")


def test_split_credentials_refuses_variables_holding_other_ones(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "other")
    with pytest.raises(InputError) as e:
        tracking.split_credentials("http://alice:s3cr3t@h:5000")
    assert str(e.value).startswith("tracking.uri=http://REDACTED@h:5000: carries credentials, but "
                                   "MLFLOW_TRACKING_PASSWORD is already set to a different value")
    assert "s3cr3t" not in str(e.value) and os.environ["MLFLOW_TRACKING_PASSWORD"] == "other"
    assert "MLFLOW_TRACKING_USERNAME" not in os.environ  # nothing half-moved


# --- the launcher's move_credentials, in-process on the real config ---


@pytest.mark.parametrize("given", ["typed", "escaped", "config file", "interpolation"])
def test_move_credentials_cleans_the_jobs_and_the_sweep_config(tmp_path, monkeypatch, given):
    """However the URI reaches the sweep (typed on the command line, Hydra-escaped as the sweeper
    writes a job's override, from a config file, through ${oc.env:}): every job's overrides and the
    sweep's config end up with the clean URI, the credentials in MLflow's variables."""
    from hydra.core.hydra_config import HydraConfig
    from hydra_plugins.bioner_grid_launcher.grid_launcher import move_credentials
    from omegaconf import OmegaConf

    uri = f"http://alice:{PASSWORD}@127.0.0.1:9"
    fixed, job = {
        "typed": (["tracking.uri=http://alice:s3cr3t\\=PW\\,x@127.0.0.1:9"],  # escaped only where Hydra needs it
                  ["tracking.uri=http://alice:s3cr3t\\=PW\\,x@127.0.0.1:9"]),
        "escaped": ([f"tracking.uri=http\\://{TYPED}@127.0.0.1\\:9"], [f"tracking.uri=http\\://{TYPED}@127.0.0.1\\:9"]),
        "config file": (["tracking=mine", f"hydra.searchpath=[file://{tmp_path}]"], ["tracking=mine"]),
        "interpolation": (["tracking.uri=${oc.env:SECRET_URI}"], ["tracking.uri=${oc.env:SECRET_URI}"]),
    }[given]
    (tmp_path / "tracking").mkdir()
    (tmp_path / "tracking" / "mine.yaml").write_text(f"uri: '{uri}'\nexperiment: bioner-grid\n")
    monkeypatch.setenv("SECRET_URI", uri)
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        config = compose("config", overrides=[*fixed, "scheme=vanilla", f"hydra.sweep.dir={tmp_path}"],
                         return_hydra_config=True)
    assert config.tracking.uri == uri
    (tmp_path / "multirun.yaml").write_text(OmegaConf.to_yaml(config))  # as the sweeper saves it
    jobs = move_credentials(config, [["scheme=vanilla", *job], ["scheme=welt", *job]])

    clean = "tracking.uri=" + escape_special_characters("http://127.0.0.1:9")
    assert [[o for o in j if o.startswith("tracking.uri=")] for j in jobs] == [[clean], [clean]]
    assert os.environ["MLFLOW_TRACKING_USERNAME"] == "alice" and os.environ["MLFLOW_TRACKING_PASSWORD"] == PASSWORD
    assert config.tracking.uri == "http://127.0.0.1:9"
    assert "s3cr3t" not in OmegaConf.to_yaml(config)  # what submitit pickles with the launcher
    assert "s3cr3t" not in OmegaConf.to_yaml(HydraConfig.get())  # and with Hydra's state
    assert b"s3cr3t" not in (tmp_path / "multirun.yaml").read_bytes()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        recomposed = compose("config", overrides=[*fixed, *jobs[1]], return_hydra_config=True)  # as a job does
    assert recomposed.tracking.uri == "http://127.0.0.1:9"


# --- a real sweep against a real tracking server ---


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``mlflow server`` on a SQLite file, 127.0.0.1, a free port (without auth it accepts, and
    ignores, the basic-auth header the jobs send)."""
    state, port = tmp_path_factory.mktemp("server"), free_port()
    proc = start_server(state, port, env=ENV)
    try:
        yield port, state
    finally:
        stop_server(proc)


def leaks(*places: Path) -> list[str]:
    """Every file under ``places`` holding the password, read as bytes (pickles, SQLite, artifacts)."""
    return [str(p) for place in places for p in place.rglob("*") if p.is_file() and NEEDLE in p.read_bytes()]


def test_a_sweep_with_a_password_in_its_uri_leaves_it_nowhere(tmp_path, data_root, server, capfd):
    """submitit's local processes, 2 tiny jobs: the password is in no file of the sweep folder
    (.submitit pickles included), nowhere in the server's store, not on the console; the jobs got the
    credentials all the same (MLflow's REST client sent them: each run's ``mlflow.user``)."""
    port, state = server
    uri = f"http\\://{TYPED}@127.0.0.1\\:{port}"
    # two corpora, not two schemes: jobs logging the same dataset at once race in MLflow's server
    sweep = ["-m", "debug=quick", "train.max_steps=2", "dataset=ncbi_disease,bc5cdr_chem",
             "hydra/launcher=submitit_local", f"hydra.sweep.dir={tmp_path}/sweep", f"data.root={data_root}",
             f"data.cache={tmp_path}/cache", "tracking=server", f"tracking.uri={uri}"]
    r = subprocess.run([sys.executable, "-m", "bioner_grid", *sweep], cwd=tmp_path, env=ENV, capture_output=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr.decode()[-3000:]
    assert NEEDLE not in r.stdout + r.stderr
    assert f"the jobs get http://127.0.0.1:{port}".encode() in r.stdout + r.stderr
    assert len(list((tmp_path / "sweep" / ".submitit").glob("*/*.pkl"))) == 4  # submitted + result, per job
    # MLflow's "🏃 View run … at: <url>" lines, printed when a run on a server ends (console.QUIET_ENV)
    job_logs = b"".join(p.read_bytes() for p in (tmp_path / "sweep" / ".submitit").glob("*/*_log.out"))
    assert job_logs and b"View run" not in r.stdout + job_logs and b"View experiment" not in r.stdout + job_logs
    assert leaks(tmp_path, state) == []

    db = sqlite3.connect(state / "server.db")
    statuses = db.execute("SELECT status FROM runs").fetchall()
    assert sorted(statuses) == [("FINISHED",)] * 3  # the parent and its two jobs
    command = db.execute("SELECT value FROM tags WHERE key = 'command'").fetchone()[0]
    assert f"tracking.uri=http\\://{redact.MASK}@127.0.0.1" in command, command
    users = db.execute("SELECT value FROM tags WHERE key = 'mlflow.user'").fetchall()
    assert users == [("alice",)] * 3  # the parent and both jobs (which inherited MLFLOW_TRACKING_USERNAME)

    # plan and register (in this process, through the console scripts' runner and its one printer)
    # print the URI masked
    from bioner_grid import cli

    typed = f"tracking.uri=http://{TYPED}@127.0.0.1:{port}"
    capfd.readouterr()
    assert cli.run("plan", [*sweep[1:4], f"data.root={data_root}", "tracking=server", typed]) == 0
    assert cli.run("register", ["tracking=server", typed, "report.experiment=no-such", "name=x"]) == 2
    out, err = capfd.readouterr()
    assert f"tracking http://{redact.MASK}@127.0.0.1:{port} (experiment bioner-grid): 2 FINISHED" in out
    assert err.strip().splitlines()[-1] == \
        f"error: report.experiment=no-such: no scored runs at http://{redact.MASK}@127.0.0.1:{port}"
    assert "s3cr3t" not in out + err


@pytest.mark.parametrize("mode", ["sweep", "single run"])
def test_credentials_that_clash_with_the_environment_are_refused(tmp_path, mode):
    """MLFLOW_TRACKING_PASSWORD already set to another password: one line naming tracking.uri, exit 2,
    nothing launched or created (a sweep's multirun.yaml, saved by the sweeper before the launch, masked)."""
    args = ["-m", "scheme=vanilla,welt"] if mode == "sweep" else []
    r = subprocess.run([sys.executable, "-m", "bioner_grid", *args, f"hydra.sweep.dir={tmp_path}/sweep",
                        f"hydra.run.dir={tmp_path}/run", f"tracking.uri=http\\://{TYPED}@127.0.0.1\\:9"], cwd=tmp_path,
                       env={**ENV, "MLFLOW_TRACKING_PASSWORD": "other"}, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1] == (
        f"error: tracking.uri=http://{redact.MASK}@127.0.0.1:9: carries credentials, but MLFLOW_TRACKING_PASSWORD "
        "is already set to a different value; give them one way (the environment variables, with the URI as "
        "http://host:port)")
    assert "Traceback" not in r.stderr and "s3cr3t" not in r.stdout + r.stderr
    assert leaks(tmp_path) == [] and not (tmp_path / "run").exists()
    assert [p.name for p in (tmp_path / "sweep").iterdir()] == ["multirun.yaml"] if mode == "sweep" else \
        not (tmp_path / "sweep").exists()


def test_the_basic_launcher_moves_them_before_it_asks_the_store_anything(tmp_path):
    """Hydra's basic launcher (jobs in this process) too: the store check that fails already names
    the clean URI, and the sweeper's multirun.yaml holds no password."""
    r = subprocess.run([sys.executable, "-m", "bioner_grid", "-m", "scheme=vanilla,welt", f"hydra.sweep.dir={tmp_path}/sweep",
                        f"data.root={DATA}", "tracking.uri=http://alice:s3cr3t\\=PW\\,x@127.0.0.1:9"], cwd=tmp_path, env=ENV,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr[-2000:]
    assert r.stderr.strip().splitlines()[-1] == \
        "error: tracking.uri=http://127.0.0.1:9: server not reachable ([Errno 111] Connection refused)"
    assert "the jobs get http://127.0.0.1:9" in r.stdout + r.stderr and "s3cr3t" not in r.stdout + r.stderr
    assert leaks(tmp_path) == [] and "uri: http://127.0.0.1:9" in (tmp_path / "sweep" / "multirun.yaml").read_text()
