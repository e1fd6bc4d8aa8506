"""Checks on configuration values, before anything is trained or recorded.

Two layers:
- a structured schema for the ``train`` block (``TrainSchema``, registered in Hydra's ConfigStore
  as ``train/schema`` and named first in ``conf/train/*.yaml``'s defaults, as
  hydra-submitit-launcher does for its own config): a value of the wrong type (``train.lr=abc``)
  fails at compose time with the key named. The schema is *open*: keys it does not list are
  accepted untyped, so a new ``train`` key in a yaml file works without touching this file (add a
  field here to type it);
- a structured schema for the top-level ``grid`` block (``GridSchema``, ``grid/schema``, named in
  ``conf/config.yaml``'s defaults), so that code reads ``cfg.grid.wait`` with no default of its
  own. It is *closed*: only code reads these keys, so one it does not list is a typo
  (``grid.skip_finshed=false``) and fails at compose time, as does a value of the wrong type;
- ``config_problems``: value checks on the composed config (positive sizes, fractions in (0, 1),
  names that are safe in file paths), each message naming the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf


class ConfigError(ValueError):
    """A configuration value that cannot run; the message names the key."""


@dataclass
class TrainSchema:
    lr: float = 1e-4
    batch_size: int = 32
    eval_batch_size: int = 64
    epochs: int = 5
    max_steps: int = -1
    seed: int = 42
    max_seq_length: int = 128
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_accum: int = 1
    patience: Optional[int] = 2
    precision: str = "auto"
    device: str = "auto"
    length_grouped: bool = True
    checkpoint_steps: Optional[int] = None
    keep_checkpoints: bool = False
    force: bool = False


@dataclass
class GridSchema:
    """How a sweep launches (``conf/config.yaml`` documents each key): read by the launchers,
    ``plan`` and every job."""

    name: str = "adhoc"
    preflight: bool = True
    skip_finished: bool = True
    wait: bool = True
    heartbeat_s: float = 60.0
    on_error: str = "continue"  # continue | stop (checked by grid_problems, naming the key)


def register() -> None:
    """Store the ``train`` schema (open to keys it does not list) and the ``grid`` schema (closed)
    in Hydra's ConfigStore."""
    node = OmegaConf.structured(TrainSchema)
    OmegaConf.set_struct(node, False)  # typed where listed, open to new keys
    ConfigStore.instance().store(group="train", name="schema", node=node)
    ConfigStore.instance().store(group="grid", name="schema", node=GridSchema)
    OmegaConf.register_new_resolver("safe_name", safe_name, replace=True)


SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]*")
PATH_NAMES = ("model.name", "dataset.name", "scheme.name")  # they name run folders (hydra.run.dir)


def safe_name(name) -> str:
    """``name`` with every character that is not safe in a file name replaced by ``_`` (the
    ``${safe_name:...}`` resolver of ``hydra.run.dir``): no ``/``, no leading ``.``."""
    text = re.sub(r"[^A-Za-z0-9._+=-]", "_", str(name))
    return "_" + text if text.startswith(".") or not text else text


def _number(cfg, key: str):
    value = OmegaConf.select(cfg, key)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def train_problems(cfg) -> list[str]:
    t = cfg.train
    problems = []
    for key in ("batch_size", "eval_batch_size", "grad_accum", "max_seq_length"):
        if t.get(key) is not None and t[key] <= 0:
            problems.append(f"train.{key}={t[key]}: must be a positive integer")
    if t.get("lr") is not None and t.lr <= 0:
        problems.append(f"train.lr={t.lr}: must be > 0")
    capped = t.get("max_steps") is not None and t.max_steps > 0
    if not capped and t.get("epochs") is not None and t.epochs <= 0:
        problems.append(f"train.epochs={t.epochs}: must be > 0 (or set train.max_steps > 0)")
    for key in ("checkpoint_steps", "patience"):
        if t.get(key) is not None and t[key] < (1 if key == "checkpoint_steps" else 0):
            problems.append(f"train.{key}={t[key]}: must be {'> 0' if key == 'checkpoint_steps' else '>= 0'} or null")
    if t.get("warmup_ratio") is not None and not 0 <= t.warmup_ratio < 1:
        problems.append(f"train.warmup_ratio={t.warmup_ratio}: must be in [0, 1)")
    return problems


def data_problems(cfg) -> list[str]:
    problems = []
    for key in ("data.max_train_sentences", "data.max_eval_sentences"):
        value = OmegaConf.select(cfg, key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            problems.append(f"{key}={value}: must be a positive integer or null (the whole split)")
    for key in ("dataset.dev_fraction", "dataset.split"):
        value = OmegaConf.select(cfg, key)
        if value is None:
            continue
        if _number(cfg, key) is None or not 0 < value < 1:
            problems.append(f"{key}={value}: must be a fraction in (0, 1)")
    return problems


def grid_problems(cfg) -> list[str]:
    value = cfg.grid.on_error
    return [] if value in ("continue", "stop") else [f"grid.on_error={value}: must be continue or stop"]


def name_problems(cfg) -> list[str]:
    problems = []
    for key in PATH_NAMES:
        value = OmegaConf.select(cfg, key)
        if value is not None and not SAFE_NAME.fullmatch(str(value)):
            problems.append(f"{key}={value!r}: names go into file paths; use letters, digits and . _ + = - "
                            "(not starting with .)")
    return problems


def config_problems(cfg) -> list[str]:
    """Every value problem of a composed config, each naming its key."""
    return train_problems(cfg) + data_problems(cfg) + name_problems(cfg) + grid_problems(cfg)


def check_config(cfg) -> None:
    """Raise ``ConfigError`` naming every bad value (one line per key)."""
    problems = config_problems(cfg)
    if problems:
        raise ConfigError("; ".join(problems))
