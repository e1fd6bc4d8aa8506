"""Moved to ``bioner_grid.spec`` (the one run specification: schemas and rules); these names stay
importable from here for code written against the old module."""

from bioner_grid.errors import ConfigError  # noqa: F401
from bioner_grid.spec import GridSchema, TrainSchema, check as check_config, problems as config_problems  # noqa: F401
from bioner_grid.spec import register, safe_name  # noqa: F401
