"""Console scripts (``bioner-grid-plan`` …, declared in pyproject.toml), beside the ``python -m`` forms.

Every command prints a description and examples for ``-h``/``--help`` (``HELP`` here; ``bioner-grid``
itself: ``conf/hydra/help/bioner_grid.yaml``), takes ``-v``/``--verbose`` (the libraries' log lines
too: ``bioner_grid.console``), and ends a failure the same way (``bioner_grid.errors``):
``error: <where>: <problem>`` on one line, exit 2 for bad input, 1 for the environment; a bug keeps
its traceback. The commands that read the configuration (plan, report, data, register, prefetch,
tag, tag-compare) complete their overrides on the shell's tab with Hydra's completion (``-sc install=bash``).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import sys
import textwrap
from pathlib import Path

from bioner_grid import console, errors

COMMANDS = {  # console script -> module
    "bioner-grid-plan": "plan",
    "bioner-grid-report": "report",
    "bioner-grid-data": "data",
    "bioner-grid-prefetch": "prefetch",
    "bioner-grid-evaluate": "evaluate",
    "bioner-grid-significance": "significance",
    "bioner-grid-tag": "tag",
    "bioner-grid-register": "register",
    "bioner-grid-tag-compare": "tag_compare",
}
OVERRIDES = ("Arguments are overrides, key=value or group=option, as for bioner-grid\n"
             "(`bioner-grid --help` lists the groups, `bioner-grid --cfg job` every key).\n"
             "  -v, --verbose      show the libraries' log lines and warnings too (or BIONER_GRID_VERBOSE=1)\n"
             "  -sc install=bash   tab completion of the overrides: eval \"$({script} -sc install=bash)\"")

# What a person reads for --help: what the command does, then examples (no notes on the code).
HELP = {
    "plan": ("List the jobs a sweep would launch, and launch nothing: each job's overrides and run key, what the "
             "tracking store already holds (FINISHED, IN FLIGHT, STALE: a stopped run a launch continues, TODO), "
             "and the preflight problems (a model not available offline, a missing corpus file). A sweep command "
             "pasted whole works: -m is accepted (plan always expands comma-separated values).",
             ["bioner-grid-plan experiment=welt_grid",
              "bioner-grid-plan -m scheme=vanilla,welt train.lr=1e-5,3e-5 tracking.uri=sqlite:///outputs/mlflow.db"]),
    "report": ("Comparison tables and figures from the runs in the tracking store: Markdown, LaTeX and CSV tables, "
               "figures and one self-contained report.html in report.out, also logged to MLflow as a run of the "
               "experiment <experiment>-reports. Every best is chosen on dev and shown on test.",
               ["bioner-grid-report report.out=outputs/report",
                "bioner-grid-report tracking.uri=sqlite:///outputs/mlflow.db report.experiment=bioner-grid "
                "report.filter=\"tags.sweep = 'SWEEP_ID'\"",
                "bioner-grid-report report.split=dev report.mode=default"]),
    "data": ("Corpus statistics, without training: sentences, tokens and O/B/I counts per split, and the training "
             "sentences (or documents) also found in dev or test and what data.overlap does with them. With "
             "`overlap` first: how many test documents of each corpus occur in each training file.",
             ["bioner-grid-data dataset=linnaeus",
              "bioner-grid-data dataset=biored_chem",
              "bioner-grid-data overlap dataset=aio"]),
    "register": ("Register the best model per corpus in the MLflow Model Registry as NAME-<dataset>: the "
                 "configuration with the best mean dev strict F1 over its seeds, nothing retrained. When its runs "
                 "saved no model, prints the command that reruns it with train.save_model=true.",
                 ["bioner-grid-register name=bioner",
                  "bioner-grid-register tracking.uri=sqlite:///outputs/mlflow.db report.experiment=bioner-grid "
                  "name=bioner report.filter=\"tags.model = 'minilm'\""]),
    "prefetch": ("Download what a sweep needs, on a machine with internet, before launching it onto offline "
                 "compute nodes: hub models into the Hugging Face cache, corpus files into data.root (each checked "
                 "against its SHA256; a mismatch leaves nothing behind).",
                 ["bioner-grid-prefetch experiment=welt_grid",
                  "bioner-grid-prefetch -m model=biobert,pubmedbert dataset=bc2gm"]),
    "evaluate": ("Score any tagger's output against gold: seqeval (default and strict IOB2) and FairEval "
                 "(traditional, fair and weighted, with its error counts).",
                 ["bioner-grid-evaluate outputs/runs/DATE/RUN/predictions_test.conll",
                  "bioner-grid-evaluate gold.tsv pred.tsv --format md"]),
    "significance": ("Paired bootstrap of strict F1 on the same test sentences: run B against run A, the difference "
                     "in F1 points, its 95% interval and a two-sided p.",
                     ["bioner-grid-significance RUN_ID_A RUN_ID_B --uri sqlite:///outputs/mlflow.db",
                      "bioner-grid-significance a/predictions_test.conll b/predictions_test.conll"]),
}
SWEEPS = {"plan", "prefetch"}  # they expand comma-separated values themselves: a pasted -m is redundant
OWN_PARSER = {"evaluate", "significance"}  # argparse: their options follow our description and examples
OWN_HELP = {"tag", "tag_compare"}  # print their own usage (tag.USAGE, tag_compare.USAGE)
COMPLETES = {"plan", "report", "data", "register", "prefetch", "tag", "tag_compare"}  # overrides of a Hydra config
COMPLETION_FLAGS = ("-sc", "--shell-completion")


def script_of(module_name: str) -> str:
    return next((s for s, m in COMMANDS.items() if m == module_name), f"python -m bioner_grid.{module_name}")


def usage(module_name: str, doc: str | None = None) -> str:
    """The --help text of a command: usage line, description, examples, and (Hydra-style commands) the
    common options."""
    script = script_of(module_name)
    description, examples = HELP.get(module_name, ((doc or "").strip(), []))
    lines = [f"usage: {script} [-v] [key=value ...]   (or python -m bioner_grid.{module_name})", "",
             textwrap.fill(description, 100), ""]
    if examples:
        lines += ["Examples:", *(f"  {e}" for e in examples), ""]
    lines.append(OVERRIDES.format(script=script))
    return "\n".join(lines).rstrip()


def _argv_problem(module_name: str, argv: list[str]) -> str | None:
    """A dash option a Hydra-style command does not take, as one line saying what to drop."""
    for a in argv:
        if a.startswith("-") and "=" not in a:
            if a in ("-m", "--multirun"):
                return f"{a}: {script_of(module_name)} runs no sweep; drop {a}"
            return f"{a}: not an option of {script_of(module_name)} (it takes key=value overrides; drop {a})"
    return None


def run(module_name: str, argv: list[str] | None = None) -> int:
    """Run ``bioner_grid.<module_name>.main(argv)`` through ``errors.guarded`` (a user-facing error
    is one printed line and its exit status), or print its usage for -h/--help."""
    argv = console.take_flag(sys.argv[1:] if argv is None else list(argv))
    console.install()
    if module_name in COMPLETES and any(a in COMPLETION_FLAGS for a in argv):
        return shell_completion(module_name, argv)
    help_asked = any(a in ("-h", "--help") for a in argv)
    if help_asked and module_name in OWN_PARSER:  # argparse's usage, description and options, then examples
        with contextlib.suppress(SystemExit):
            importlib.import_module(f"bioner_grid.{module_name}").main(["--help"])
        print("\nexamples:\n" + "\n".join(f"  {e}" for e in HELP[module_name][1]))
        return 0
    if help_asked and module_name not in OWN_HELP:
        print(usage(module_name))
        return 0
    if module_name in SWEEPS:  # a sweep command pasted whole: `bioner-grid-plan -m scheme=a,b ...`
        argv = [a for a in argv if a not in ("-m", "--multirun")]
    if module_name not in OWN_PARSER | OWN_HELP:
        problem = _argv_problem(module_name, argv)
        if problem:
            return errors.fail(errors.ConfigError(problem)).code
    module = importlib.import_module(f"bioner_grid.{module_name}")
    try:
        return errors.guarded(module.main, argv)
    except errors.JobFailed as e:
        return e.code


# ---------------------------------------------------------------------------------------------
# Tab completion (Hydra's bash/zsh/fish plugins) for the commands that are not Hydra apps


def completion_query(argv: list[str]) -> bool:
    """Whether the command line is a completion query (``-sc query=bash``), not ``install``."""
    return any(a in COMPLETION_FLAGS for a in argv) and any(a.startswith("query=") for a in argv)


def _without_schemas(words: str) -> str:
    """Hydra's completions less the ``schema/`` groups: the typed schemas of ``spec.py`` sit in
    Hydra's ConfigStore beside the config groups, but no one chooses them on a command line."""
    return " ".join(w for w in words.split() if not w.startswith(("schema/", "schema=", "schema.")))


