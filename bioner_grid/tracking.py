"""MLflow tracking: one run per job, with params, metrics, artifacts and grid-key tags; claiming a\nrun, its heartbeat, and the checkpoints of all its attempts."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no network on compute nodes

import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.meta_dataset import MetaDataset
from omegaconf import OmegaConf  # noqa: E402

from bioner_grid import identity, redact  # noqa: E402
from bioner_grid.errors import InputError  # noqa: E402

log = logging.getLogger(__name__)
TRAINER_STATE_NAME = "trainer_state.json"  # transformers.trainer.TRAINER_STATE_NAME, written last in a checkpoint

PARAM_LIMIT = 6000  # MLflow's maximum length of a param value
CHECK_TIMEOUT = 5  # seconds for the one request that tells whether a tracking server answers


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message is one line naming the URI or path."""


CREDENTIAL_ENV = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")  # what MLflow's REST client reads


def split_credentials(uri: str) -> str:
    """``uri`` without ``user:pass@``; those move to ``MLFLOW_TRACKING_USERNAME`` / ``_PASSWORD``,
    which MLflow reads and every job of a sweep inherits (submitit's local processes; sbatch exports
    the environment by default), so that no URI the project writes, prints or pickles carries them.
    Percent-escapes in them are decoded (``p%40ss`` is the password ``p@ss``). Variables already set
    to other values are refused (``InputError`` naming ``tracking.uri``): which pair would be used is
    not for this function to guess; the same values again are fine (a sweep's job, a second call)."""
    parts = urllib.parse.urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    given = dict(zip(CREDENTIAL_ENV, (parts.username, parts.password)))
    given = {k: urllib.parse.unquote(v) for k, v in given.items() if v is not None}
    clash = [k for k, v in given.items() if os.environ.get(k, v) != v]
    if clash:
        held = f"{clash[0]} is already set to a different value" if len(clash) == 1 else \
            f"{' and '.join(clash)} are already set to different values"
        raise InputError(f"tracking.uri={redact.text(uri)}: carries credentials, but {held}; give them one way "
                         "(the environment variables, with the URI as http://host:port)")
    os.environ.update(given)
    host = parts.netloc.rsplit("@", 1)[1]
    return urllib.parse.urlunsplit(parts._replace(netloc=host))


SQLITE = "sqlite:///"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///path`` URI, or None for any other store."""
    return Path(uri[len(SQLITE):]) if uri.startswith(SQLITE) else None


def store_missing(uri: str) -> bool:
    """A SQLite store whose file does not exist yet: nothing recorded (and looking must not create it)."""
    path = sqlite_path(uri)
    return path is not None and not path.exists()


def resolve_uri(uri: str) -> str:
    """Make a relative ``sqlite:///path`` absolute (against the launch directory); credentials in
    an http(s) URI move to MLflow's environment variables (``split_credentials``)."""
    uri = split_credentials(uri) if uri.startswith(("http://", "https://")) else uri
    path = sqlite_path(uri)
    if path is not None and not path.is_absolute():
        path = path.resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return SQLITE + str(path)
    return uri


@contextlib.contextmanager
def _store_lock(uri: str):
    """An exclusive lock around the first use of a SQLite store: MLflow creates (and migrates) its
    schema on first use, and jobs doing that at the same moment crash ("table latest_metrics already
    exists"). A tracking server serialises this itself."""
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


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
    elif sqlite_path(uri) is not None:
        check_sqlite(sqlite_path(uri).resolve())
    location = tcfg.get("artifact_location")
    if location and "://" not in location and not _writable(Path(location).resolve()):
        raise TrackingError(f"{Path(location).resolve()}: artifact folder not writable (tracking.artifact_location)")


def setup(tcfg) -> str:
    """Point MLflow at the configured store (its schema created once, under a lock for SQLite) and
    create the experiment once. Returns its id."""
    uri = resolve_uri(tcfg.uri)
    mlflow.set_tracking_uri(uri)
    with _store_lock(uri):
        return _experiment_id(tcfg)


def _experiment_id(tcfg) -> str:
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


# Metric names. Inside the code (result.json, reports, the sweep summary) a metric is a flat name,
# ``test_strict_f1``; in MLflow it is logged grouped by stage, ``test/strict_f1``, because MLflow's
# UI sections a run's charts and the runs table's metric columns by the part before the first "/"
# (beside its own ``system/`` metrics). The conlleval-style lenient scores, flat ``test_f1``, are
# ``test/default_f1`` there, so that strict F1 is the plainly named headline.
METRIC_GROUPS = ("train", "dev", "test", "data", "time", "memory", "sweep")


