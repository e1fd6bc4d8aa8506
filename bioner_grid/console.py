"""What the terminal shows: bioner-grid's own lines; the libraries' chatter only with ``-v``.

A run or a sweep prints its progress, its results and its problems (``bioner_grid`` loggers, the
launcher, ``error:`` lines). The libraries underneath add status lines nobody acts on: MLflow's INFO
log, MLflow's and transformers' progress bars, a UserWarning from Hydra about our own launcher
config. ``install`` silences exactly those, each judged harmless below (why, next to each); every
warning and error of theirs that is not listed still shows, and so do any problem's own lines
(a failure raises, and ``errors.fail`` prints it).

``-v`` / ``--verbose`` on any command (``take_flag``), or ``BIONER_GRID_VERBOSE=1``, shows them all.
A switch in the environment rather than a config key: the chatter starts before any config exists
(Hydra warns while composing it), it must reach the jobs a launcher starts in other processes
(submitit's local processes and sbatch inherit the environment; a config key would have to be
threaded through every command, including the argparse ones, and it would land in every run's
``config.yaml``), and it changes nothing a run records.

Only the standard library here: ``install`` runs before Hydra parses the command line, so ``--help``
and tab completion stay fast. What belongs to a library not yet imported is set through its
environment variables (read when it is imported or when it draws a bar), or by ``install`` again
once it is imported (``transformers=True``).
"""

from __future__ import annotations

import logging
import os
import re
import time
import warnings

VERBOSE_ENV = "BIONER_GRID_VERBOSE"
FLAGS = ("-v", "--verbose")

# Environment variables that quiet a library, read whenever it logs or draws (so children inherit them).
QUIET_ENV = {
    # MLflow's INFO log: "Creating initial MLflow database tables", "Updating database tables" (a new
    # SQLite store), "Started/Stopping/Successfully terminated system metrics monitoring", "Skip logging
    # GPU metrics" (a CPU machine), "Validating input example against model signature". Status only:
    # what they announce is recorded in the run (system/* metrics, the model and its signature), and a
    # failure of any of them is a WARNING or an exception, which still shows.
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    # "Downloading artifacts" bars: MLflow reads the just-logged model back from the run's own artifact
    # store to validate its input example (milliseconds, local or our tracking server); a failed read raises.
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    # "🏃 View run … at: <url>" and "🧪 View experiment at: <url>", written straight to stdout when a
    # run on a tracking server ends: the job's own last line names the run, the sweep's the UI address.
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}

# transformers' progress bars that come and go in a second: reading a checkpoint's tensors into the
# model ("Loading weights") and writing the saved model's safetensors ("Writing model shards"). Hub
# downloads (prefetch, a first use) keep their bars: those take minutes and a person waits on them.
QUIET_BARS = ("Loading weights", "Writing model shards")

# A transformers "LOAD REPORT" is harmless when it lists only (a) UNEXPECTED checkpoint tensors (the
# pretraining heads a token tagger does not use: pooler.*, cls.predictions.*, lm_head.*), and (b) MISSING
# tensors of the token-classification head we fine-tune (classifier.*, the CRF's crf.*): newly initialised
# by design. Anything else (a MISSING encoder weight: the wrong checkpoint; MISMATCH; CONVERSION) still shows.
NEW_HEAD = ("classifier.", "crf.")
HARMLESS_STATUS = {"UNEXPECTED"}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")

# Warnings, matched by their text (re.match at the message's start) and category.
QUIET_WARNINGS = (
    # conf/hydra/launcher/submitit_local.yaml shadows hydra-submitit-launcher's config of the same name on
    # purpose (it lists every field of the plugin's schema and names our launcher class); Hydra 1.3 (pinned
    # <1.4 in pyproject.toml) matches it against that schema and warns that this matching is deprecated.
    # Nothing to act on for a user; only a Hydra upgrade would need the file renamed.
    (r"\s*'hydra/launcher/submitit_local' is validated against ConfigStore schema", UserWarning),
)


