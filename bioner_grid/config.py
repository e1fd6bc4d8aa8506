"""Config composition for the commands that are not Hydra apps (`bioner_grid.data`, tests)."""

from __future__ import annotations

from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import DictConfig

from bioner_grid import schema

schema.register()  # conf/train/*.yaml name the train/schema node; hydra.run.dir uses ${safe_name:}

def _conf_dir() -> Path:
    """``conf/``: inside the package in an installed wheel (``bioner_grid/conf``), else the
    repository's top-level ``conf/`` (a clone, an editable install)."""
    here = Path(__file__).resolve().parent
    packaged = here / "conf"
    return packaged if (packaged / "config.yaml").is_file() else here.parent / "conf"


CONF_DIR = _conf_dir()


def compose(overrides: list[str] | None = None, config_name: str = "config") -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with command-line style overrides, as the main app does."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return hydra_compose(config_name=config_name, overrides=list(overrides or []))
