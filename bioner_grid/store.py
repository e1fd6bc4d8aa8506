"""The tracking store: the one module that talks to MLflow about runs.

``RunStore(uri, experiment)`` wraps an explicit ``MlflowClient(uri)``: no global tracking URI, no
fluent active run, so two stores (a sweep's and a report's, or a test's) never see each other's
state. Every call goes through ``RunStore.call``, which retries what is transient (a SQLite file
locked by another writer, a tracking server restarting or refusing connections, a dropped
connection) with exponential backoff for ``tracking.retry_s`` seconds, and only then raises
``StoreError``: one line ``tracking store <uri>: <problem>``, exit 1.

A run being trained is an ``OpenRun``: its metrics go to a buffer that a background thread flushes
(``MetricBuffer``), so a store outage never blocks the training loop and loses nothing; ``close``
waits for the buffer, then sets the run's final status.

Metric names are made here (``metric_name``): a flat name of the code (``test_strict_f1``) is logged
grouped by stage (``test/strict_f1``), with any character MLflow refuses in a name (an entity type
``Gene(Protein)``) made safe. Stores written before the grouping hold flat names: ``flat_metric``
reads both.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import re
import sqlite3
import sys
import threading
import time
import warnings
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")  # no network on compute nodes

import mlflow  # noqa: E402
import requests  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.data.dataset_source_registry import resolve_dataset_source  # noqa: E402
from mlflow.data.meta_dataset import MetaDataset  # noqa: E402
from mlflow.entities import DatasetInput, InputTag, Metric, Param, RunTag  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from mlflow.utils.mlflow_tags import MLFLOW_RUN_NOTE  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from bioner_grid import identity, redact, tracking  # noqa: E402
from bioner_grid.errors import StoreError  # noqa: E402

log = logging.getLogger(__name__)

RETRY_S = 300.0  # tracking.retry_s when a config has none
FIRST_DELAY_S, MAX_DELAY_S = 0.5, 30.0  # backoff: 0.5, 1, 2, ... 30, 30 s
BATCH = 1000  # MLflow's log_batch limit on metrics per call


# ---------------------------------------------------------------------------------------------
# Metric names


METRIC_GROUPS = ("train", "dev", "test", "data", "time", "memory", "sweep")
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /]")  # MLflow allows these characters only in a metric name


def safe_name(name: str) -> str:
    """``name`` with each character MLflow refuses in a metric name replaced by ``_``
    (``Gene(Protein)`` -> ``Gene_Protein_``); the one rule for per-type metric names."""
    return _UNSAFE.sub("_", name)


def metric_name(name: str) -> str:
    """The MLflow name of a flat metric name, grouped by stage (``test_strict_f1`` ->
    ``test/strict_f1``, ``test_f1`` -> ``test/default_f1``, ``train_seconds`` -> ``time/train_seconds``).

    MLflow's UI sections a run's charts and the runs table's columns by the part before the first
    "/"; the conlleval-style lenient scores are ``default_`` so that strict F1 is the plain name."""
    name = safe_name(name)
    if name.startswith("data_"):
        return f"data/{name[5:]}"
    if name in ("peak_rss_mb", "cuda_peak_mb"):
        return f"memory/{name}"
    if name.endswith("_seconds") or "_seconds_per_" in name:
        return f"time/{name}"
    if name.startswith(("best_", "jobs_")) or "_at_best_dev" in name:  # a sweep parent's summary
        return f"sweep/{name}"
    if name == "resumed":
        return "train/resumed"
    stage, _, rest = name.partition("_")
    if stage == "train" and rest:
        return f"train/{rest}"
    if stage in ("dev", "test") and rest:
        epoch = "epoch_" if rest.startswith("epoch_") else ""
        rest = rest[len(epoch):]
        scored = rest not in ("loss", "pred_entities") and not rest.startswith(("strict_", "fair_", "weighted_")) and "_strict_" not in rest
        return f"{stage}/{epoch}{'default_' if scored else ''}{rest}"
    return name


def cross_metric(dataset: str, name: str) -> str:
    """The name of a test metric scored on another dataset's test split (``evaluation.extra_tests``):
    ``test_strict_f1`` on bc5cdr_disease -> ``cross/bc5cdr_disease/strict_f1`` (``test_f1`` ->
    ``cross/bc5cdr_disease/default_f1``). ``metric_name`` and ``flat_metric`` keep it as it is, so the
    code, result.json and the report use this name too."""
    return f"cross/{safe_name(dataset)}/{metric_name(name).split('/', 1)[1]}"


def flat_metric(name: str) -> str:
    """The flat name of a stored metric name, grouped (``test/strict_f1``) or from a store written
    before the grouping (``test_strict_f1``, returned as it is): the legacy reader."""
    group, sep, rest = name.partition("/")
    if not sep or group not in METRIC_GROUPS:
        return name  # flat already, or MLflow's system/ metrics
    if group in ("time", "memory", "sweep"):
        return rest
    if group == "data":
        return f"data_{rest}"
    if group == "train":
        return "resumed" if rest == "resumed" else f"train_{rest}"
    epoch = "epoch_" if rest.startswith("epoch_") else ""
    rest = rest[len(epoch):]
    return f"{group}_{epoch}{rest[len('default_'):] if rest.startswith('default_') else rest}"


def real_value(v: float) -> float:
    """A metric as it was logged: MLflow's SQL store keeps +-inf as +-sys.float_info.max (NaN as NaN)."""
    return math.copysign(math.inf, v) if abs(v) == sys.float_info.max else v


