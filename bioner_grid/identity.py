"""What counts as the same experiment: one definition for skip-finished, resume, in-flight jobs and
the report's cells.

- ``run_key``: a hash of exactly what determines a run's result, written as an *include* list
  (``identity``): the model without its ``resources``, the dataset's reading settings with every
  input file replaced by its SHA256 (an edited corpus is a new key; the same bytes read from
  another folder are the same key), the scheme without its display label, ``train`` without its
  operational settings, the data caps, ``data.overlap`` where it drops training documents
  (``OVERLAP_OUT_OF_KEY`` explains the rule) and the FairEval focus. Launcher, resources, caches,
  mirrors, report, tracking and display settings are left out.
- ``cell_key``: the run key without the seed; the report averages seeds within one cell only.
- ``GRID_KEYS``: the six names a grid is spanned by, used by tags, ``result.json`` and the report.
- ``decide``: the skip/resume rule that both the launcher (before fan-out) and the job (at start) apply
  to the runs already recorded under a key.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path

from omegaconf import OmegaConf

from bioner_grid import cross
from bioner_grid.spec import DataSchema, TrainSchema

GRID_KEYS = ("model", "dataset", "scheme", "lr", "batch_size", "seed")

# train.* settings that change how a run is executed or kept, never what it computes.
TRAIN_OPERATIONAL = ("force", "keep_checkpoints", "checkpoint_steps", "device", "eval_batch_size", "save_model",
                     # the collapse sentinel ends early only a run whose result is already the all-O model's
                     # (bioner_grid.collapse): recorded keys stay as they were; train.force retrains one
                     "stop_collapsed", "collapse_after")
# data.* settings that change what a run computes (the rest are locations: root, cache, mirrors).
DATA_INCLUDED = ("max_train_sentences", "max_eval_sentences", "train_on", "overlap", "train_fraction", "train_documents")
# Result-defining settings that are in the key only when set (a learning curve's training size,
# another dataset's test split scored too): every run recorded before them keeps its key.
DATA_WHEN_SET = ("train_fraction", "train_documents")
EVALUATION_WHEN_SET = ("extra_tests", "type_map")
# Their params too are recorded only when set (an unset one would make every new run differ from the
# older ones in the report's variant labels: ``minilm (train_fraction=None)``).
UNSET_PARAMS = {**{f"data.{k}": "None" for k in DATA_WHEN_SET}, "evaluation.extra_tests": "[]", "evaluation.type_map": "None"}
FILE_KEYS = ("train", "dev", "test")
# Result-defining settings added after runs were recorded: at these defaults they are left out of the
# key, so that the runs recorded before them keep their keys (and are not run again).
# (The defaults are the schemas', bioner_grid.spec: one place.)
NEW_AT_DEFAULT = {("train", "select"): TrainSchema.select, ("data", "train_on"): DataSchema.train_on}
# data.overlap (bioner_grid.overlap) is in the key only where it changes what is trained, by this rule:
# - ``warn`` trains on exactly what every run recorded before the setting trained, and ``fail`` trains
#   on that too or stops before anything is recorded: both stay out of the key, so every key of the
#   BIO and PubTator corpora (default ``warn``) is what it was;
# - ``drop`` removes training documents, so it is in the key, also where it is the default (``dataset=aio``):
#   the all-in-one runs recorded before it trained on the documents it now removes, and must not
#   count as the FINISHED result of a configuration that leaves them out (``data.overlap=warn`` gives
#   such a run's key again). Unlike ``NEW_AT_DEFAULT``, this keeps a key only where the data trained
#   on is the same, not wherever the setting is at its default.
# The key is decided from the configuration, never by reading the corpus (``plan`` and a sweep's
# preflight key hundreds of jobs without reading one): ``drop`` on a corpus where nothing overlaps has a
# key of its own though it trains what ``warn`` trains, at worst a run repeated once.
OVERLAP_OUT_OF_KEY = ("warn", "fail")


def grid_values(cfg) -> dict[str, str]:
    """The grid keys of a configuration, as the strings every tag, result and table uses."""
    return {"model": cfg.model.name, "dataset": cfg.dataset.name, "scheme": cfg.scheme.name,
            "lr": str(cfg.train.lr), "batch_size": str(cfg.train.batch_size), "seed": str(cfg.train.seed)}


_digests: dict[tuple, str] = {}


def file_sha256(path: str | Path) -> str:
    """SHA256 of a file's bytes, computed once per (path, size, mtime) in this process."""
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_size, st.st_mtime_ns)
    if key not in _digests:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _digests[key] = h.hexdigest()
    return _digests[key]


def _digest_or_pin(path: str, pinned: str | None) -> str:
    """The file's SHA256; for a file not fetched yet, the SHA256 its config pins (what prefetch will
    verify it against), else ``missing``."""
    if Path(path).is_file():
        return file_sha256(path)
    return pinned or "missing"