def mlflow_metric(name: str) -> str:
    """The MLflow name of a flat metric name (``test_strict_f1`` -> ``test/strict_f1``,
    ``test_f1`` -> ``test/default_f1``, ``train_seconds`` -> ``time/train_seconds``)."""
    if name.startswith("data_"):
        return f"data/{name[5:]}"
    if name in ("peak_rss_mb", "cuda_peak_mb"):
        return f"memory/{name}"
    if name.endswith("_seconds") or "_seconds_per_" in name:
        return f"time/{name}"
    if name.startswith(("best_", "jobs_")):
        return f"sweep/{name}"
    if name == "resumed":
        return "train/resumed"
    stage, _, rest = name.partition("_")
    if stage == "train" and rest:
        return f"train/{rest}"
    if stage in ("dev", "test") and rest:
        epoch = "epoch_" if rest.startswith("epoch_") else ""
        rest = rest[len(epoch):]
        scored = rest not in ("loss",) and not rest.startswith(("strict_", "fair_", "weighted_")) and "_strict_" not in rest
        return f"{stage}/{epoch}{'default_' if scored else ''}{rest}"
    return name


def flat_metric(name: str) -> str:
    """The flat name of an MLflow metric name, old (flat) or new (grouped): ``mlflow_metric``'s inverse."""
    group, sep, rest = name.partition("/")
    if not sep or group not in METRIC_GROUPS:
        return name  # flat already (a store written before the grouping), or MLflow's system/ metrics
    if group in ("time", "memory", "sweep"):
        return rest
    if group == "data":
        return f"data_{rest}"
    if group == "train":
        return "resumed" if rest == "resumed" else f"train_{rest}"
    epoch = "epoch_" if rest.startswith("epoch_") else ""
    rest = rest[len(epoch):]
    return f"{group}_{epoch}{rest[len('default_'):] if rest.startswith('default_') else rest}"


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    """``mlflow.log_metrics`` under the grouped names."""
    mlflow.log_metrics({mlflow_metric(k): v for k, v in metrics.items()}, step=step)


def run_metrics(run) -> dict[str, float]:
    """A run's latest metrics under their flat names, whichever way they were logged."""
    return {flat_metric(k): v for k, v in run.data.metrics.items()}


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


SHOWN_PARAMS = ("scheme.name", "scheme.label")  # grid key and display name the report reads, besides the include list


def run_params(cfg) -> dict[str, str]:
    """The MLflow params of a run: the settings that define its result (``identity.defines_result``)
    and the grid keys, nothing operational (report, grid, tracking, paths, URLs)."""
    return {k: v for k, v in flatten_params(cfg).items() if identity.defines_result(k) or k in SHOWN_PARAMS}


def log_corpora(cfg) -> None:
    """Every input file of the run as an MLflow dataset input (name, SHA256 digest, context
    train/dev/test), so the runs table's Dataset column shows what a run was trained and scored on."""
    dataset = OmegaConf.to_container(cfg.dataset, resolve=True)
    digests = identity.corpus_digests(cfg)
    nodes = [(dataset["name"], dataset, "")] + [(m.get("name"), m, f"{m.get('name')}.")
                                                for m in dataset.get("members") or []]
    for name, node, prefix in nodes:
        for split in identity.FILE_KEYS:
            path, digest = node.get(split), digests.get(prefix + split)
            if not isinstance(path, str) or not digest:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                source = resolve_dataset_source(str(Path(path).resolve()))
            # MLflow keeps 36 characters of a digest; the whole SHA256 is the run's data_sha256.* tag
            mlflow.log_input(MetaDataset(source, name=name, digest=digest[:16]), context=split)


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
    """The grid keys, the run and cell keys, the corpus digests and provenance every run carries as tags."""
    return {
        **identity.grid_values(cfg),
        "run_key": identity.run_key(cfg),
        "cell_key": identity.cell_key(cfg),
        **{f"data_sha256.{name}": digest for name, digest in identity.corpus_digests(cfg).items()},
        "hostname": socket.gethostname(),
        **git_state(),
    }


def runs_by_key(tcfg) -> dict[str, list]:
    """``run_key -> [MLflow Run, newest first]`` of the configured experiment (empty if it does not exist)."""
    uri = resolve_uri(tcfg.uri)
    if store_missing(uri):
        return {}
    mlflow.set_tracking_uri(uri)
    with _store_lock(uri):
        experiment = mlflow.get_experiment_by_name(tcfg.experiment)
    if experiment is None:
        return {}
    out: dict[str, list] = {}
    for r in mlflow.search_runs(experiment_ids=[experiment.experiment_id], order_by=["attributes.start_time DESC"],
                                output_format="list"):
        if "run_key" in r.data.tags:
            out.setdefault(r.data.tags["run_key"], []).append(r)
    return out


