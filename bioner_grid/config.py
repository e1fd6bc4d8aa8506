"""Config composition for the commands that are not Hydra apps (``plan``, ``data``, ``report``,
``register``, ``prefetch``, tests): the same ``conf/`` and schemas as the main app, and a compose
failure (a misspelt key, a value of the wrong type) as one ``ConfigError`` line naming the key."""

from __future__ import annotations

from pathlib import Path

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import DictConfig

from bioner_grid import spec

spec.register()  # the group yamls name the schemas; hydra.run.dir uses ${safe_name:}


def _conf_dir() -> Path:
    """``conf/``: inside the package in an installed wheel (``bioner_grid/conf``), else the
    repository's top-level ``conf/`` (a clone, an editable install)."""
    here = Path(__file__).resolve().parent
    packaged = here / "conf"
    return packaged if (packaged / "config.yaml").is_file() else here.parent / "conf"


CONF_DIR = _conf_dir()


def compose(overrides: list[str] | None = None, config_name: str = "config", return_hydra_config: bool = False) -> DictConfig:
    """Compose ``conf/<config_name>.yaml`` with command-line style overrides, as the main app does;
    ``ConfigError`` (exit 2) when they do not compose."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose_here(list(overrides or []), config_name, return_hydra_config)


def compose_here(overrides: list[str], config_name: str = "config", return_hydra_config: bool = False) -> DictConfig:
    """``compose`` inside an ``initialize_config_dir`` block the caller holds (many configs, one set-up)."""
    try:
        return hydra_compose(config_name=config_name, overrides=overrides, return_hydra_config=return_hydra_config)
    except Exception as e:
        error = spec.compose_error(e)
        if error is None:
            raise
        raise error from None


def compose_jobs(jobs: list[list[str]], config_name: str = "config") -> list[DictConfig]:
    """``compose_here`` of every override list of a sweep, at a small part of the cost
    (``bioner_grid.compose.SweepComposer``: each file parsed once, the swept groups' nodes reused);
    the same configs and the same ``ConfigError`` as ``compose_here`` one by one."""
    from hydra.core.global_hydra import GlobalHydra

    from bioner_grid.compose import SweepComposer

    composer = SweepComposer(GlobalHydra.instance().hydra.config_loader, config_name)
    out = []
    for overrides in jobs:
        try:
            out.append(composer.compose(list(overrides), hydra=False))
        except Exception as e:
            error = spec.compose_error(e)
            if error is None:
                raise
            raise error from None
    return out