def _with_digests(node: dict) -> tuple[dict, dict[str, str]]:
    """A dataset (or member) config with its input file paths replaced by their digests."""
    pins = {k: (v or {}).get("sha256") for k, v in (node.get("download") or {}).items()}
    out, digests = {}, {}
    for k, v in node.items():
        if k == "download":
            continue
        if k in FILE_KEYS and isinstance(v, str):
            digests[k] = out[k] = _digest_or_pin(v, pins.get(k))
        elif k == "members" and isinstance(v, list):
            out[k] = []
            for member in v:
                # added after all-in-one runs were recorded: in a member's key only when it strips something
                m, d = _with_digests({x: y for x, y in member.items() if x != "strip_suffixes" or y})
                out[k].append(m)
                digests.update({f"{member.get('name')}.{split}": sha for split, sha in d.items()})
        else:
            out[k] = v
    return out, digests


def corpus_digests(cfg) -> dict[str, str]:
    """SHA256 of every input file the dataset reads: ``{"train": …, "test": …}`` (all-in-one
    members as ``"<member>.train"``), recorded as tags so a user sees which data a run saw."""
    return _with_digests(OmegaConf.to_container(cfg.dataset, resolve=True))[1]


def identity(cfg, with_seed: bool = True) -> dict:
    """Everything that determines a run's result (the include list), as plain data."""
    model = OmegaConf.to_container(cfg.model, resolve=True)
    model.pop("resources", None)
    model.pop("display_name", None)  # how reports name it: no part of the result
    dataset, _ = _with_digests(OmegaConf.to_container(cfg.dataset, resolve=True))
    dataset.pop("display_name", None)
    drop_new_defaults(model, dataset)
    scheme = OmegaConf.to_container(cfg.scheme, resolve=True)
    scheme.pop("label", None)
    train = {k: v for k, v in OmegaConf.to_container(cfg.train, resolve=True).items() if k not in TRAIN_OPERATIONAL}
    if not with_seed:
        train.pop("seed", None)
    data = {k: cfg.data[k] for k in DATA_INCLUDED if k in cfg.data}  # a config from before a key existed lacks it
    for section, key in NEW_AT_DEFAULT:  # settings added later stay out of the key at their default
        part = {"train": train, "data": data}[section]
        if part.get(key) == NEW_AT_DEFAULT[section, key]:
            part.pop(key)
    if data.get("overlap") in (None, *OVERLAP_OUT_OF_KEY):  # None: a configuration from before the setting
        data.pop("overlap", None)
    for key in DATA_WHEN_SET:
        if data.get(key) is None:
            data.pop(key, None)
    out = {"model": model, "dataset": dataset, "scheme": scheme, "train": train, "data": data,
           "faireval_focus": cfg.evaluation.faireval_focus}
    extra = cross.extra_names(cfg)
    if extra:  # each extra test set by the digest of its test file: an edited file is a new key
        found = {n: cross.dataset_config(n, cfg) for n in extra}  # None: refused by spec.problems first
        out["extra_tests"] = {n: _digest_or_pin(str(ds.test), None) if ds is not None and ds.get("test") else "missing"
                              for n, ds in found.items()}
        type_map = OmegaConf.select(cfg, "evaluation.type_map")
        if type_map:
            out["type_map"] = OmegaConf.to_container(type_map)
    return out


def drop_new_defaults(model: dict, dataset: dict) -> None:
    """Keys added after runs were recorded (issue 22), left out at their defaults so those runs keep
    their keys: ``model.init`` (null), ``dataset.merge`` (tags), a member's ``types_only`` (null)."""
    if model.get("init") is None:
        model.pop("init", None)
    if dataset.get("merge") == "tags":
        dataset.pop("merge")
    for member in dataset.get("members") or []:
        if member.get("types_only") is None:
            member.pop("types_only", None)


def defines_result(param: str) -> bool:
    """Whether a flattened config key (as the runs' MLflow params name it, ``train.epochs``) belongs
    to the include list of ``identity``; input files count through their digests (tags ``data_sha256.*``)."""
    section, _, rest = param.partition(".")
    head = rest.split(".")[0]
    return {
        "model": head not in ("resources", "display_name"),
        "dataset": head not in (*FILE_KEYS, "download", "members", "display_name"),
        "scheme": rest not in ("name", "label"),
        "train": rest not in TRAIN_OPERATIONAL,
        "data": rest in DATA_INCLUDED,
        "evaluation": rest == "faireval_focus" or rest.split(".")[0] in EVALUATION_WHEN_SET,
    }.get(section, False)