def runs_with_key(experiment_id: str, key: str) -> list:
    """MLflow runs carrying ``run_key=key``, newest first."""
    return mlflow.search_runs(experiment_ids=[experiment_id], filter_string=f"tags.run_key = '{key}'",
                              order_by=["attributes.start_time DESC"], output_format="list")


# ---------------------------------------------------------------------------------------------
# Checkpoints of every attempt of a run


def checkpoint_dirs(run) -> list[str]:
    """The checkpoint folders of every attempt of a run (tag ``checkpoint_dirs``, one per line; runs
    recorded before it have only their ``output_dir``)."""
    tags = run.data.tags
    dirs = [d for d in tags.get("checkpoint_dirs", "").split("\n") if d]
    legacy = str(Path(tags["output_dir"]) / "checkpoints") if tags.get("output_dir") else None
    return dirs + ([legacy] if legacy and legacy not in dirs else [])


def last_complete_checkpoint(folders) -> str | None:
    """The newest ``checkpoint-N`` folder, over all ``folders``, that was written to the end, or None.

    The Trainer writes a checkpoint's files one after another and ``trainer_state.json`` last, so a
    job killed while saving (SLURM's time limit, a preemption) leaves a folder without it, or with
    it cut short; resuming from that would fail, so it is passed over for the one before."""
    from transformers.trainer_utils import sort_checkpoints  # imports torch: kept out of the launcher's start-up

    if isinstance(folders, (str, Path)):
        folders = [folders]
    found = [p for f in folders for p in sort_checkpoints(str(f))]
    for path in sorted(found, key=lambda p: int(Path(p).name.rsplit("-", 1)[1]), reverse=True):
        try:
            json.loads((Path(path) / TRAINER_STATE_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            log.warning("%s was not written to the end (no readable %s); not resuming from it", path, TRAINER_STATE_NAME)
            continue
        return path
    return None


def run_checkpoint(run) -> str | None:
    return last_complete_checkpoint(checkpoint_dirs(run))


def decide(cfg, runs, now: float | None = None) -> identity.Decision:
    """``identity.decide`` with this configuration's settings and the runs' checkpoints."""
    return identity.decide(runs, bool(cfg.train.force), time.time() if now is None else now,
                           float(cfg.grid.heartbeat_s), run_checkpoint)


# ---------------------------------------------------------------------------------------------
# Claiming a run and keeping it alive


def job_tags() -> dict[str, str]:
    """Who runs this attempt, and a fresh heartbeat."""
    return {**identity.this_job(), "heartbeat": f"{time.time():.0f}"}


def live_twin(run, now: float, heartbeat_s: float) -> str | None:
    """The run id of an older live RUNNING run with this run's key, started by another job at the
    same moment (both created a run; the earlier one, by start time then id, trains)."""
    me = (run.info.start_time, run.info.run_id)
    for r in runs_with_key(run.info.experiment_id, run.data.tags["run_key"]):
        if (r.info.run_id != run.info.run_id and r.info.status == "RUNNING"
                and identity.is_live(r.data.tags, now, heartbeat_s) and (r.info.start_time, r.info.run_id) < me):
            return r.info.run_id
    return None


def claim(run_id: str, settle_s: float = 2.0) -> bool:
    """Claim an unfinished run before continuing it: write a token, wait, read it back. Of jobs that
    claim the same run at the same moment only the last writer reads its own token and goes on; it
    marks the run alive at once, so that a later relaunch sees it in flight."""
    token = f"{identity.this_job()['host']}:{os.getpid()}:{time.time_ns()}"
    client = MlflowClient()
    client.set_tag(run_id, "claim", token)
    time.sleep(settle_s)
    if client.get_run(run_id).data.tags.get("claim") != token:
        return False
    for key, value in job_tags().items():
        client.set_tag(run_id, key, value)
    return True


class Heartbeat:
    """Refreshes the run's ``heartbeat`` tag every ``period`` seconds from a daemon thread, so that a
    relaunch can tell this live job from a dead one (``identity.is_live``)."""

    def __init__(self, run_id: str, period: float):
        self.run_id, self.period = run_id, period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="mlflow-heartbeat", daemon=True)

    def _beat(self):
        client = MlflowClient()
        while not self._stop.wait(self.period):
            try:
                client.set_tag(self.run_id, "heartbeat", f"{time.time():.0f}")
            except Exception as e:  # a busy store must not kill training; the next beat tries again
                log.warning("heartbeat of run %s not recorded: %s", self.run_id, e)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)