def non_finite(metrics: dict[str, float]) -> list[str]:
    """The names of the metrics logged as inf, -inf or NaN (a diverged run, a bug in a scorer)."""
    return sorted(k for k, v in metrics.items() if not math.isfinite(real_value(v)))


def corpus_figures(params: dict[str, str]) -> dict[str, float]:
    """A run's corpus figures, logged as params ``corpus.train_sentences`` (``tracking.corpus_params``),
    under the flat metric names that runs recorded before held them as (``data_train_sentences``)."""
    out = {}
    for k, v in params.items():
        if k.startswith(tracking.CORPUS):
            with contextlib.suppress(ValueError):
                out[f"data_{k[len(tracking.CORPUS):]}"] = float(v)
    return out


def run_metrics(run) -> dict[str, float]:
    """A run's latest metrics under their flat names, whichever way they were logged (the corpus
    figures, params now, included as ``data_*``)."""
    return {**corpus_figures(run.data.params), **{flat_metric(k): v for k, v in run.data.metrics.items()}}


# ---------------------------------------------------------------------------------------------
# What is transient


TRANSIENT_CODES = {"TEMPORARILY_UNAVAILABLE", "REQUEST_LIMIT_EXCEEDED"}
DENIED_CODES = {"UNAUTHENTICATED", "PERMISSION_DENIED"}
# What MLflow's REST client leaves in its message when it wraps a connection failure in a plain
# MlflowException (rest_utils.http_request: "API request to ... failed with exception ...").
TRANSIENT_TEXT = ("database is locked", "database table is locked", "Connection refused", "Max retries exceeded",
                  "Connection aborted", "RemoteDisconnected", "Connection reset", "failed with error code 502",
                  "failed with error code 503", "failed with error code 504", "timed out")


def transient(e: BaseException) -> bool:
    """Whether ``e`` may pass if tried again: a locked SQLite file, a server restarting or
    refusing connections, a dropped connection (looked for along the chain of causes, as MLflow
    and SQLAlchemy wrap the original error)."""
    seen: BaseException | None = e
    for _ in range(10):
        if seen is None:
            break
        if isinstance(seen, MlflowException) and seen.error_code in TRANSIENT_CODES:
            return True
        if isinstance(seen, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError,
                             TimeoutError)):
            return True
        if isinstance(seen, sqlite3.OperationalError) and ("locked" in str(seen) or "busy" in str(seen)):
            return True
        seen = seen.__cause__ or seen.__context__
    return any(marker in str(e) for marker in TRANSIENT_TEXT)


