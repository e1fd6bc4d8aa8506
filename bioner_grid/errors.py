"""What a user can get wrong, and what the machine can: a small hierarchy and one printer.

Every command (the run, a sweep, ``plan``, ``report``, ``register``, ``tag``, ``data``, ``evaluate``,
``prefetch``) ends a failure the same way: ``error: <where>: <problem>`` on one line, secrets
masked, and an exit status that says whose fault it was:

- ``InputError`` (exit 2): bad input the user can fix: a config key or value (``ConfigError``),
  a corpus file (``DataError``), a command-line argument;
- ``EnvError`` (exit 1): the environment: the tracking store (``StoreError``), the file system,
  a full disk, a missing package or model.

Anything else is a bug (an internal invariant that failed): it is not caught here and keeps its
traceback. The message of an error is ``<where>: <problem>``, where ``where`` is a file and line,
a config key or a store URI.
"""

from __future__ import annotations

import errno
import logging
import sys

from bioner_grid import redact

log = logging.getLogger("bioner_grid")


class BionerError(Exception):
    """A failure the user is told about in one line; ``exit_code`` says whose it is."""

    exit_code = 1


class InputError(BionerError):
    """Bad input: a config key or value, a corpus file, an argument. Exit 2."""

    exit_code = 2


class ConfigError(InputError):
    """A configuration that cannot run; the message names the key (``train.lr=abc: ...``)."""


class DataError(InputError):
    """A corpus or input file that cannot be used; the message names file and line."""


class EnvError(BionerError):
    """The environment: file system, disk, packages, network. Exit 1."""


class StoreError(EnvError):
    """The tracking store cannot be used (after retrying what was transient); the message names it."""


class JobFailed(SystemExit):
    """A command stopped with a one-line reason (already printed); ``code`` is its exit status. A
    sequential sweep catches it and goes on (``grid.on_error``)."""

    def __init__(self, code: int, reason: str):
        super().__init__(code)
        self.reason = reason


def disk_full(e: BaseException) -> bool:
    """ENOSPC or EDQUOT (a quota is a full disk of one's own), also when a writer (safetensors,
    torch) wraps it in its own exception type."""
    return (getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
            or "No space left on device" in str(e) or "Disk quota exceeded" in str(e))


def one_line(e: BaseException) -> str:
    """The message of an error as one line (an OSError as ``path: reason``)."""
    if isinstance(e, OSError) and e.filename and e.strerror:
        return f"{e.filename}: {e.strerror}"
    return " | ".join(line.strip() for line in str(e).splitlines() if line.strip()) or type(e).__name__


def classify(e: BaseException) -> BionerError | None:
    """``e`` as a user-facing error, or None for a bug (which keeps its traceback): our own types
    as they are, an OSError or a full disk as ``EnvError``."""
    if isinstance(e, BionerError):
        return e
    if isinstance(e, OSError) or disk_full(e):
        return EnvError(one_line(e))
    return None


def _log_to_files(reason: str) -> None:
    """The reason into the job's log file too (the terminal gets it once, on stderr)."""
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, "%s", (reason,), None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def fail(e: BaseException) -> JobFailed:
    """The one printer: ``error: <where>: <problem>`` on stderr (and the job's log file), secrets
    masked; returns the ``JobFailed`` to raise. ``e`` must be user-facing (``classify``)."""
    user = classify(e)
    code = user.exit_code if user is not None else 1
    reason = redact.text(one_line(user if user is not None else e))
    _log_to_files(reason)
    print(f"error: {reason}", file=sys.stderr, flush=True)
    return JobFailed(code, reason)


def guarded(fn, *args, **kwargs):
    """Call ``fn``; a user-facing error becomes the printed line and its exit status (``JobFailed``),
    anything else keeps its traceback. The commands' ``main`` functions run through this."""
    try:
        return fn(*args, **kwargs)
    except Exception as e:
        if classify(e) is None:
            raise
        raise fail(e) from None
