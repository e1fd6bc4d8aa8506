"""The launcher plugin outside SLURM: Hydra discovers it, submitit's local processes, skip-finished
against a temporary store, submit-and-exit (``grid.wait=false``), and the preflight that stops a
sweep before anything starts."""

import subprocess
import sys
import time

from mlflow import MlflowClient
from omegaconf import OmegaConf

from conftest import ROOT, app_inproc, cli, runs

TINY = ["model=tiny_bert", "data.max_train_sentences=48", "data.max_eval_sentences=16", "train.max_steps=2",
        "train.batch_size=16"]


def test_hydra_discovers_the_launchers_that_the_launcher_configs_name():
    """As hydra-submitit-launcher tests its own: ``Plugins.discover(Launcher)`` lists our launcher
    classes, in a fresh interpreter that imports nothing of bioner_grid first (no registration by
    hand). pyproject.toml maps the ``hydra_plugins`` namespace to launchers/hydra_plugins, which must
    stay a namespace (no ``__init__.py``) so that hydra-submitit-launcher's plugins are found beside ours."""
    code = ("from hydra.core.plugins import Plugins; from hydra.plugins.launcher import Launcher; "
            "print(*sorted(f'{c.__module__}.{c.__name__}' for c in Plugins.instance().discover(Launcher)))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT / "tests", timeout=120,
                       check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    discovered = set(r.stdout.split())
    ours = "hydra_plugins.bioner_grid_launcher.grid_launcher."
    assert {ours + c for c in ("GridBasicLauncher", "GridSubmititLocalLauncher", "GridSlurmLauncher")} <= discovered
    assert "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher" in discovered
    for yaml in (ROOT / "conf" / "hydra" / "launcher").glob("*.yaml"):
        assert OmegaConf.load(yaml)._target_ in discovered, yaml.name
    assert not (ROOT / "launchers" / "hydra_plugins" / "__init__.py").exists()


def plan_inproc(monkeypatch, capsys, tmp_path, *args) -> subprocess.CompletedProcess:
    """``python -m bioner_grid.plan *args`` run in ``tmp_path``, in this process (its real entry point:
    tests/test_cli.py)."""
    from bioner_grid import cli as commands

    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    code = commands.run("plan", list(args))
    return subprocess.CompletedProcess("plan", code, *capsys.readouterr())


def test_submitit_local_sweep_runs_each_job_in_its_own_process_and_a_relaunch_skips_them(tmp_path, data_root, monkeypatch,
                                                                                        capsys):
    sweep = [*TINY, "scheme=vanilla,welt", "hydra/launcher=submitit_local", f"hydra.sweep.dir={tmp_path}/sweep"]
    r = cli(tmp_path, data_root, *sweep, multirun=True)
    assert r.returncode == 0, r.stderr[-3000:]
    df = runs(tmp_path)
    assert sorted(df["tags.scheme"]) == ["vanilla", "welt"] and set(df["status"]) == {"FINISHED"}
    assert df["tags.ops.pid"].nunique() == 2  # separate processes
    assert len(list((tmp_path / "sweep" / ".submitit").glob("*/*_result.pkl"))) == 2

    r = cli(tmp_path, data_root, *sweep, multirun=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "skipping 2 of 2 runs already FINISHED" in r.stdout + r.stderr and len(runs(tmp_path)) == 2

    # plan reads the same store with the same rule; a third scheme is still to do
    plan = plan_inproc(monkeypatch, capsys, tmp_path, *TINY, "scheme=vanilla,welt,ins", f"data.root={data_root}",
                       f"tracking.uri=sqlite:///{tmp_path}/mlflow.db")
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert "3 jobs" in plan.stdout and "2 FINISHED, 0 IN FLIGHT, 0 STALE, 1 TODO" in plan.stdout
    for scheme, status in (("vanilla", "FINISHED"), ("welt", "FINISHED"), ("ins", "TODO")):
        line = next(x for x in plan.stdout.splitlines() if f"scheme={scheme}" in x)
        assert f"  {status}" in line, line


def test_preflight_lists_every_missing_input_and_launches_nothing(tmp_path, data_root, monkeypatch, capsys):
    # in this process (the real entry point: tests/test_cli.py's preflight test)
    r = app_inproc(monkeypatch, capsys, tmp_path, "-m", f"data.root={data_root}", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
                   f"tracking.artifact_location={tmp_path}/artifacts", *TINY, "dataset=conll_files",
                   f"dataset.train={tmp_path}/a.tsv,{tmp_path}/b.tsv", "dataset.split=0.8")
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "preflight: 2 problem(s), nothing launched" in out
    assert f"{tmp_path}/a.tsv not found" in out and f"{tmp_path}/b.tsv not found" in out
    assert not (tmp_path / "mlflow.db").exists() or runs(tmp_path).empty


def test_submit_and_exit_leaves_the_sweep_running_until_plan_sees_its_jobs_ended(tmp_path, data_root, monkeypatch, capsys):
    """``grid.wait=false`` with submitit's local processes: the launch returns without waiting, its
    parent run stays RUNNING (``state=submitted``) while the job trains on in its own process, and
    ``plan`` closes the parent once the job has ended."""
    sweep = [*TINY, "scheme=vanilla", "hydra/launcher=submitit_local", f"hydra.sweep.dir={tmp_path}/sweep", "grid.wait=false"]
    log = tmp_path / "launch.log"
    with open(log, "w") as out:  # not a pipe: the job's process inherits the launcher's output and outlives it
        r = subprocess.run([sys.executable, "-m", "bioner_grid", "-m", f"data.root={data_root}",
                            f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", f"tracking.artifact_location={tmp_path}/artifacts",
                            *sweep], cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT, timeout=600, check=False)
    assert r.returncode == 0, log.read_text()[-3000:]
    assert "not waiting; results land in the tracking store" in log.read_text()
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    parent = runs(tmp_path, parents=True).query("`tags.kind` == 'sweep'")
    assert len(parent) == 1
    parent_id = parent["run_id"].iloc[0]
    assert client.get_run(parent_id).info.status == "RUNNING" and client.get_run(parent_id).data.tags["state"] == "submitted"

    # the job's own folder's result, never the literal "%j" folder the launcher leaves beside it
    # (globbing "*/" and taking the first could pick that one and wait for the whole deadline)
    submitit_dir = tmp_path / "sweep" / ".submitit"
    deadline = time.time() + 1200  # a minute on an idle machine; far longer beside a running study
    while time.time() < deadline and not list(submitit_dir.glob("*/*_result.pkl")):
        time.sleep(2)
    job = runs(tmp_path)
    assert len(job) == 1 and job["status"].iloc[0] == "FINISHED", job.T
    assert job["tags.mlflow.parentRunId"].iloc[0] == parent_id
    assert client.get_run(parent_id).info.status == "RUNNING"  # nothing closes it but plan or report

    plan = plan_inproc(monkeypatch, capsys, tmp_path, *sweep, f"data.root={data_root}", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db")
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert f"all 1 job(s) ended; parent run {parent_id} FINISHED" in plan.stdout
    assert client.get_run(parent_id).info.status == "FINISHED"
