"""MLflow tracking: one run per job, with params, metrics, artifacts and grid-key tags."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import sqlite3
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no network on compute nodes

import mlflow  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from bioner_grid import redact  # noqa: E402

PARAM_LIMIT = 6000  # MLflow's maximum length of a param value
CHECK_TIMEOUT = 5  # seconds for the one request that tells whether a tracking server answers


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message is one line naming the URI or path."""


def split_credentials(uri: str) -> str:
    """``uri`` without ``user:pass@``; those go to ``MLFLOW_TRACKING_USERNAME`` / ``_PASSWORD``
    (which MLflow reads), unless already set, so that no URI the project writes carries them."""
    parts = urllib.parse.urlsplit(uri)
    if not parts.username and not parts.password:
        return uri
    os.environ.setdefault("MLFLOW_TRACKING_USERNAME", urllib.parse.unquote(parts.username or ""))
    if parts.password is not None:
        os.environ.setdefault("MLFLOW_TRACKING_PASSWORD", urllib.parse.unquote(parts.password))
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


def resolve_uri(uri: str) -> str:
    """Make a relative ``sqlite:///path`` absolute (against the launch directory); credentials in
    an http(s) URI move to MLflow's environment variables (``split_credentials``)."""
    uri = split_credentials(uri) if uri.startswith(("http://", "https://")) else uri
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        path = Path(uri[len(prefix):]).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return prefix + str(path)
    return uri


def _writable(path: Path) -> bool:
    """Whether ``path`` (a file or folder, existing or to be created) can be written."""
    while not path.exists():
        path = path.parent
    return os.access(path, os.W_OK | (os.X_OK if path.is_dir() else 0))


def check_sqlite(path: Path) -> None:
    if not path.exists():
        if not _writable(path.parent):
            raise TrackingError(f"{path}: cannot create the tracking store here (folder not writable)")
        return
    if not os.access(path, os.R_OK | os.W_OK) or not _writable(path.parent):
        raise TrackingError(f"{path}: tracking store is read-only (SQLite needs the file and its folder writable)")
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=CHECK_TIMEOUT)) as db:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as e:
        raise TrackingError(f"{path}: tracking store unreadable ({e})") from None


def check_server(uri: str) -> None:
    """One quick request: any HTTP answer means the server is there."""
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=CHECK_TIMEOUT).close()
    except urllib.error.HTTPError:
        return  # it answered
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise TrackingError(f"tracking.uri={redact.text(uri)}: server not reachable ({reason})") from None


def check_store(tcfg) -> None:
    """Fail in seconds, with one line naming the URI or path, when the tracking store cannot be
    used: server not answering, SQLite file corrupt or read-only, artifact folder not writable."""
    uri = split_credentials(tcfg.uri) if tcfg.uri.startswith(("http://", "https://")) else tcfg.uri
    if uri.startswith(("http://", "https://")):
        check_server(uri)
    elif uri.startswith("sqlite:///"):
        check_sqlite(Path(uri[len("sqlite:///"):]).resolve())
    location = tcfg.get("artifact_location")
    if location and "://" not in location and not _writable(Path(location).resolve()):
        raise TrackingError(f"{Path(location).resolve()}: artifact folder not writable (tracking.artifact_location)")


def setup(tcfg) -> str:
    """Point MLflow at the configured store; create the experiment once. Returns its id."""
    mlflow.set_tracking_uri(resolve_uri(tcfg.uri))
    experiment = mlflow.get_experiment_by_name(tcfg.experiment)
    if experiment is not None:
        return experiment.experiment_id
    location = tcfg.get("artifact_location")
    if location and "://" not in location:
        location = Path(location).resolve().as_uri()
    try:
        return mlflow.create_experiment(tcfg.experiment, artifact_location=location)
    except mlflow.exceptions.MlflowException:  # created meanwhile by a concurrent job
        return mlflow.get_experiment_by_name(tcfg.experiment).experiment_id


def flatten_params(cfg) -> dict[str, str]:
    """Every leaf of the resolved config as ``a.b.c -> value``, values cut to MLflow's limit."""
    out: dict[str, str] = {}

    def walk(node, prefix):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        else:
            value = str(redact.value(prefix[:-1], node))
            if len(value) > PARAM_LIMIT:
                value = value[: PARAM_LIMIT - 14] + "...[truncated]"
            out[prefix[:-1]] = value

    walk(OmegaConf.to_container(cfg, resolve=True), "")
    return out


def git_state() -> dict[str, str]:
    """Commit and dirty flag of the project checkout ('unknown' outside git)."""
    root = Path(__file__).resolve().parent.parent

    def git(*args):
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"git_commit": "unknown", "git_dirty": "unknown"}
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip() != ""
        return {"git_commit": head.stdout.strip(), "git_dirty": str(dirty).lower()}
    except (OSError, subprocess.TimeoutExpired):
        return {"git_commit": "unknown", "git_dirty": "unknown"}


def run_tags(cfg) -> dict[str, str]:
    """The grid keys and provenance every run carries as tags."""
    return {
        "model": cfg.model.name,
        "dataset": cfg.dataset.name,
        "scheme": cfg.scheme.name,
        "lr": str(cfg.train.lr),
        "batch_size": str(cfg.train.batch_size),
        "seed": str(cfg.train.seed),
        "hostname": socket.gethostname(),
        **git_state(),
    }


# Settings that do not change what a run computes: where it is tracked, where data and outputs
# live, how often it checkpoints, whether to rerun it.
KEY_IGNORED_TRAIN = ("force", "keep_checkpoints", "checkpoint_steps", "device", "eval_batch_size")


def run_key(cfg) -> str:
    """Stable hash of the resolved config minus launcher, output-path and tracking settings.

    ``data.root`` is replaced by a placeholder before resolving, so the same corpus read from
    another folder (login node vs compute node) gives the same key.
    """
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    OmegaConf.set_struct(cfg, False)
    cfg.pop("hydra", None)  # launcher and output paths (its resolvers only work inside a Hydra job)
    cfg.data.root = "<data.root>"
    cfg.data.upstream = "<data.upstream>"  # a mirror serves the same checksummed files
    container = OmegaConf.to_container(cfg, resolve=True)
    for key in ("tracking", "grid", "welt_hparams"):  # the table's values are resolved into train.*
        container.pop(key, None)
    for key in KEY_IGNORED_TRAIN:
        container["train"].pop(key, None)
    blob = json.dumps(container, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def runs_with_key(experiment_id: str, key: str) -> list:
    """MLflow runs carrying ``run_key=key``, newest first."""
    return mlflow.search_runs(experiment_ids=[experiment_id], filter_string=f"tags.run_key = '{key}'",
                              order_by=["attributes.start_time DESC"], output_format="list")


def finished_keys(tcfg) -> dict[str, str]:
    """``run_key -> run_id`` of every FINISHED run in the configured experiment (none if it does not exist)."""
    mlflow.set_tracking_uri(resolve_uri(tcfg.uri))
    experiment = mlflow.get_experiment_by_name(tcfg.experiment)
    if experiment is None:
        return {}
    runs = mlflow.search_runs(experiment_ids=[experiment.experiment_id], filter_string="attributes.status = 'FINISHED'",
                              output_format="list")
    return {r.data.tags["run_key"]: r.info.run_id for r in runs if "run_key" in r.data.tags}
