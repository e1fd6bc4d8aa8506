"""Faults turned into one line and an exit code, before Hydra creates anything where it can be.

``Checks`` is a Hydra callback (``hydra.callbacks`` in ``conf/config.yaml``):
- ``on_run_start``, before the run folder exists: config values (``schema.check_config``), the
  run folder writable, the tracking store usable (``tracking.check_store``);
- ``on_multirun_start``: the sweep folder writable;
- ``on_job_start``, once Hydra has saved ``.hydra/*.yaml`` and set up logging: secrets masked in
  those files and in every log line (a sweep's ``multirun.yaml``: by the launcher).

Exit codes: 2 for bad input (configuration values, data), 1 for the environment (tracking store,
file system).

``bioner_grid.tracking`` (mlflow, ~1.3 s) is imported where used: ``bioner-grid`` imports this module
before Hydra parses the command line, so ``--help``, ``--cfg`` and tab completion stay fast.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from bioner_grid import errors, redact, schema

log = logging.getLogger("bioner_grid")


class JobFailed(SystemExit):
    """A job stopped with a one-line reason (already printed); ``code`` is its exit status. A
    sequential sweep catches it and goes on (``grid.on_error``)."""

    def __init__(self, code: int, reason: str):
        super().__init__(code)
        self.reason = reason


def one_line(e: BaseException) -> str:
    """The message of an error as one line (an OSError as ``path: reason``)."""
    if isinstance(e, OSError) and e.filename and e.strerror:
        return f"{e.filename}: {e.strerror}"
    return " | ".join(line.strip() for line in str(e).splitlines() if line.strip()) or type(e).__name__


def disk_full(e: BaseException) -> bool:
    """ENOSPC, also when a writer (safetensors, torch) wraps it in its own exception type."""
    return getattr(e, "errno", None) == errno.ENOSPC or "No space left on device" in str(e)


def exit_code(e: BaseException) -> int | None:
    """2 for bad input, 1 for the environment, None for anything else (a bug: keep its traceback)."""
    from bioner_grid.tracking import TrackingError

    if isinstance(e, errors.BionerError):  # errors.py's own types (tracking.split_credentials raises InputError)
        return e.exit_code
    if isinstance(e, (TrackingError, OSError)) or disk_full(e):
        return 1
    if isinstance(e, ValueError):  # DataError, ConfigError, and the checks that raise ValueError
        return 2
    return None


def _log_to_files(reason: str) -> None:
    """The reason into the job's log file too (the terminal gets it once, on stderr)."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "%s", (reason,), None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def fail(e: BaseException) -> JobFailed:
    """Print ``error: <one line>`` (secrets masked) and return the ``JobFailed`` to raise."""
    reason = redact.text(one_line(e))
    _log_to_files(reason)
    print(f"error: {reason}", file=sys.stderr, flush=True)
    return JobFailed(exit_code(e) or 1, reason)


def writable_folder(path: str | Path, what: str) -> None:
    """``path`` can be created (or written, if it exists), else ``OSError`` naming it."""
    path = Path(path).resolve()
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise PermissionError(13, f"{what} not writable", str(path))


def run_checks(config) -> None:
    from bioner_grid import tracking

    schema.check_config(config)
    writable_folder(OmegaConf.select(config, "hydra.run.dir"), "output folder (hydra.run.dir)")
    tracking.check_store(config.tracking)


def _guarded(check, config) -> None:
    redact.install_log_filter()
    try:
        check(config)
    except Exception as e:
        if exit_code(e) is None:
            raise
        raise fail(e) from None


class Checks(Callback):
    def on_run_start(self, config, **kwargs) -> None:
        _guarded(run_checks, config)

    def on_multirun_start(self, config, **kwargs) -> None:
        _guarded(lambda c: writable_folder(OmegaConf.select(c, "hydra.sweep.dir"), "sweep folder (hydra.sweep.dir)"),
                 config)

    def on_job_start(self, config, **kwargs) -> None:
        redact.install_log_filter()
        subdir = OmegaConf.select(config, "hydra.output_subdir")
        if subdir:
            for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
                redact.rewrite(Path(config.hydra.runtime.output_dir) / subdir / name)
