"""`python -m bioner_grid [overrides]`: compose the config, run the pipeline (or a sweep with -m)."""

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig

from bioner_grid.data import DataError

log = logging.getLogger("bioner_grid")


@hydra.main(version_base="1.3", config_path="../conf", config_name="config")
def main(cfg) -> float:
    from bioner_grid import pipeline  # heavy imports after Hydra has parsed the command line

    try:
        result = pipeline.run(cfg, HydraConfig.get().runtime.output_dir)
    except (DataError, ValueError) as e:
        log.error("%s", e)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    return None if result.get("skipped") else result["metrics"]["test_strict_f1"]


if __name__ == "__main__":
    main()