# Log lines of a library, matched by their text (a prefix of the message) under the logger that writes them.
QUIET_LOGS = {
    # The Trainer orders its checkpoints by modification time to delete old ones; two written within a
    # second (a short run, or a checkpoint at a signal beside a scheduled one) make it say so and order
    # them by step number instead, which is what the step-numbered names mean anyway.
    "transformers.trainer_utils": ("mtime may not be reliable on this filesystem",),
}


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def take_flag(argv: list[str]) -> list[str]:
    """``argv`` without ``-v``/``--verbose``; either one sets ``BIONER_GRID_VERBOSE=1`` for this
    process and every job it starts."""
    rest = [a for a in argv if a not in FLAGS]
    if len(rest) < len(argv):
        os.environ[VERBOSE_ENV] = "1"
    return rest


class LoadReportFilter(logging.Filter):
    """Drops a transformers LOAD REPORT that lists only what ``NEW_HEAD`` / ``HARMLESS_STATUS`` allow."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return "LOAD REPORT" not in message or not harmless_load_report(message)


class PrefixFilter(logging.Filter):
    """Drops the records whose message starts with one of ``prefixes`` (``QUIET_LOGS``)."""

    def __init__(self, prefixes: tuple[str, ...]):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


def harmless_load_report(message: str) -> bool:
    """Whether every row of the report (``key | STATUS | ...``) is an unused checkpoint tensor or a
    tensor of the new head."""
    rows = 0
    for line in _ANSI.sub("", message).splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) < 2 or cells[1] in ("", "Status") or set(cells[0]) <= {"-", "+"}:
            continue
        rows += 1
        key, status = cells[0], cells[1]
        if status not in HARMLESS_STATUS and not (status == "MISSING" and key.startswith(NEW_HEAD)):
            return False
    return rows > 0


def _quiet_bar(factory, args, kwargs):
    """transformers' tqdm hook: the bars of ``QUIET_BARS`` drawn disabled, every other one as it is."""
    if kwargs.get("desc") in QUIET_BARS:
        kwargs = {**kwargs, "disable": True}
    return factory(*args, **kwargs)


# (logger, filter) pairs install adds (and -v takes away): the load report where transformers logs
# it, and the prefixes of QUIET_LOGS
_LOG_FILTERS = [(name, LoadReportFilter()) for name in ("transformers.modeling_utils", "transformers.modeling_layers")]
_LOG_FILTERS += [(name, PrefixFilter(prefixes)) for name, prefixes in QUIET_LOGS.items()]
_SET: dict[str, str] = {}  # the variables of QUIET_ENV that install set (a user's own are left alone)


def install(transformers: bool = False) -> None:
    """Apply the switch: silence the known third-party lines, or (``-v``) let them all through.
    Idempotent, and either way round in one process (the tests run both); call it at a command's start
    and again, with ``transformers=True``, once transformers is imported (or to import it)."""
    loud = verbose()
    for name, value in QUIET_ENV.items():
        if loud and name in _SET:
            if os.environ.get(name) == _SET.pop(name):
                del os.environ[name]
        elif not loud and name not in os.environ:
            os.environ[name] = _SET[name] = value
    # mlflow sets its logger's level from MLFLOW_LOGGING_LEVEL once, when imported: maybe already
    logging.getLogger("mlflow").setLevel(os.environ.get("MLFLOW_LOGGING_LEVEL", "INFO").upper())
    for pattern, category in QUIET_WARNINGS:  # the newest filter for the same text wins
        warnings.filterwarnings("default" if loud else "ignore", message=pattern, category=category)
    for name, log_filter in _LOG_FILTERS:
        logger = logging.getLogger(name)
        logger.removeFilter(log_filter)
        if not loud:
            logger.addFilter(log_filter)
    if transformers:
        from transformers.utils import logging as hf_logging

        hf_logging.set_tqdm_hook(None if loud else _quiet_bar)


# ---------------------------------------------------------------------------------------------
# A sweep's progress


def duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def job_line(n: int, total: int, started: float, what: str, now: float | None = None) -> str:
    """``job 3/12  scheme=welt train.lr=3e-4  elapsed 4m10s, about 18m45s left``: the job about to
    start (1-based), the sweep's time so far, and what is left at the mean time per finished job
    (a plain mean: the jobs of a sweep are alike; the first job has no estimate yet)."""
    elapsed = (time.monotonic() if now is None else now) - started
    done = n - 1
    eta = f", about {duration(elapsed / done * (total - done))} left" if done else ""
    return f"job {n}/{total}  " + (f"{what}  " if what else "") + f"elapsed {duration(elapsed)}{eta}"
