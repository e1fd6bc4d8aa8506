"""Shared fixtures and helpers: the real corpora in ../shared/datasets, small tokenizers of each
family, and the command line run into a temporary MLflow store."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("BIONER_DATA", ROOT.parent / "shared" / "datasets")).resolve()
NCBI = DATA / "conll" / "NCBI-disease"


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not (NCBI / "train.tsv").is_file():
        pytest.fail(f"real corpora not found under {DATA} (set BIONER_DATA)")
    return DATA


@pytest.fixture(scope="session")
def minilm_tokenizer():
    from omegaconf import OmegaConf

    from bioner_grid.modeling import load_tokenizer

    return load_tokenizer(OmegaConf.load(ROOT / "conf" / "model" / "minilm.yaml"))


def free_port() -> int:
    """A loopback port nothing listens on now."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(state: Path, port: int, env: dict | None = None) -> subprocess.Popen:
    """A plain ``mlflow server`` on a SQLite file in ``state``, 127.0.0.1:``port``, in its own session
    (``stop_server`` ends it and its workers); returns once /health answers. Without auth it accepts,
    and ignores, the basic-auth header a client sends."""
    import time
    import urllib.request

    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                             "--backend-store-uri", f"sqlite:///{state}/server.db", "--default-artifact-root",
                             f"{state}/artifacts", "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, env=env)
    for _ in range(240):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1).close()
            return proc
        except OSError:
            if proc.poll() is not None:
                break
            time.sleep(0.5)
    proc.kill()
    pytest.fail("mlflow server did not start in 120 s")


def stop_server(proc: subprocess.Popen) -> None:
    import signal

    os.killpg(proc.pid, signal.SIGTERM)  # the server and its workers (its own session)
    proc.wait(timeout=60)


SLICE = ["debug=quick"]  # tiny_bert, 96 training / 40 evaluation sentences, 2 epochs (conf/debug/quick.yaml)


def cli(tmp_path: Path, data_root, *overrides, multirun=False):
    args = [sys.executable, "-m", "bioner_grid", *(["-m"] if multirun else []), f"data.root={data_root}",
            f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", f"tracking.artifact_location={tmp_path}/artifacts",
            *overrides]
    return subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600)


def inproc(out: Path, overrides: list[str]) -> dict:
    """``python -m bioner_grid *overrides`` with its output folder ``out``, in this process (no new
    interpreter paying ~10 s of torch, transformers and mlflow imports): the config composed from
    ``conf/`` with the same overrides, checked (``spec.check``), the overrides saved where Hydra saves
    them (``out/.hydra/overrides.yaml``, read by ``register``), then ``pipeline.run``; returns
    ``result.json``'s content. A user-facing failure is printed and raised as the app ends it
    (``errors.JobFailed``: ``.code`` the exit status, the one line on stderr for capsys). Relative
    paths in the config (``data.cache=outputs/cache``) are taken from the working directory: tests
    ``monkeypatch.chdir(tmp_path)`` as ``cli`` runs in ``tmp_path``."""
    from omegaconf import OmegaConf

    from bioner_grid import errors, pipeline, spec
    from bioner_grid.config import compose

    try:
        cfg = compose(overrides)
        spec.check(cfg)
        (Path(out) / ".hydra").mkdir(parents=True, exist_ok=True)
        OmegaConf.save(OmegaConf.create(list(overrides)), Path(out) / ".hydra" / "overrides.yaml")
        return pipeline.run(cfg, out)
    except Exception as e:  # what bioner_grid.__main__.app does with it
        if errors.classify(e) is None:
            raise
        raise errors.fail(e) from None


def run_inproc(tmp_path: Path, data_root, *overrides, out: Path | None = None) -> dict:
    """``cli(tmp_path, data_root, *overrides, "hydra.run.dir=<out>")`` in this process (``inproc``):
    the same store in ``tmp_path``; ``out`` defaults to ``tmp_path/run``."""
    return inproc(out or tmp_path / "run", [f"data.root={data_root}", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
                                            f"tracking.artifact_location={tmp_path}/artifacts", *overrides])


def app_inproc(monkeypatch, capsys, cwd: Path, *argv) -> subprocess.CompletedProcess:
    """``python -m bioner_grid *argv`` in ``cwd``, in this process: the real Hydra app (compose, the
    checks of ``bioner_grid.guard`` before anything is created, the launchers) without a new
    interpreter's imports. Its exit status, stdout and stderr as ``subprocess.run`` gives them."""
    from bioner_grid import __main__ as app

    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", [str(Path(app.__file__)), *map(str, argv)])  # as ``python -m`` sets them
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # main() sets it; restored after the test
    capsys.readouterr()
    # Hydra configures logging for the job (dictConfig: the root logger's handlers replaced by its
    # console and run-log handlers): a process of its own would end there; this one goes on, so the
    # loggers are put back as they were (pytest's capture included) and Hydra's handlers closed.
    loggers = [logging.getLogger(), *(logging.getLogger(n) for n in ("bioner_grid", "hydra", "mlflow"))]
    saved = [(lg, list(lg.handlers), lg.level, lg.propagate, lg.disabled) for lg in loggers]
    try:
        app.main()
        code = 0
    except SystemExit as e:  # errors.JobFailed, or Hydra's own exit
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        for lg, handlers, level, propagate, disabled in saved:
            for h in set(lg.handlers) - set(handlers):
                h.close()
            lg.handlers[:], lg.level, lg.propagate, lg.disabled = handlers, level, propagate, disabled
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(sys.argv, code, out, err)


def runs(tmp_path, parents=False):
    """The training runs of the store (``parents=True``: with the sweeps' parent runs), metric columns
    under their flat names (``metrics.test_strict_f1``) as the report reads them; MLflow holds them
    grouped by stage (``test/strict_f1``, tests/test_tracking.py)."""
    from bioner_grid.store import flat_metric

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    df = mlflow.search_runs(experiment_names=["bioner-grid"], order_by=["start_time ASC"])
    df = df.rename(columns={c: f"metrics.{flat_metric(c[len('metrics.'):])}" for c in df.columns if c.startswith("metrics.")})
    if not parents and "tags.kind" in df:
        df = df[df["tags.kind"].fillna("") != "sweep"].reset_index(drop=True)
    return df
