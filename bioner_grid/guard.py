"""Faults turned into one line and an exit code, before Hydra creates anything where it can be.

``Checks`` is a Hydra callback (``hydra.callbacks`` in ``conf/config.yaml``):
- ``on_run_start``, before the run folder exists: config values (``schema.check_config``), the
  run folder writable, the tracking store usable (``tracking.check_store``);
- ``on_multirun_start``: the sweep folder writable;
- ``on_job_start``, once Hydra has saved ``.hydra/*.yaml`` and set up logging: secrets masked in
  those files and in every log line (a sweep's ``multirun.yaml``: by the launcher).

Exit codes and the one-line printer are ``bioner_grid.errors``' (2 for bad input, 1 for the
environment; a bug keeps its traceback); the config rules are ``bioner_grid.spec``'s.

``bioner_grid.tracking`` (mlflow, ~1.3 s) is imported where used: ``bioner-grid`` imports this module
before Hydra parses the command line, so ``--help``, ``--cfg`` and tab completion stay fast.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from hydra.experimental.callback import Callback
from omegaconf import OmegaConf

from bioner_grid import errors, redact, spec
from bioner_grid.errors import JobFailed, disk_full, fail, one_line  # noqa: F401 (their old home)

log = logging.getLogger("bioner_grid")


def writable_folder(path: str | Path, what: str) -> None:
    """``path`` can be created (or written, if it exists), else ``OSError`` naming it."""
    path = Path(path).resolve()
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise PermissionError(13, f"{what} not writable", str(path))


def run_checks(config) -> None:
    spec.check(config)  # before mlflow is imported (seconds): a bad config is refused at once
    from bioner_grid import tracking

    writable_folder(OmegaConf.select(config, "hydra.run.dir"), "output folder (hydra.run.dir)")
    tracking.check_store(config.tracking)


def _guarded(check, config) -> None:
    redact.install_log_filter()
    errors.guarded(check, config)


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
