"""`bioner-grid [overrides]` (or `python -m bioner_grid`): compose the config, run the pipeline (or a sweep with -m)."""

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.plugins import Plugins
from hydra_plugins.bioner_grid_launcher import grid_launcher

from bioner_grid.config import CONF_DIR
from bioner_grid.data import DataError

# Hydra finds plugins by walking hydra_plugins.__path__, which an editable install does not
# expose for launchers/; register our launchers (conf/hydra/launcher/*) by hand.
for _launcher in (grid_launcher.GridBasicLauncher, grid_launcher.GridSlurmLauncher, grid_launcher.GridSubmititLocalLauncher):
    Plugins.instance().register(_launcher)

log = logging.getLogger("bioner_grid")


# conf/ of the clone, or the copy an installed wheel carries inside the package (bioner_grid.config)
@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
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