# The datasets table's key (experiment, name, digest) refusing a row another writer inserted first,
# in SQLite's, PostgreSQL's and MySQL's words as MLflow passes them on.
DUPLICATE_TEXT = ("UNIQUE constraint failed: datasets.", 'unique constraint "dataset_pk"', "for key 'datasets.PRIMARY'")


def duplicate_dataset(e: BaseException) -> bool:
    """Whether ``e`` is the datasets table refusing a dataset (name, digest) another writer inserted
    between MLflow's look-up and its insert."""
    return any(marker in str(e) for marker in DUPLICATE_TEXT)


def problem(e: BaseException) -> str:
    """The first line of what went wrong, short."""
    text = e.message if isinstance(e, MlflowException) else str(e)
    line = next((s.strip() for s in str(text).splitlines() if s.strip()), type(e).__name__)
    return line if len(line) <= 300 else line[:297] + "..."


class _DropRetriedTracebacks(logging.Filter):
    """MLflow logs every SQLAlchemy OperationalError (a locked file) with its traceback before
    raising it; those are retried here, and reported in one line if they last."""

    def filter(self, record):
        return not str(record.msg).startswith("SQLAlchemy database error")


logging.getLogger("mlflow.store.db.utils").addFilter(_DropRetriedTracebacks())