def _hash(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_key(cfg) -> str:
    """Stable hash of what determines the run's result (see ``identity``)."""
    return _hash(identity(cfg))


def cell_key(cfg) -> str:
    """The run key without the seed: runs that differ only in their seed share a cell."""
    return _hash(identity(cfg, with_seed=False))


# ---------------------------------------------------------------------------------------------
# Liveness: a running job proves it is alive with a heartbeat tag; a relaunch never takes it over.


OPS = "ops."  # operational tags (liveness, claims, folders): prefixed so that the UI's tags panel groups them apart


def ops_tag(tags: dict[str, str], name: str) -> str:
    """An operational tag of a run (``ops.heartbeat``), or its unprefixed name in a run recorded
    before the prefix (``heartbeat``); "" when it has neither."""
    value = tags.get(OPS + name)
    return value if value is not None else tags.get(name, "")


def this_job() -> dict[str, str]:
    """Who is running: host, pid and (under SLURM) the job id, the same across requeues of one job."""
    job = os.environ.get("SLURM_JOB_ID", "")
    if os.environ.get("SLURM_ARRAY_JOB_ID"):
        job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ.get('SLURM_ARRAY_TASK_ID', '')}"
    return {"host": socket.gethostname(), "pid": str(os.getpid()), "slurm_job_id": job}


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def process_gone(tags: dict[str, str], host: str | None = None) -> bool:
    """Whether the process a run's ``ops.host``/``ops.pid`` tags name was on this host (``host``,
    default this machine's name) and has ended (a job or a sweep's launcher killed with SIGKILL:
    nothing it could do on its way out)."""
    pid = ops_tag(tags, "pid")
    return bool(pid) and ops_tag(tags, "host") == (host or socket.gethostname()) and not _pid_alive(pid)


def is_live(tags: dict[str, str], now: float, heartbeat_s: float, me: dict[str, str] | None = None) -> bool:
    """Whether the job behind a RUNNING run is still alive.

    Alive means: its heartbeat is younger than three periods, and it is not an earlier attempt of
    this very job (same SLURM job id: SLURM requeued it, so that attempt is gone) nor a process of
    this host that no longer exists. A run without a heartbeat (recorded before heartbeats) is dead.
    The tags are read as ``ops.*`` or, in runs recorded before the prefix, unprefixed (``ops_tag``)."""
    me = me or this_job()
    try:
        beat = float(ops_tag(tags, "heartbeat"))
    except ValueError:
        return False
    if now - beat > 3 * heartbeat_s:
        return False
    if me["slurm_job_id"] and ops_tag(tags, "slurm_job_id") == me["slurm_job_id"]:
        return False
    return not process_gone(tags, me["host"])


# ---------------------------------------------------------------------------------------------
# The skip/resume rule


@dataclass(frozen=True)
class Decision:
    """What to do with a configuration given its recorded runs.

    ``action``: ``finished`` (skip), ``in_flight`` (a live job runs it: skip), ``continue`` (go on in
    the unfinished run ``run_id``: from ``checkpoint`` when it left one, else from the start) or
    ``new`` (a new run; also after a FAILED one, which is kept)."""

    action: str
    run_id: str | None = None
    checkpoint: str | None = None

    @property
    def status(self) -> str:
        """The word ``plan`` shows: FINISHED, IN FLIGHT, STALE (to be continued) or TODO."""
        return {"finished": "FINISHED", "in_flight": "IN FLIGHT", "continue": "STALE"}.get(self.action, "TODO")


def decide(runs, force: bool, now: float, heartbeat_s: float, find_checkpoint=None, me=None) -> Decision:
    """The one skip/resume rule, applied to a key's runs (MLflow ``Run`` objects, newest first).

    1. a FINISHED run → ``finished`` (``force`` runs it again, as a new run);
    2. a RUNNING run whose job is alive (``is_live``) → ``in_flight``, never taken over;
    3. the newest stopped run (KILLED, or RUNNING with a dead job) or a FAILED one that left a
       complete checkpoint → ``continue`` in it, from that checkpoint (a stopped one without a
       checkpoint starts over in the same run, so that a key keeps one run);
    4. else ``new``.
    ``find_checkpoint(run)`` gives a run's newest complete checkpoint (None to skip that look-up)."""
    if not force:
        done = [r for r in runs if r.info.status == "FINISHED"]
        if done:
            return Decision("finished", done[0].info.run_id)
    live = [r for r in runs if r.info.status == "RUNNING" and is_live(r.data.tags, now, heartbeat_s, me)]
    if live:
        return Decision("in_flight", live[0].info.run_id)
    if force:
        return Decision("new")
    for r in runs:
        if r.info.status == "FINISHED":
            continue
        checkpoint = find_checkpoint(r) if find_checkpoint else None
        if checkpoint or r.info.status in ("KILLED", "RUNNING"):
            return Decision("continue", r.info.run_id, checkpoint)
    return Decision("new")
