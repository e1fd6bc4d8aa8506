"""The command line as a tool: --help everywhere, one-line errors with exit 2, a sweep as one MLflow
parent run with its jobs as children, and a wheel that runs without the clone."""

import inspect
import itertools
import os
import subprocess
import sys
import venv
from pathlib import Path

import mlflow
import pytest

from conftest import ROOT
from conftest import SLICE, app_inproc, cli, runs

COMMANDS = ["plan", "report", "data", "prefetch", "evaluate", "significance", "tag", "register", "tag-compare"]
# what a reader of --help should not meet: notes on the code (module docstrings' import remarks, reST markup)
DEVELOPER_NOTES = ("``", "imported", "import ", "(~1", "module", "tests/", "ConfigStore")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_prints_a_description_and_examples_for_help(command, capsys):
    from bioner_grid import cli

    assert cli.run(command.replace("-", "_"), ["--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: ")
    examples = list(itertools.takewhile(str.strip, out[out.lower().index("examples:"):].splitlines()[1:]))
    assert examples and all(e.startswith(f"  bioner-grid-{command} ") for e in examples), examples
    assert not [n for n in DEVELOPER_NOTES if n in out], out


def test_help_of_a_module_run_with_python_m_exits_0():
    r = subprocess.run([sys.executable, "-m", "bioner_grid.report", "--help"], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("usage: bioner-grid-report ") and not r.stderr, r.stderr[-2000:]


def test_every_command_is_a_console_script_through_cli():
    import tomllib

    from bioner_grid import cli

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts.pop("bioner-grid") == "bioner_grid.__main__:main"
    assert scripts == {s: f"bioner_grid.cli:{m}" for s, m in cli.COMMANDS.items()}
    assert {"bioner-grid-significance", "bioner-grid-tag", "bioner-grid-register"} <= set(scripts)
    for module in cli.COMMANDS.values():  # each entry point exists and names its module
        assert callable(getattr(cli, module)) and f'run("{module}")' in inspect.getsource(getattr(cli, module))


def test_main_app_help_describes_the_tool_with_examples_and_no_schema_group(monkeypatch, capsys, tmp_path):
    r = app_inproc(monkeypatch, capsys, tmp_path, "--help")
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout
    assert out.startswith("bioner-grid: fine-tune biomedical named-entity-recognition models")
    assert "Examples:\n  bioner-grid debug=quick" in out and "bioner-grid -m scheme=vanilla,welt" in out
    groups = out[out.index("Config groups"):out.index("Options:")]
    assert "  model: bert, biobert," in groups and "  hydra/launcher: local, slurm, submitit_local" in groups
    assert "schema" not in out and "is powered by Hydra" not in out
    assert 'eval "$(bioner-grid -sc install=bash)"' in out  # Hydra's `$$` escape came out as one `$`
    from bioner_grid import cli

    others = " ".join(out[out.index("Other commands"):].split())
    assert [s for s in cli.COMMANDS if f"{s}," not in others and f"{s}." not in others] == []  # every command named


def test_a_pasted_sweep_command_plans_the_sweep_and_other_flags_say_what_to_drop(tmp_path, capsys, data_root):
    from bioner_grid import cli

    store = f"tracking.uri=sqlite:///{tmp_path}/absent.db"  # plan creates no store: every job TODO
    assert cli.run("plan", ["-m", "debug=quick", "scheme=vanilla,welt", "train.lr=1e-4,3e-4", store,
                            f"data.root={data_root}"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("experiment adhoc: 4 jobs;") and out.count("  TODO  train ") == 4 and ", 4 TODO" in out
    assert cli.run("report", ["-m", store]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: -m: bioner-grid-report runs no sweep; drop -m")
    assert cli.run("plan", ["--cfg", "job"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: --cfg: not an option of bioner-grid-plan (it takes key=value overrides; drop --cfg)")
    assert not (tmp_path / "absent.db").exists()


@pytest.mark.parametrize("command, typed, expected", [
    ("plan", "sch", "scheme="), ("report", "report.", "report.out="), ("data", "data", "dataset="),
    ("register", "model=t", "model=tiny_bert"), ("prefetch", "experiment=", "experiment=welt_grid"),
    ("tag", "tag.", "tag.types="), ("tag-compare", "mem", "member=")])
def test_tab_completion_of_every_config_command(command, typed, expected, capsys, monkeypatch):
    from bioner_grid import cli

    command, script = command.replace("-", "_"), command
    assert cli.run(command, ["-sc", "install=bash"]) == 0
    assert "complete -o nospace -o default -F hydra_bash_completion" in capsys.readouterr().out
    monkeypatch.setenv("COMP_LINE", f"bioner-grid-{script} {typed}")
    assert cli.run(command, ["-sc", "query=bash"]) == 0
    words = capsys.readouterr().out.split()
    assert expected in words and not [w for w in words if w.startswith("schema")], words
    assert cli.run(command, ["-sc"]) == 2  # no subcommand: one line, no traceback
    assert capsys.readouterr().err.startswith("error: -sc: Expecting one subcommand")


def test_main_app_completion_offers_no_schema_group(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("COMP_LINE", "bioner-grid sch")
    r = app_inproc(monkeypatch, capsys, tmp_path, "-sc", "query=bash")
    assert r.returncode == 0 and r.stdout.split() == ["scheme.", "scheme="], r.stdout + r.stderr[-2000:]


def test_tag_accepts_hydra_settings_copied_from_a_sweep_command(caplog):
    from bioner_grid import tag

    with caplog.at_level("INFO", logger="bioner_grid.tag"):
        cfg = tag.parse_args(["model=m", "input=in", "out=o", "hydra.run.dir=/tmp/x", "hydra/launcher=submitit_slurm"])
    assert (cfg.model, cfg.input, cfg.out) == ("m", "in", "o") and "hydra" not in cfg
    assert "not used without -m (a single call writes no Hydra folder): hydra.run.dir=/tmp/x hydra/launcher=submitit_slurm" in caplog.text


def test_sweep_whose_preflight_fails_prints_the_list_and_exits_2(tmp_path):
    r = cli(tmp_path, tmp_path / "nowhere", "model=tiny_bert", "dataset=ncbi_disease,bc2gm", multirun=True)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: preflight: 6 problem(s), nothing launched: dataset ncbi_disease: ")
    assert lines[0].count(" not found") == 6 and "train.tsv not found; dataset ncbi_disease: " in lines[0]
    assert not (tmp_path / "mlflow.db").exists()


def test_gpu_request_on_a_partition_without_gpu_gres_is_one_line(monkeypatch):
    from bioner_grid import grid

    answers = {"debug": "debug* (null)\n", "gpu": "gpu gpu:a100:4\n"}

    def sinfo(args, **kwargs):
        part = args[args.index("-p") + 1] if "-p" in args else None
        out = answers.get(part, "debug* (null)\ngpu gpu:a100:4\n")
        return subprocess.CompletedProcess(args, 0, out, "")

    monkeypatch.setattr(grid.subprocess, "run", sinfo)
    assert grid.gpu_problem("debug", 1) == (
        "hydra.launcher.gpus_per_node=1 but partition debug has no GPU (sinfo GRES: (null)); "
        "pass hydra.launcher.gpus_per_node=0 or hydra.launcher.partition=<a GPU partition>")
    assert grid.gpu_problem(None, 2).startswith("hydra.launcher.gpus_per_node=2 but the default partition has no GPU")
    assert grid.gpu_problem("gpu", 1) is None and grid.gpu_problem("debug", 0) is None


@pytest.mark.slurm
def test_slurm_sweep_asking_for_gpus_on_this_cluster_stops_before_sbatch(tmp_path, data_root):
    from bioner_grid.grid import partition_gres

    gres = partition_gres(None)
    if gres is None:
        pytest.skip("no SLURM cluster")
    if any("gpu" in g for g in gres):
        pytest.skip("this cluster has GPUs")
    r = cli(tmp_path, data_root, "model=tiny_bert", "hydra/launcher=slurm", "hydra.launcher.gpus_per_node=1",
            f"hydra.sweep.dir={tmp_path}/sweep", multirun=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: hydra.launcher.gpus_per_node=1 but the default partition has no GPU")
    assert not (tmp_path / "sweep" / ".submitit").exists()


def test_a_sweep_is_one_parent_run_with_its_jobs_as_children(tmp_path, data_root, monkeypatch, capsys):
    # system metrics every second (MLflow's default is 10 s, longer than a tiny run on an idle machine)
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")
    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", "1")
    # in this process (Hydra's basic launcher runs the jobs in it); the relaunch below: the real command line
    r = app_inproc(monkeypatch, capsys, tmp_path, "-m", f"data.root={data_root}", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
                   f"tracking.artifact_location={tmp_path}/artifacts", *SLICE, "scheme=vanilla,welt",
                   f"hydra.sweep.dir={tmp_path}/sweep")
    assert r.returncode == 0, r.stderr[-3000:]
    df = runs(tmp_path, parents=True)
    parent = df[df["tags.kind"] == "sweep"]
    assert len(parent) == 1 and parent.iloc[0]["status"] == "FINISHED"
    p = parent.iloc[0]
    assert p["tags.jobs_planned"] == "2" and p["tags.jobs_skipped"] == "0" and p["tags.jobs_launched"] == "2"
    assert p["tags.command"].startswith("python -m bioner_grid -m ") and "scheme=vanilla,welt" in p["tags.command"]
    children = df[df["tags.kind"] != "sweep"]
    assert len(children) == 2
    assert set(children["tags.mlflow.parentRunId"]) == {p["run_id"]}
    assert set(children["tags.sweep"]) == {p["tags.sweep"]}
    summary = Path(mlflow.artifacts.download_artifacts(run_id=p["run_id"], artifact_path="summary.md")).read_text()
    assert summary.count(" · tiny_bert-ncbi_disease-0.0003-16-42 | ") == 2
    # a child reads well in the UI: the varying part of its name first, only result-defining params,
    # its corpora as dataset inputs, system metrics, predictions the artifact viewer previews
    assert sorted(children["tags.mlflow.runName"]) == ["vanilla · tiny_bert-ncbi_disease-0.0003-16-42",
                                                      "welt · tiny_bert-ncbi_disease-0.0003-16-42"]
    params = [c[len("params."):] for c in children.columns if c.startswith("params.")]
    assert "train.lr" in params and "scheme.name" in params and "model.family" in params
    assert not [k for k in params if k.split(".")[0] in ("report", "grid", "tracking") or k.startswith("data.root")
                or k.startswith("dataset.download") or k in ("dataset.train", "dataset.test")], params
    client = mlflow.MlflowClient()
    child = client.get_run(children.iloc[0]["run_id"])
    inputs = {(d.dataset.name, d.dataset.digest, {t.key: t.value for t in d.tags}["mlflow.data.context"])
              for d in child.inputs.dataset_inputs}
    assert {c for _, _, c in inputs} == {"train", "dev", "test"} and {n for n, _, _ in inputs} == {"ncbi_disease"}
    assert {d for _, d, c in inputs if c == "train"} == {child.data.tags["data_sha256.train"][:16]}
    assert any(k.startswith("system/cpu_utilization") for k in child.data.metrics), sorted(child.data.metrics)
    assert {"predictions_test.tsv", "predictions_test.conll"} <= {a.path for a in client.list_artifacts(child.info.run_id)}
    # the terminal: a table of the jobs, best first, and where to look in the UI
    out = r.stdout
    assert f"sweep {p['tags.sweep']}: 2 job(s)" in out
    assert "MLflow: http://127.0.0.1:5000/#/experiments/" in out
    table = out[out.index(f"sweep {p['tags.sweep']}: 2 job(s)"):].splitlines()[2:4]
    f1 = [float(line.split()[-3]) for line in table]  # columns: run, status, test F1, dev F1, time
    assert f1 == sorted(f1, reverse=True)

    # relaunched: everything is FINISHED, nothing is launched and no second parent is made
    r = cli(tmp_path, data_root, *SLICE, "scheme=vanilla,welt", f"hydra.sweep.dir={tmp_path}/sweep2", multirun=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(runs(tmp_path, parents=True)) == 3


@pytest.mark.slow
def test_built_wheel_runs_the_tiny_model_outside_the_clone(tmp_path, data_root):
    """pip wheel -> a fresh virtualenv (torch & co. borrowed from this interpreter's site-packages
    through a .pth line, so nothing is downloaded) -> the console scripts, from another folder."""
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    str(ROOT)], check=True, capture_output=True, timeout=300)
    wheel = next(wheels.glob("bioner_grid-*.whl"))
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    subprocess.run([sys.executable, "-m", "pip", "--python", str(env_dir / "bin" / "python"), "install", "--no-deps",
                    "-q", str(wheel)], check=True, capture_output=True, timeout=300, env=env)
    # after the install (pip would take the borrowed editable install for this one)
    site = next((env_dir / "lib").glob("python3*/site-packages"))
    deps = next(p for p in map(Path, sys.path) if p.name == "site-packages" and (p / "torch").is_dir())
    (site / "borrowed.pth").write_text(f"{deps}\n")  # appended after the venv's own site-packages
    work = tmp_path / "elsewhere"
    work.mkdir()
    where = subprocess.run([str(env_dir / "bin" / "python"), "-c", "import bioner_grid.config as c; print(c.CONF_DIR)"],
                           capture_output=True, text=True, env=env, cwd=work)
    assert where.stdout.strip().startswith(str(site)), where.stdout + where.stderr
    for script in ("bioner-grid-plan", "bioner-grid-report", "bioner-grid-data", "bioner-grid-prefetch",
                   "bioner-grid-evaluate"):
        r = subprocess.run([str(env_dir / "bin" / script), "--help"], capture_output=True, text=True, env=env, cwd=work)
        assert r.returncode == 0 and r.stdout.startswith("usage: "), (script, r.stderr[-2000:])
    r = subprocess.run([str(env_dir / "bin" / "bioner-grid"), *SLICE, "train.epochs=1", f"data.root={data_root}",
                        f"tracking.uri=sqlite:///{work}/mlflow.db", f"tracking.artifact_location={work}/art"],
                       capture_output=True, text=True, env=env, cwd=work, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(runs(work)) == 1 and runs(work).iloc[0]["status"] == "FINISHED"


def test_terminal_shows_one_line_per_evaluation_and_plain_progress_lines_without_a_tty(caplog):
    import logging
    from types import SimpleNamespace as State

    from bioner_grid.train import TerminalProgress

    cb = TerminalProgress(tty=False, period=0)
    state = State(num_train_epochs=5, max_steps=100, global_step=0, epoch=0.0)
    with caplog.at_level(logging.INFO, logger="bioner_grid.train"):
        cb.on_train_begin(None, state, None)
        cb.on_epoch_begin(None, state, None)
        state.global_step, state.epoch = 40, 2.0
        cb.on_step_end(None, state, None)
        cb.on_log(None, state, None, logs={"loss": 0.10812})
        cb.on_evaluate(None, state, None, metrics={"eval_strict_f1": 0.7391, "eval_strict_precision": 0.6993,
                                                   "eval_strict_recall": 0.7842})
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("epoch 2.00/5  step 40/100  elapsed 0m00s  eta ")
    assert lines[1] == "epoch 2/5  loss 0.108  dev strict F1 73.9%  P 69.9%  R 78.4%"
    assert not any("\r" in line for line in lines)


def test_a_submitted_sweep_is_closed_with_its_summary_once_its_jobs_have_ended(tmp_path):
    from types import SimpleNamespace

    from mlflow import MlflowClient

    from bioner_grid import sweep

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tcfg = SimpleNamespace(uri=uri, experiment="bioner-grid", artifact_location=str(tmp_path / "art"), retry_s=300.0,
                           get=lambda k, d=None: str(tmp_path / "art") if k == "artifact_location" else d)
    with sweep.SweepRun(tcfg, "smoke_grid", 3, 1, 0, 2, wait=False, varying=["scheme"]) as parent:
        assert os.environ[sweep.PARENT_ENV] == parent.run_id and sweep.child_tags()["sweep"] == parent.sweep_id
    assert sweep.PARENT_ENV not in os.environ and sweep.child_tags() == {}
    client = MlflowClient(uri)
    jobs = []
    for scheme, f1 in (("vanilla", 0.61), ("welt", 0.64)):
        run = client.create_run(parent.experiment_id, run_name=scheme,
                                tags={"mlflow.parentRunId": parent.run_id, "sweep": parent.sweep_id, "scheme": scheme})
        jobs.append((run.info.run_id, f1))
    client.log_metric(jobs[0][0], "test_strict_f1", jobs[0][1])
    client.set_terminated(jobs[0][0], "FINISHED")
    assert sweep.settle_submitted(uri, "bioner-grid") == []  # one job still running
    client.log_metric(jobs[1][0], "test_strict_f1", jobs[1][1])
    client.set_terminated(jobs[1][0], "FINISHED")
    assert sweep.settle_submitted(uri, "bioner-grid") == [
        f"sweep {parent.sweep_id}: all 2 job(s) ended; parent run {parent.run_id} FINISHED"]
    closed = client.get_run(parent.run_id)
    assert closed.info.run_name == "smoke_grid sweep (2 jobs)" and closed.data.tags["varying"] == "scheme"
    assert closed.info.status == "FINISHED" and closed.data.metrics["sweep/best_test_strict_f1"] == 0.64
    summary = Path(client.download_artifacts(parent.run_id, "summary.md", str(tmp_path))).read_text()
    assert summary.index("| welt |") < summary.index("| vanilla |")
    assert sweep.settle_submitted(uri, "bioner-grid") == []


def test_a_waiting_sweep_whose_launcher_was_killed_is_closed_killed_once_no_job_runs(tmp_path):
    """A waiting sweep's launcher killed outright (SIGKILL: no handler runs) leaves its parent
    RUNNING; ``plan``/``report`` close it (KILLED: a launched job never ran) once the launcher's
    process on this host is gone and none of its jobs runs; a live launcher's parent is left alone."""
    import subprocess
    import sys
    from types import SimpleNamespace

    from mlflow import MlflowClient

    from bioner_grid import identity, sweep

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    tcfg = SimpleNamespace(uri=uri, experiment="bioner-grid", artifact_location=str(tmp_path / "art"), retry_s=300.0,
                           get=lambda k, d=None: str(tmp_path / "art") if k == "artifact_location" else d)
    parent = sweep.SweepRun(tcfg, "smoke_grid", 2, 0, 0, 2, wait=True).__enter__()  # never exited: killed
    for name in (sweep.PARENT_ENV, sweep.SWEEP_ENV, sweep.VARYING_ENV):
        os.environ.pop(name, None)
    client = MlflowClient(uri)
    assert client.get_run(parent.run_id).data.tags[identity.OPS + "pid"] == str(os.getpid())
    job = client.create_run(parent.experiment_id, run_name="vanilla",
                            tags={"mlflow.parentRunId": parent.run_id, "sweep": parent.sweep_id, "scheme": "vanilla"})
    client.log_metric(job.info.run_id, "test_strict_f1", 0.6)
    client.set_terminated(job.info.run_id, "FINISHED")
    assert sweep.settle_submitted(uri, "bioner-grid") == []  # its launcher (this process) is alive
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    client.set_tag(parent.run_id, identity.OPS + "pid", dead.stdout.strip())  # as if that process had launched it
    assert sweep.settle_submitted(uri, "bioner-grid") == [
        f"sweep {parent.sweep_id}: its launcher (pid {dead.stdout.strip()}) is gone; parent run {parent.run_id} KILLED"]
    assert client.get_run(parent.run_id).info.status == "KILLED"
    assert sweep.settle_submitted(uri, "bioner-grid") == []


# The third-party lines a run printed before bioner_grid.console (issue 24): MLflow's INFO log (store
# creation, system metrics, input-example validation), its "Downloading artifacts" bar, MLflow's type-hint
# UserWarning, transformers' load report and bars, Hydra's schema-matching warning, MLflow's CloudPickle warning.
THIRD_PARTY = ("INFO mlflow", "Creating initial MLflow database tables", "system metrics monitoring",
               "Validating input example", "Downloading artifacts", "Add type hints", "LOAD REPORT",
               "Writing model shards", "Loading weights", "validated against ConfigStore schema", "cloudpickle")


def test_a_sweep_prints_only_our_lines_and_keeps_one_copy_of_each_model(tmp_path, data_root, monkeypatch, capfd):
    import re

    from bioner_grid import bundle, console, tag

    monkeypatch.setenv(console.VERBOSE_ENV, "0")  # restored after the test, whatever -v sets below
    tiny = ["debug=quick", "data.max_train_sentences=16", "data.max_eval_sentences=8", "train.max_steps=2",
            f"data.root={data_root}", f"tracking.artifact_location={tmp_path}/artifacts"]
    # capfd: the libraries write to the process's stderr through handlers made before pytest's capture
    r = app_inproc(monkeypatch, capfd, tmp_path, "-m", *tiny, f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
                   "scheme=vanilla,welt", f"hydra.sweep.dir={tmp_path}/sweep")
    assert r.returncode == 0, r.stderr[-3000:]
    shown = r.stdout + r.stderr
    assert not [line for line in shown.splitlines() if any(p.lower() in line.lower() for p in THIRD_PARTY)], shown
    assert re.search(r"job 1/2  scheme=vanilla  elapsed 0m0\ds\n", r.stdout), r.stdout
    assert re.search(r"job 2/2  scheme=welt  elapsed \d+m\d\ds, about \d+m\d\ds left\n", r.stdout), r.stdout
    assert len(re.findall(r"test strict F1 \d+\.\d\d% \(default \d+\.\d\d%\), train", r.stdout)) == 2
    assert len(re.findall(r"epoch 2/2  loss \d\.\d{3}  dev strict F1 \d+\.\d%  P \d+\.\d%  R \d+\.\d%\n", r.stdout)) == 2
    # one copy of each model, MLflow's: the run folders keep none, and tag finds it from the run folder
    folders = sorted((tmp_path / "sweep").glob("*_tiny_bert_ncbi_disease_*"))
    assert len(folders) == 2 and not [f for f in folders if (f / "model").exists()]
    assert runs(tmp_path)["tags.model_uri"].str.startswith("models:/").all()
    local = tag.resolve_model(str(folders[0] / "model"), "sqlite:///absent.db")  # result.json names run and store
    assert (local / bundle.META).is_file() and folders[0] not in local.parents

    # -v: the same libraries' lines are back
    r = app_inproc(monkeypatch, capfd, tmp_path, "-v", *tiny, f"tracking.uri=sqlite:///{tmp_path}/verbose.db",
                   f"hydra.run.dir={tmp_path}/verbose")
    assert r.returncode == 0, r.stderr[-3000:]
    for line in ("INFO mlflow.store.db.utils: Creating initial MLflow database tables",
                 "INFO mlflow.system_metrics.system_metrics_monitor: Started monitoring system metrics",
                 "INFO mlflow.pyfunc: Validating input example against model signature", "Downloading artifacts"):
        assert line in r.stderr, line
    assert (tmp_path / "verbose" / "model" / bundle.META).is_file()  # a single run keeps its folder's copy
    monkeypatch.setenv(console.VERBOSE_ENV, "0")
    console.install(transformers=True)  # the quiet default again, for the tests after this one


def test_known_warnings_and_load_reports_are_silenced_and_others_are_not(tmp_path, monkeypatch, caplog):
    import importlib
    import logging
    import warnings

    from omegaconf import OmegaConf
    from safetensors.torch import load_file, save_file
    from tqdm import tqdm

    from bioner_grid import console, export
    from bioner_grid.config import compose
    from bioner_grid.modeling import build_model, load_tokenizer, resolve

    monkeypatch.setenv(console.VERBOSE_ENV, "0")
    console.install(transformers=True)
    # MLflow's "Add type hints" warning, raised when the model class is defined: predict has its hint now
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        importlib.reload(export)
    assert not [w for w in caught if "type hint" in str(w.message).lower()], [str(w.message) for w in caught]
    # Hydra's schema-matching warning about our submitit_local launcher config: silenced, and only that one
    with warnings.catch_warnings(record=True) as caught:
        console.install()
        compose(["hydra/launcher=submitit_local"], return_hydra_config=True)
        warnings.warn("'hydra/launcher/other' is validated against ConfigStore schema with the same name.")
    assert [str(w.message) for w in caught] == ["'hydra/launcher/other' is validated against ConfigStore schema with the same name."]
    # transformers' report on minilm (pooler UNEXPECTED, classifier MISSING) is dropped; a checkpoint
    # missing an encoder weight keeps its report
    minilm = OmegaConf.load(ROOT / "conf" / "model" / "minilm.yaml")
    tokenizer = load_tokenizer(minilm)
    logger = logging.getLogger("transformers.modeling_utils")
    logger.addHandler(caplog.handler)  # transformers' loggers do not propagate to the root
    try:
        build_model(minilm, ["O", "B-X", "I-X"], tokenizer)
        assert "LOAD REPORT" not in caplog.text
        source = Path(resolve(minilm.source, minilm.name_or_path))
        broken = tmp_path / "broken"
        broken.mkdir()
        (broken / "config.json").write_text((source / "config.json").read_text())
        weights = load_file(next(source.glob("*.safetensors")))
        dropped = next(k for k in weights if "encoder.layer.0.attention" in k)
        save_file({k: v for k, v in weights.items() if k != dropped}, broken / "model.safetensors")
        build_model(OmegaConf.merge(minilm, {"source": "path", "name_or_path": str(broken)}), ["O", "B-X"], tokenizer)
        assert "LOAD REPORT" in caplog.text and dropped.split(".", 1)[1] in caplog.text.replace(" ", "")
    finally:
        logger.removeHandler(caplog.handler)
    # the Trainer's note on checkpoint modification times is dropped, its logger's other lines are not;
    # with -v it shows again
    caplog.clear()
    trainer_utils = logging.getLogger("transformers.trainer_utils")
    trainer_utils.addHandler(caplog.handler)
    try:
        trainer_utils.warning("mtime may not be reliable on this filesystem, falling back to numerical ordering")
        trainer_utils.warning("another warning")
        assert "mtime" not in caplog.text and "another warning" in caplog.text
        monkeypatch.setenv(console.VERBOSE_ENV, "1")
        console.install()
        trainer_utils.warning("mtime may not be reliable on this filesystem, falling back to numerical ordering")
        assert "mtime may not be reliable" in caplog.text
        monkeypatch.setenv(console.VERBOSE_ENV, "0")
        console.install()
    finally:
        trainer_utils.removeHandler(caplog.handler)
    # transformers' second-long bars are drawn disabled; any other bar (a hub download) is left as it is
    assert console._quiet_bar(tqdm, (range(3),), {"desc": "Writing model shards"}).disable
    assert not console._quiet_bar(tqdm, (range(3),), {"desc": "model.safetensors", "disable": False}).disable