def bound_mlflow_retries(retry_s: float) -> None:
    """MLflow's REST client retries a failed request itself (7 times, backoff factor 2: ~4 minutes,
    then a 120 s timeout per request); our ``retry_s`` is the budget in force, so its own retries are
    off and one request waits at most ``retry_s`` (30 s at most). A value the user set is kept."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(int(max(5, min(30, retry_s)))))


# ---------------------------------------------------------------------------------------------
# The store


@contextlib.contextmanager
def _schema_lock(uri: str):
    """An exclusive lock around the first use of a SQLite store: MLflow creates (and migrates) its
    schema on first use, and jobs doing that at the same moment crash ("table latest_metrics already
    exists"). A tracking server serialises this itself."""
    path = tracking.sqlite_path(uri)
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


class RunStore:
    """One tracking store and experiment, through an explicit ``MlflowClient(uri)``."""

    def __init__(self, uri: str, experiment: str, artifact_location: str | None = None, retry_s: float = RETRY_S):
        self.uri = tracking.resolve_uri(str(uri))
        self.shown = redact.text(self.uri)
        self.experiment, self.retry_s = str(experiment), float(retry_s)
        self.artifact_location = artifact_location
        bound_mlflow_retries(self.retry_s)
        self._client: MlflowClient | None = None
        self._experiment_id: str | None = None

    @classmethod
    def from_config(cls, tcfg, experiment: str | None = None) -> RunStore:
        return cls(tcfg.uri, experiment or tcfg.experiment, tcfg.get("artifact_location"),
                   float(tcfg.retry_s))

    @property
    def client(self) -> MlflowClient:
        if self._client is None:  # SQLite: opening the store creates its schema, once, under the lock
            with _schema_lock(self.uri):
                self._client = self.call(self._open)
        return self._client

    def _open(self) -> MlflowClient:
        client = MlflowClient(self.uri)
        client.search_experiments(max_results=1)  # the store is created (its schema) and answers
        return client

    def call(self, fn, *args, retry_s: float | None = None, **kwargs):
        """``fn(*args, **kwargs)``, retried with exponential backoff while it fails transiently,
        for ``retry_s`` seconds (``tracking.retry_s``); then ``StoreError``."""
        budget = self.retry_s if retry_s is None else retry_s
        deadline, delay, tries = time.monotonic() + budget, FIRST_DELAY_S, 0  # one try may itself wait 20 s
        while True:
            try:
                result = fn(*args, **kwargs)
                if tries:
                    log.info("tracking store %s answers again (after %d retries)", self.shown, tries)
                return result
            except Exception as e:
                if isinstance(e, MlflowException) and e.error_code in DENIED_CODES:
                    raise StoreError(f"tracking store {self.shown}: {problem(e)}") from None
                if not transient(e):
                    raise
                now = time.monotonic()
                if now >= deadline:
                    raise StoreError(f"tracking store {self.shown}: {problem(e)} (still failing after "
                                     f"{budget:g} s of retries, tracking.retry_s)") from None
                if tries == 0:
                    log.warning("tracking store %s: %s; retrying for up to %g s", self.shown, problem(e), budget)
                tries += 1
                time.sleep(min(delay, max(0.0, deadline - now)))
                delay = min(delay * 2, MAX_DELAY_S)

    # --- experiments ---------------------------------------------------------------------

    def missing(self) -> bool:
        """A SQLite store whose file does not exist yet: nothing recorded (looking must not create it)."""
        return tracking.store_missing(self.uri)

    def experiment_id(self, create: bool = True) -> str | None:
        """The experiment's id, created once (a concurrent creator's wins); None if it does not
        exist and ``create`` is false."""
        if self._experiment_id is None:
            if not create and self.missing():
                return None
            self.client  # noqa: B018 - opened first: it takes the same (non-reentrant) lock
            with _schema_lock(self.uri):
                self._experiment_id = self._find_or_create(create)
        return self._experiment_id

    def _find_or_create(self, create: bool) -> str | None:
        experiment = self.call(self.client.get_experiment_by_name, self.experiment)
        if experiment is not None:
            return experiment.experiment_id
        if not create:
            return None
        location = self.artifact_location
        if location and "://" not in location:
            location = Path(location).resolve().as_uri()
        try:
            return self.call(self.client.create_experiment, self.experiment, artifact_location=location)
        except MlflowException:  # created meanwhile by a concurrent job
            return self.call(self.client.get_experiment_by_name, self.experiment).experiment_id


    # --- reading ---------------------------------------------------------------------------

    def search(self, filter_string: str = "", experiment_ids: list[str] | None = None, order_by=None,
               max_results: int | None = None) -> list:
        """Every run of the experiment (or ``experiment_ids``) matching ``filter_string``, all pages."""
        ids = experiment_ids if experiment_ids is not None else [self.experiment_id(create=False)]
        ids = [i for i in ids if i is not None]
        if not ids:
            return []
        out, token = [], None
        while True:
            page = self.call(self.client.search_runs, ids, filter_string or "", max_results=max_results or 1000,
                             order_by=order_by, page_token=token)
            out.extend(page)
            token = page.token
            if not token or (max_results and len(out) >= max_results):
                return out

    def metric_history(self, run_id: str, name: str) -> list[tuple[int, float]]:
        """Every (step, value) a run logged for the flat metric ``name`` (``dev_epoch_strict_f1``), by
        step; an adaptive search replays a reused run's dev curve into its trial (``bioner_grid.search``)."""
        history = self.call(self.client.get_metric_history, run_id, metric_name(name))
        if not history:  # a store written before the metric names were grouped
            history = self.call(self.client.get_metric_history, run_id, name)
        return sorted((int(m.step), real_value(m.value)) for m in history)

    def runs_with_key(self, key: str) -> list:
        """Runs carrying ``run_key=key``, newest first."""
        return self.search(f"tags.run_key = '{key}'", order_by=["attributes.start_time DESC"])

    def get_run(self, run_id: str):
        return self.call(self.client.get_run, run_id)

    def experiment_ids(self, names: list[str]) -> list[str]:
        """The ids of the named experiments that exist."""
        if self.missing():
            return []
        found = [self.call(self.client.get_experiment_by_name, n) for n in names]
        return [e.experiment_id for e in found if e is not None]

    def runs_frame(self, experiments: list[str], filter_string: str = ""):
        """The runs of the named experiments as a table: ``run_id``, ``status``, ``tags.*``,
        ``params.*`` and ``metrics.*`` (flat names, old and new stores alike), as the report reads them."""
        import pandas as pd

        rows = []
        for r in self.search(filter_string, experiment_ids=self.experiment_ids(experiments)):
            row = {"run_id": r.info.run_id, "status": r.info.status}
            row.update({f"tags.{k}": v for k, v in r.data.tags.items()})
            row.update({f"params.{k}": v for k, v in r.data.params.items()})
            row.update({f"metrics.{k}": v for k, v in corpus_figures(r.data.params).items()})  # params now, metrics before
            for k, v in r.data.metrics.items():  # a store holding both names of one metric: the grouped one
                name = f"metrics.{flat_metric(k)}"
                if name not in row or k != flat_metric(k):
                    row[name] = real_value(v)
            row["non_finite"] = ",".join(sorted({flat_metric(k) for k in non_finite(r.data.metrics)}))
            rows.append(row)
        return pd.DataFrame(rows)

    def artifact_root(self, run_id: str) -> str:
        return self.get_run(run_id).info.artifact_uri

    def list_artifacts(self, run_id: str) -> set[str]:
        return {a.path for a in self.call(self.client.list_artifacts, run_id)}

    def download(self, run_id: str, path: str, dst: str | None = None) -> Path:
        """An artifact of a run as a local file (a local artifact store's file is not copied by MLflow)."""
        return Path(self.call(self.client.download_artifacts, run_id, path, dst))

    def find_run(self, run_id: str):
        """The run, or ``LookupError`` (its one-line reason) when the store has no such run."""
        try:
            return self.get_run(run_id)
        except MlflowException as e:
            raise LookupError(problem(e)) from None

    def download_uri(self, artifact_uri: str) -> Path:
        """A ``models:/`` or ``runs:/`` URI's files, as a local folder; ``LookupError`` when there are none."""
        try:
            source = self.call(self._artifact_source, artifact_uri)
            return Path(self.call(mlflow.artifacts.download_artifacts, artifact_uri=source, tracking_uri=self.uri))
        except MlflowException as e:
            raise LookupError(problem(e)) from None

    def _artifact_source(self, uri: str) -> str:
        """Where a ``models:/`` URI's files are, looked up in this store. MLflow 3.17's
        ``download_artifacts(models:/…, tracking_uri=…)`` looks a logged model up in the global
        tracking store instead (``Logged model with ID … not found`` for any other store), so the
        logged model (``models:/m-…``) or registered version (``models:/name/version``,
        ``models:/name@alias``) is resolved here, through this store's client."""
        if not uri.startswith("models:/"):
            return uri  # runs:/ URIs are looked up with tracking_uri
        name, _, version = uri[len("models:/"):].partition("/")
        if not version and "@" not in name:
            return self.client.get_logged_model(name).artifact_location
        if "@" in name:
            name, alias = name.split("@", 1)
            version = self.client.get_model_version_by_alias(name, alias).version
        source = self.client.get_model_version_download_uri(name, version)
        return self._artifact_source(source) if source.startswith("models:/m-") else source  # a logged model's

    def load_text(self, run_id: str, path: str) -> str:
        return self.download(run_id, path).read_text(encoding="utf-8")

    def logged_models(self, run: object) -> list:
        """The models a run logged (MLflow's LoggedModel entities)."""
        return self.call(self.client.search_logged_models, experiment_ids=[run.info.experiment_id],
                         filter_string=f"source_run_id = '{run.info.run_id}'").to_list()

    def register_model(self, model_uri: str, name: str, tags: dict):
        """A new version of registered model ``name`` from ``model_uri``."""
        with mlflow.tracking._tracking_service.utils._use_tracking_uri(self.uri):
            return self.call(mlflow.register_model, model_uri, name, tags=tags)

    def model_flavors(self, model_uri: str) -> dict:
        """The flavors a logged model's ``MLmodel`` declares: its YAML only, nothing of the model is
        loaded (a pickled pyfunc's pickle is not read)."""
        with mlflow.tracking._tracking_service.utils._use_tracking_uri(self.uri):
            return dict(self.call(mlflow.models.get_model_info, model_uri).flavors)

    def model_versions(self, name: str) -> list:
        """Every version of registered model ``name`` (none when it does not exist)."""
        quoted = name.replace("'", "\\'")
        return list(self.call(self.client.search_model_versions, f"name = '{quoted}'"))

    # --- claiming a run --------------------------------------------------------------------

    def claim(self, run_id: str, settle_s: float = 2.0) -> bool:
        """Claim an unfinished run before continuing it: write a token, wait, read it back. Of jobs
        that claim the same run at the same moment only the last writer reads its own token and goes
        on; it marks the run alive at once, so that a later relaunch sees it in flight."""
        token = f"{identity.this_job()['host']}:{os.getpid()}:{time.time_ns()}"
        self.call(self.client.set_tag, run_id, identity.OPS + "claim", token)
        time.sleep(settle_s)
        if self.get_run(run_id).data.tags.get(identity.OPS + "claim") != token:
            return False
        self.set_tags(run_id, job_tags())
        return True

    def live_twin(self, run, now: float, heartbeat_s: float) -> str | None:
        """The run id of an older live RUNNING run with this run's key, started by another job at
        the same moment (both created a run; the earlier one, by start time then id, trains)."""
        me = (run.info.start_time, run.info.run_id)
        for r in self.runs_with_key(run.data.tags["run_key"]):
            if (r.info.run_id != run.info.run_id and r.info.status == "RUNNING"
                    and identity.is_live(r.data.tags, now, heartbeat_s) and (r.info.start_time, r.info.run_id) < me):
                return r.info.run_id
        return None

    # --- writing ---------------------------------------------------------------------------

    def set_tags(self, run_id: str, tags: dict) -> None:
        self.call(self.client.log_batch, run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def create_run(self, run_name: str | None = None, tags: dict | None = None):
        """A new RUNNING run in the experiment, with MLflow's context tags (``mlflow.user``,
        ``mlflow.source.name``, ``mlflow.source.type``) as ``mlflow.start_run`` would add them: the
        client call alone sets none, and the UI's User and Source columns read them."""
        from mlflow.tracking.context import registry as context

        tags = context.resolve_tags({k: str(v) for k, v in (tags or {}).items()})
        return self.call(self.client.create_run, self.experiment_id(), run_name=run_name, tags=tags)

    def open_run(self, run_id: str | None = None, run_name: str | None = None, tags: dict | None = None,
                 system_metrics: bool = False, description: str | None = None) -> OpenRun:
        """Start a new run, or continue ``run_id`` (RUNNING again, its tags updated), with its
        ``description`` (Markdown) when given."""
        if description is not None:
            tags = {**(tags or {}), MLFLOW_RUN_NOTE: description}
        if run_id is None:
            run = self.create_run(run_name, tags)
        else:
            self.call(self.client.update_run, run_id, status="RUNNING")
            self.set_tags(run_id, tags or {})
            run = self.get_run(run_id)
        return OpenRun(self, run, system_metrics, resumed=run_id is not None)

    def log_inputs(self, run_id: str, inputs: list) -> None:
        """Dataset inputs of a run. MLflow looks each dataset (name, digest) up in the experiment and
        inserts it when missing, so jobs logging the same corpus at the same moment (two schemes of
        one sweep) may all insert it, and all but one fail on the datasets table's unique constraint
        (nothing of theirs is written). The dataset exists then: trying again links it. Each such
        failure means another job has just created one of these datasets, hence at most one more
        try per dataset."""
        for tries_left in range(len(inputs), -1, -1):
            try:
                return self.call(self.client.log_inputs, run_id, datasets=inputs)
            except MlflowException as e:
                if not tries_left or not duplicate_dataset(e):
                    raise
                log.info("dataset inputs of run %s: created by another job at the same moment; linking them", run_id)

    def describe(self, run_id: str, markdown: str) -> None:
        """The run's description: the Markdown the UI shows on top of the run's page (MLflow's
        ``mlflow.note.content`` tag, what the page's "Edit description" writes). The page shows its
        first ~100 px (4-5 lines) and a "Show more" link: what matters comes first."""
        self.set_tags(run_id, {MLFLOW_RUN_NOTE: markdown})

    def delete_run(self, run_id: str) -> None:
        self.call(self.client.delete_run, run_id)

    def terminate(self, run_id: str, status: str, retry_s: float | None = None) -> None:
        self.call(self.client.set_terminated, run_id, status, retry_s=retry_s)

    def log_metric(self, run_id: str, name: str, value: float, step: int = 0) -> None:
        """One metric at once (outside training: a sweep's summary), under its MLflow name."""
        self.call(self.client.log_metric, run_id, metric_name(name), float(value), step=step)

    def log_text(self, run_id: str, text: str, path: str) -> None:
        self.call(self.client.log_text, run_id, text, path)

    def log_dict(self, run_id: str, data: dict, path: str) -> None:
        self.call(self.client.log_dict, run_id, data, path)

    def log_artifact(self, run_id: str, path: str | Path) -> None:
        self.call(self.client.log_artifact, run_id, str(path))

    def log_artifacts(self, run_id: str, folder: str | Path) -> None:
        self.call(self.client.log_artifacts, run_id, str(folder))

    def heartbeat(self, run_id: str, period: float) -> Heartbeat:
        return Heartbeat(self, run_id, period)


def job_tags() -> dict[str, str]:
    """Who runs this attempt, and a fresh heartbeat, as ``ops.*`` tags (``ops.host``, ``ops.pid``,
    ``ops.slurm_job_id`` under SLURM only, ``ops.heartbeat``)."""
    job = {k: v for k, v in identity.this_job().items() if v}  # no empty slurm_job_id outside SLURM
    return {**{identity.OPS + k: v for k, v in job.items()}, identity.OPS + "heartbeat": f"{time.time():.0f}"}


# ---------------------------------------------------------------------------------------------
# A run being trained


class MetricBuffer:
    """Metrics on their way to the store: ``add`` queues them (with their step and time) and
    returns at once; a background thread sends them in batches, retrying through an outage for
    the store's ``retry_s``. ``close`` waits until all are sent, or raises the ``StoreError`` that
    ended the retries."""

    def __init__(self, store: RunStore, run_id: str):
        self.store, self.run_id = store, run_id
        self._pending: list[Metric] = []
        self._cond = threading.Condition()
        self._closing = False
        self.error: StoreError | None = None
        self._thread = threading.Thread(target=self._flush_loop, name="metric-flush", daemon=True)
        self._thread.start()

    def add(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self.error is not None:
            raise self.error
        ms = int(time.time() * 1000)
        batch = [Metric(metric_name(k), float(v), ms, int(step or 0)) for k, v in metrics.items()]
        with self._cond:
            self._pending.extend(batch)
            self._cond.notify_all()

    def _flush_loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closing:
                    self._cond.wait()
                if not self._pending:
                    return
                batch = self._pending[:BATCH]
            try:
                self.store.call(self.store.client.log_batch, self.run_id, metrics=batch)
            except Exception as e:  # noqa: BLE001 - kept, and raised in the training thread
                self.error = e if isinstance(e, StoreError) else StoreError(f"tracking store {self.store.shown}: "
                                                                            f"{problem(e)}")
                with self._cond:
                    self._cond.notify_all()
                return
            with self._cond:
                del self._pending[:len(batch)]
                self._cond.notify_all()

    def close(self) -> None:
        """Send what is left (retrying for the store's budget); raise if it could not be sent."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join()
        if self.error is not None:
            raise self.error


class OpenRun:
    """A run being trained: its id, buffered metrics, and what the pipeline logs to it."""

    def __init__(self, store: RunStore, run, system_metrics: bool = False, resumed: bool = False):
        self.store, self.run_id, self.experiment_id = store, run.info.run_id, run.info.experiment_id
        self.metrics = MetricBuffer(store, self.run_id)
        self._monitor = None
        if system_metrics:
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            try:  # CPU, memory, disk (GPU with nvidia-ml-py) under system/*; nice to have, never fatal
                self._monitor = SystemMetricsMonitor(self.run_id, resume_logging=resumed, tracking_uri=store.uri)
                self._monitor.start()
            except Exception as e:  # noqa: BLE001
                log.warning("system metrics not logged: %s", e)
                self._monitor = None

    def get(self):
        return self.store.get_run(self.run_id)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Queued, never blocking (``MetricBuffer``); the names are made by ``metric_name``."""
        self.metrics.add(metrics, step)

    def log_params(self, params: dict) -> None:
        items = [Param(k, str(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow's log_batch limit on params per call
            self.store.call(self.store.client.log_batch, self.run_id, params=items[i:i + 100])

    def set_tags(self, tags: dict) -> None:
        self.store.set_tags(self.run_id, tags)

    def describe(self, markdown: str) -> None:
        self.store.describe(self.run_id, markdown)

    def log_text(self, text: str, path: str) -> None:
        self.store.log_text(self.run_id, text, path)

    def log_dict(self, data: dict, path: str) -> None:
        self.store.log_dict(self.run_id, data, path)

    def log_artifact(self, path: str | Path) -> None:
        self.store.log_artifact(self.run_id, path)

    def log_model(self, log_fn):
        """``log_fn(run_id)`` (the bundle's ``mlflow.models.Model.log`` call) against this store;
        MLflow's model logging reads the tracking URI from its global, set only around this call."""
        # MLflow creates the logged model in the *active* experiment (MLFLOW_EXPERIMENT_ID, else the
        # Default experiment "0"), not the source run's: without this the model's files went to
        # ./mlruns/0 under the working directory, outside tracking.artifact_location
        previous = os.environ.get("MLFLOW_EXPERIMENT_ID")
        os.environ["MLFLOW_EXPERIMENT_ID"] = self.experiment_id
        try:
            with mlflow.tracking._tracking_service.utils._use_tracking_uri(self.store.uri):
                return self.store.call(log_fn, self.run_id)
        finally:
            if previous is None:
                os.environ.pop("MLFLOW_EXPERIMENT_ID", None)
            else:
                os.environ["MLFLOW_EXPERIMENT_ID"] = previous

    def log_corpora(self, cfg) -> None:
        """Every input file of the run as an MLflow dataset input (name, SHA256 digest, context
        train/dev/test), so the runs table's Dataset column shows what a run was trained and scored on."""
        dataset = OmegaConf.to_container(cfg.dataset, resolve=True)
        digests = identity.corpus_digests(cfg)
        nodes = [(dataset["name"], dataset, "")] + [(m.get("name"), m, f"{m.get('name')}.")
                                                    for m in dataset.get("members") or []]
        inputs = []
        for name, node, prefix in nodes:
            for split in identity.FILE_KEYS:
                path, digest = node.get(split), digests.get(prefix + split)
                if not isinstance(path, str) or not digest:
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    source = resolve_dataset_source(str(Path(path).resolve()))
                # MLflow keeps 36 characters of a digest; the whole SHA256 is the run's data_sha256.* tag
                entity = MetaDataset(source, name=name, digest=digest[:16])._to_mlflow_entity()
                inputs.append(DatasetInput(entity, tags=[InputTag("mlflow.data.context", split)]))
        if inputs:
            self.store.log_inputs(self.run_id, inputs)

    def close(self, status: str, retry: bool = True) -> None:
        """Send the buffered metrics, then end the run with ``status``. If the metrics cannot be
        sent within the budget the run is marked FAILED (when the store takes that) and
        ``StoreError`` raised; ``retry=False`` (the store already failed): one try, no raise."""
        if self._monitor is not None:
            with contextlib.suppress(Exception):
                self._monitor.finish()
        try:
            self.metrics.close()
        except StoreError:
            with contextlib.suppress(Exception):
                self.store.terminate(self.run_id, "FAILED", retry_s=0)
            if retry:
                raise
            return
        try:
            self.store.terminate(self.run_id, status, retry_s=None if retry else 0)
        except StoreError:
            if retry:
                raise
            log.warning("run %s could not be marked %s: the tracking store does not answer", self.run_id, status)


class Heartbeat:
    """Refreshes the run's ``ops.heartbeat`` tag every ``period`` seconds from a daemon thread, so that a
    relaunch can tell this live job from a dead one (``identity.is_live``)."""

    def __init__(self, store: RunStore, run_id: str, period: float):
        self.store, self.run_id, self.period = store, run_id, period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="mlflow-heartbeat", daemon=True)

    def _beat(self):
        while not self._stop.wait(self.period):
            try:  # one try: a busy store must not hold the beat; the next one tries again
                self.store.client.set_tag(self.run_id, identity.OPS + "heartbeat", f"{time.time():.0f}")
            except Exception as e:  # noqa: BLE001
                log.warning("heartbeat of run %s not recorded: %s", self.run_id, problem(e))

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)
