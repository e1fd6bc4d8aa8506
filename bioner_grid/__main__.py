"""`bioner-grid [overrides]` (or `python -m bioner_grid`): compose the config, run the pipeline (or a sweep with -m)."""

import logging

import hydra
from hydra.core.hydra_config import HydraConfig

from bioner_grid import guard
from bioner_grid.config import CONF_DIR  # also registers the train schema and ${safe_name:}

# The launchers of conf/hydra/launcher/* (launchers/hydra_plugins/bioner_grid_launcher) are found by
# Hydra's plugin discovery, in an editable install as in a wheel (pyproject.toml maps the
# hydra_plugins namespace); nothing here imports or registers them.

log = logging.getLogger("bioner_grid")


# conf/ of the clone, or the copy an installed wheel carries inside the package (bioner_grid.config)
@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def main(cfg) -> float | None:
    # torch, transformers, mlflow (seconds; preempt imports transformers): only once Hydra has parsed the
    # command line, so --help, --cfg and tab completion stay fast
    from bioner_grid import pipeline, preempt

    out = HydraConfig.get().runtime.output_dir
    preempt.install()  # a submitit job: SLURM's time-limit signal costs at most one step
    try:
        result = pipeline.run(cfg, out)
    except Exception as e:  # bad input (exit 2) or environment (exit 1): one line; a bug keeps its traceback
        if guard.exit_code(e) is None:
            raise
        if guard.disk_full(e) and not isinstance(e, OSError):  # e.g. safetensors' own error: name the folder
            e = OSError(28, f"no space left on device ({guard.one_line(e)})", out)
        raise guard.fail(e) from None
    preempt.done()
    # Hydra's JobReturn.return_value (what an optimising sweeper reads); None for a skipped run
    return None if result.get("skipped") else result["metrics"]["test_strict_f1"]


if __name__ == "__main__":
    main()
