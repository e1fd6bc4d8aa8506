"""Secrets never written or printed: ``user:pass@`` in URIs (as typed, Hydra-escaped or
percent-encoded) and values of keys that look like tokens or passwords are replaced by ``REDACTED``
in params, artifacts, result.json, Hydra's saved configs, log lines and every line a command prints. Credentials belong in ``MLFLOW_TRACKING_USERNAME`` /
``MLFLOW_TRACKING_PASSWORD`` (``tracking.split_credentials`` moves them there from a URI).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from omegaconf import OmegaConf

MASK = "REDACTED"  # a plain YAML scalar, unlike ***
# ``scheme://user:pass@`` as written, and as Hydra writes an override value into ``overrides.yaml``,
# ``hydra.yaml`` (``override_dirname``) and its log lines: every ``\ ( ) [ ] { } : = ,`` space and
# tab escaped by a backslash (``http\://user\:pass@``), the backslash doubled once more in a Python
# repr or a JSON string. The userinfo runs to the last ``@`` before a ``/`` or a blank, so that a
# password holding a raw ``@`` is masked whole.
USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*\\*://)(?:\\.|[^/\s\\])*@")
# the same with the URI itself percent-encoded (``http%3A%2F%2Fuser%3Apass%40host``, a URI in a query
# string); a userinfo whose own characters are percent-encoded (``user:p%40ss@``) is the plain case
USERINFO_ENCODED = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*%3A%2F%2F)(?:(?!%2F)[^/\s&#?])*%40", re.IGNORECASE)
SECRET_WORDS = r"(?:password|passwd|secret|token|api_?key|access_?key|credentials?)"
SECRET_KEY = re.compile(rf"(?:^|[._-]){SECRET_WORDS}$", re.IGNORECASE)
# key=value (overrides, log lines) and key: value (YAML) where the key looks like a secret; the value
# plain (Hydra's backslash escapes included) or quoted
SECRET_PAIR = re.compile(rf"(?<![A-Za-z0-9])(?P<key>(?:[A-Za-z0-9_.-]*[._-])?{SECRET_WORDS})(?![A-Za-z0-9])"
                         r"(?P<sep>\s*\\?[:=]\s*)"
                         r"(?P<value>'(?:\\.|[^'\\])*'|\"(?:\\.|[^\"\\])*\"|(?:\\.|[^\s'\",}\]\\])+)", re.IGNORECASE)
# a block-style YAML line ``  token: value`` (``- token: value``): its value runs to the end of the
# line, commas and blanks included (``config.yaml`` of a token ``a,b``)
SECRET_LINE = re.compile(rf"^(?P<key>[ \t]*(?:-[ \t]+)?(?:[A-Za-z0-9_.-]*[._-])?{SECRET_WORDS}:[ \t]+)"
                         r"(?P<value>[^\s{\[].*?)[ \t]*$", re.IGNORECASE | re.MULTILINE)
UNSET = ("null", "None", "''", '""', MASK)  # values that hold no secret: left as they are


def is_secret_key(key: str) -> bool:
    """``password``, ``hf_token``, ``tracking.api_key`` ... (the last dotted part); not ``tokenizer``."""
    return bool(SECRET_KEY.search(str(key).rsplit(".", 1)[-1]))


def text(s: str) -> str:
    """``s`` with URI credentials and ``secret_key=value`` / ``secret_key: value`` masked."""
    s = USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", s)
    s = USERINFO_ENCODED.sub(lambda m: f"{m['scheme']}{MASK}%40", s)
    s = SECRET_LINE.sub(lambda m: m[0] if m["value"] in UNSET else f"{m['key']}{MASK}", s)
    return SECRET_PAIR.sub(lambda m: m[0] if m["value"] in UNSET else f"{m['key']}{m['sep']}{MASK}", s)


def value(key: str, v):
    """A config leaf as it may be written: masked when its key looks secret, URIs cleaned."""
    if v is not None and v != "" and is_secret_key(key):
        return MASK
    return text(v) if isinstance(v, str) else v


def container(obj, key: str = ""):
    """A plain dict/list (e.g. a resolved config) with every secret masked."""
    if isinstance(obj, dict):
        return {k: container(v, str(k)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [container(v, key) for v in obj]
    return value(key, obj)


def config_yaml(cfg) -> str:
    """The resolved config as YAML, secrets masked (the ``config.yaml`` artifact)."""
    return OmegaConf.to_yaml(OmegaConf.create(container(OmegaConf.to_container(cfg, resolve=True))))


def rewrite(path: str | Path) -> None:
    """Mask secrets in a text file in place (Hydra's ``.hydra/*.yaml``, ``multirun.yaml``)."""
    path = Path(path)
    if path.is_file():
        old = path.read_text(encoding="utf-8")
        new = text(old)
        if new != old:
            path.write_text(new, encoding="utf-8")


class RedactFilter(logging.Filter):
    """Masks secrets in every log record passing a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = text(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


def install_log_filter() -> None:
    """Add ``RedactFilter`` to the handlers of the root and ``mlflow`` loggers (once each)."""
    for logger in (logging.getLogger(), logging.getLogger("mlflow")):
        for handler in logger.handlers:
            if not any(isinstance(f, RedactFilter) for f in handler.filters):
                handler.addFilter(RedactFilter())