def filtered_completion(app) -> None:
    """Run the Hydra app (answering a ``-sc query=...``) and print its completions without ``schema/``."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        app()
    print(_without_schemas(out.getvalue()))


def shell_completion(module_name: str, argv: list[str]) -> int:
    """``-sc install=bash`` (the script to ``eval``), ``-sc query=bash`` (what the shell's tab asks,
    with ``COMP_LINE`` set): Hydra's completion plugins over this command's configuration
    (``conf/config.yaml``; ``tag``: its own keys)."""
    from hydra import initialize, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from bioner_grid.config import CONF_DIR

    overrides = [a for a in argv if a not in COMPLETION_FLAGS]
    own = getattr(importlib.import_module(f"bioner_grid.{module_name}"), "register_config", None)
    if own:  # a command with keys of its own (tag) puts its config in Hydra's ConfigStore and names it
        config_name, context = own(), initialize(version_base=None, config_path=None)
    else:
        config_name, context = "config", initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3")
    out = io.StringIO()
    try:
        with context, contextlib.redirect_stdout(out):  # the conf/ of bioner-grid, or only the ConfigStore
            GlobalHydra.instance().hydra.shell_completion(config_name=config_name, overrides=overrides)
    except ValueError as e:  # Hydra's: no subcommand, or no plugin for that shell
        return errors.fail(errors.ConfigError(f"-sc: {errors.one_line(e)} (e.g. -sc install=bash)")).code
    print(_without_schemas(out.getvalue()) if completion_query(argv) else out.getvalue().rstrip("\n"))
    return 0


# ---------------------------------------------------------------------------------------------
# Entry points (pyproject.toml [project.scripts])


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


def significance() -> None:
    sys.exit(run("significance"))


def tag() -> None:
    sys.exit(run("tag"))


def register() -> None:
    sys.exit(run("register"))


def tag_compare() -> None:
    sys.exit(run("tag_compare"))


# ---------------------------------------------------------------------------------------------
# bioner-grid --help (conf/hydra/help/bioner_grid.yaml): the config groups, as a resolver


def config_groups(conf_dir: Path | None = None, width: int = 100) -> str:
    """Every config group under ``conf/`` and its options, one group a line (``hydra/launcher``
    included, Hydra's help group left out); the schemas, which are not in ``conf/``, are not listed."""
    if conf_dir is None:
        from bioner_grid.config import CONF_DIR as conf_dir
    lines = []
    for folder in sorted(p for p in Path(conf_dir).rglob("*") if p.is_dir()):
        group = folder.relative_to(conf_dir).as_posix()
        options = sorted(p.stem for p in folder.glob("*.yaml"))
        if options and group != "hydra/help":
            lines.append(textwrap.fill(f"{group}: {', '.join(options)}", width, initial_indent="  ",
                                       subsequent_indent="      "))
    return "\n".join(lines)


def register_resolver() -> None:
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("bioner_grid_groups", lambda: config_groups(), replace=True)


register_resolver()  # wherever a config with hydra.help in it can be resolved: bioner-grid, the launchers, cli
