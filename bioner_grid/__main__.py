"""`bioner-grid [overrides]` (or `python -m bioner_grid`): compose the config, run the pipeline (or a sweep with -m)."""

import logging
import os
import sys

import hydra
from hydra.core.hydra_config import HydraConfig

from bioner_grid import cli, console, errors, redact, spec
from bioner_grid.config import CONF_DIR  # also registers the schemas and ${safe_name:}

# The launchers of conf/hydra/launcher/* (launchers/hydra_plugins/bioner_grid_launcher) are found by
# Hydra's plugin discovery, in an editable install as in a wheel (pyproject.toml maps the
# hydra_plugins namespace); nothing here imports or registers them.

log = logging.getLogger("bioner_grid")


# conf/ of the clone, or the copy an installed wheel carries inside the package (bioner_grid.config)
@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def app(cfg) -> float | None:
    # torch, transformers, mlflow (seconds; preempt imports transformers): only once Hydra has parsed the
    # command line, so --help, --cfg and tab completion stay fast
    from bioner_grid import pipeline, preempt

    console.install(transformers=True)  # again in a job's own process (submitit, SLURM), now transformers is loaded
    out = HydraConfig.get().runtime.output_dir
    preempt.install()  # a submitit job: SLURM's time-limit signal costs at most one step
    try:
        with preempt.stop_on_signals():  # SIGTERM/SIGINT (outside submitit): the run ends KILLED, resumable
            result = pipeline.run(cfg, out)
    except Exception as e:  # bad input (exit 2) or environment (exit 1): one line; a bug keeps its traceback
        if errors.classify(e) is None and not errors.disk_full(e):
            raise
        if errors.disk_full(e) and not isinstance(e, OSError):  # e.g. safetensors' own error: name the folder
            e = OSError(28, f"no space left on device ({errors.one_line(e)})", out)
        raise errors.fail(e) from None
    preempt.done()
    # Hydra's JobReturn.return_value (what an optimising sweeper reads); None for a skipped run
    return None if result.get("skipped") else result["metrics"]["test_strict_f1"]


def main() -> None:
    """The Hydra app, with Hydra's compose errors (a misspelt key, a value of the wrong type, an
    unknown option), raised before any of our code runs, as one ``error: <key>: <problem>`` line and
    exit 2. Hydra prints them itself (several lines, exit 1) unless ``HYDRA_FULL_ERROR`` is set, in
    which case it re-raises them: set here, so they reach this function; anything else keeps its
    full traceback (as a bug should)."""
    os.environ["HYDRA_FULL_ERROR"] = "1"
    sys.argv[1:] = console.take_flag(sys.argv[1:])  # -v/--verbose: the libraries' lines too (bioner_grid.console)
    console.install()
    if cli.completion_query(sys.argv[1:]):  # tab completion: Hydra's answer without the schema/ groups
        cli.filtered_completion(app)
        return
    try:
        app()
    except KeyboardInterrupt as e:
        if len(e.args) != 2:  # Ctrl-C before a run began (Hydra parsing the command line): Python's own
            raise
        line, code = e.args  # preempt.stop_on_signals: the line saying how to resume, 128 + the signal
        print(redact.text(line), file=sys.stderr, flush=True)
        sys.exit(code)
    except Exception as e:
        error = spec.compose_error(e) or errors.classify(e)
        if error is None:
            raise
        raise errors.fail(error) from None


if __name__ == "__main__":
    main()
