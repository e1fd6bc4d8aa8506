"""What a run records, without MLflow (``bioner_grid.store`` talks to it): the tracking URI resolved
and its store checked in seconds, the params and tags of a run, and the checkpoints of all its
attempts with ``identity.decide``'s verdict on them."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sqlite3
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from omegaconf import OmegaConf

from bioner_grid import identity, redact
from bioner_grid.errors import InputError, StoreError

log = logging.getLogger(__name__)
TRAINER_STATE_NAME = "trainer_state.json"  # transformers.trainer.TRAINER_STATE_NAME, written last in a checkpoint

PARAM_LIMIT = 6000  # MLflow's maximum length of a param value
CHECK_TIMEOUT = 5  # seconds for the one request that tells whether a tracking server answers


TrackingError = StoreError  # the tracking store cannot be used; the message is one line naming the URI or path


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


SHOWN_PARAMS = ("scheme.name", "scheme.label", "model.display_name", "dataset.display_name")  # grid key and display name the report reads, besides the include list


def run_params(cfg) -> dict[str, str]:
    """The MLflow params of a run: the settings that define its result (``identity.defines_result``)
    and the grid keys, nothing operational (report, grid, tracking, paths, URLs)."""
    params = {k: v for k, v in flatten_params(cfg).items() if identity.defines_result(k) or k in SHOWN_PARAMS}
    # keys added later, at their defaults, are not params (as not in the run key: identity.drop_new_defaults,
    # identity.UNSET_PARAMS), so that the report's variant labels do not tell runs recorded before them
    # apart from new ones
    return {k: v for k, v in params.items() if ABSENT_PARAMS.get(k) != v}


NEW_PARAM_DEFAULTS = {"model.init": "None", "dataset.merge": "tags"}
# A param left out of a run at this value (logged only when set): what a missing one means when read back
ABSENT_PARAMS = {**identity.UNSET_PARAMS, **NEW_PARAM_DEFAULTS}


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
    """The grid keys (first, in ``GRID_KEYS`` order), the run and cell keys, the corpus digests and
    provenance every run carries as tags; the job's host is ``ops.host`` (``store.job_tags``)."""
    return {
        **identity.grid_values(cfg),
        "run_key": identity.run_key(cfg),
        "cell_key": identity.cell_key(cfg),
        **{f"data_sha256.{name}": digest for name, digest in identity.corpus_digests(cfg).items()},
        **git_state(),
    }


CORPUS = "corpus."  # the params holding a run's corpus figures (``corpus.train_sentences``)


def corpus_params(stats: dict[str, dict]) -> dict[str, str]:
    """A run's corpus figures (``data.split_stats`` per split) as params: ``corpus.<split>_sentences``,
    ``corpus.<split>_tokens``, ``corpus.<split>_n_{O,B,I}``. They are constant for a corpus, so as
    metrics they filled the UI's chart view with flat bar charts ahead of the scores; runs recorded
    before hold them as metrics ``data/<split>_...``, which ``store.run_metrics`` reads alike."""
    out = {}
    for split, s in stats.items():
        out.update({f"{CORPUS}{split}_sentences": s["sentences"], f"{CORPUS}{split}_tokens": s["tokens"]})
        out.update({f"{CORPUS}{split}_n_{c}": n for c, n in s["classes"].items()})
    return {k: str(v) for k, v in out.items()}


def pct(x) -> str:
    """An F1 fraction as a person reads it: percent, one decimal (``0.4312`` -> ``43.1``)."""
    return "—" if x is None else f"{100 * x:.1f}" if math.isfinite(x) else str(x)


def run_description(values: dict[str, str], metrics: dict | None = None, stopped: dict | None = None) -> str:
    """What a run is, in one Markdown line (its MLflow description, shown on top of its page):
    ``**tiny_bert** on **ncbi_disease**, scheme **welt**, lr 3e-05, batch 16, seed 1``, and once
    it is scored ``· dev strict F1 45.2 %, test strict F1 43.1 %``; a run stopped early says so
    first (``stopped``: its tags ``pruned``/``pruned_at_evaluation`` or ``collapsed``/``collapse_reason``),
    since its scores are those of a model that did not train to the end."""
    line = (f"**{values['model']}** on **{values['dataset']}**, scheme **{values['scheme']}**, lr {values['lr']}, "
            f"batch {values['batch_size']}, seed {values['seed']}")
    stopped = stopped or {}
    if stopped.get("pruned") == "true":
        line = (f"**Pruned** by the adaptive search after evaluation {stopped.get('pruned_at_evaluation', '?')} "
                f"(stopped early, left out of rankings): {line}")
    elif stopped.get("collapsed") == "true":
        line = (f"**Collapsed** at epoch {stopped.get('collapsed_at_epoch', '?')} ({stopped.get('collapse_reason', '')}; "
                f"stopped, shown as collapsed in reports): {line}")
    metrics = metrics or {}
    if metrics.get("test_strict_f1") is not None:
        dev = f"dev strict F1 {pct(metrics['dev_strict_f1'])} %, " if metrics.get("dev_strict_f1") is not None else ""
        line += f" · {dev}test strict F1 **{pct(metrics['test_strict_f1'])}** %"
    return line


# ---------------------------------------------------------------------------------------------
# Checkpoints of every attempt of a run


def checkpoint_dirs(run) -> list[str]:
    """The checkpoint folders of every attempt of a run (tag ``ops.checkpoint_dirs``, one per line;
    ``checkpoint_dirs`` in runs recorded before the prefix; runs recorded before it have only their
    ``output_dir``)."""
    tags = run.data.tags
    dirs = [d for d in identity.ops_tag(tags, "checkpoint_dirs").split("\n") if d]
    output_dir = identity.ops_tag(tags, "output_dir")
    legacy = str(Path(output_dir) / "checkpoints") if output_dir else None
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
