"""Console scripts (``bioner-grid-plan`` …, declared in pyproject.toml), beside the ``python -m`` forms.

Every command but the main one takes Hydra overrides (``key=value``) and prints its usage for
``-h``/``--help``; ``bioner-grid`` itself is the Hydra app (``bioner-grid --help``). Every command
ends a failure the same way (``bioner_grid.errors``): ``error: <where>: <problem>`` on one line,
exit 2 for bad input, 1 for the environment; a bug keeps its traceback.
"""

from __future__ import annotations

import importlib
import sys

from bioner_grid import errors

COMMANDS = {  # console script -> module
    "bioner-grid-plan": "plan",
    "bioner-grid-report": "report",
    "bioner-grid-data": "data",
    "bioner-grid-prefetch": "prefetch",
    "bioner-grid-evaluate": "evaluate",
}
OVERRIDES = ("Arguments are Hydra overrides (key=value, as for `bioner-grid`); "
             "`bioner-grid --help` lists the config groups and `bioner-grid --cfg job` the composed config.")


def usage(module_name: str, doc: str | None) -> str:
    script = next((s for s, m in COMMANDS.items() if m == module_name), f"python -m bioner_grid.{module_name}")
    return f"usage: {script} [key=value ...]   (or python -m bioner_grid.{module_name})\n\n{(doc or '').strip()}\n\n{OVERRIDES}"


def run(module_name: str, argv: list[str] | None = None) -> int:
    """Run ``bioner_grid.<module_name>.main(argv)`` through ``errors.guarded`` (a user-facing error
    is one printed line and its exit status), or print its usage for -h/--help."""
    argv = sys.argv[1:] if argv is None else argv
    module = importlib.import_module(f"bioner_grid.{module_name}")
    if module_name not in ("evaluate", "tag", "tag_compare") and any(a in ("-h", "--help") for a in argv):  # they have their own
        print(usage(module_name, module.__doc__))
        return 0
    try:
        return errors.guarded(module.main, argv)
    except errors.JobFailed as e:
        return e.code


def plan() -> None:
    sys.exit(run("plan"))


def report() -> None:
    sys.exit(run("report"))


def data() -> None:
    sys.exit(run("data"))


def prefetch() -> None:
    sys.exit(run("prefetch"))


def evaluate() -> None:
    sys.exit(run("evaluate"))
