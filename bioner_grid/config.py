"""Config composition for the commands that are not Hydra apps (`bioner_grid.data`, tests)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import DictConfig

from bioner_grid import schema

schema.register()  # conf/train/*.yaml name the train/schema node; hydra.run.dir uses ${safe_name:}

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"


def compose(overrides: list[str] | None = None, config_name: str = "config") -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with command-line style overrides, as the main app does."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides or []))
