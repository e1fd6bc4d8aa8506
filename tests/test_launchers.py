"""The launcher plugin outside SLURM: submitit's local processes, skip-finished against a
temporary store, and the preflight that stops a sweep before anything starts."""

import subprocess
import sys

from conftest import cli, runs

TINY = ["model=tiny_bert", "data.max_train_sentences=48", "data.max_eval_sentences=16", "train.max_steps=2",
        "train.batch_size=16"]


def test_submitit_local_sweep_runs_each_job_in_its_own_process_and_a_relaunch_skips_them(tmp_path, data_root):
    sweep = [*TINY, "scheme=vanilla,welt", "hydra/launcher=submitit_local", f"hydra.sweep.dir={tmp_path}/sweep"]
    r = cli(tmp_path, data_root, *sweep, multirun=True)
    assert r.returncode == 0, r.stderr[-3000:]
    df = runs(tmp_path)
    assert sorted(df["tags.scheme"]) == ["vanilla", "welt"] and set(df["status"]) == {"FINISHED"}
    assert df["tags.pid"].nunique() == 2  # separate processes
    assert len(list((tmp_path / "sweep" / ".submitit").glob("*/*_result.pkl"))) == 2

    r = cli(tmp_path, data_root, *sweep, multirun=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "skipping 2 of 2 runs already FINISHED" in r.stdout + r.stderr and len(runs(tmp_path)) == 2

    # plan reads the same store with the same rule; a third scheme is still to do
    plan = subprocess.run([sys.executable, "-m", "bioner_grid.plan", *TINY, "scheme=vanilla,welt,ins", f"data.root={data_root}",
                           f"tracking.uri=sqlite:///{tmp_path}/mlflow.db"], cwd=tmp_path, capture_output=True, text=True)
    assert plan.returncode == 0, plan.stderr[-2000:]
    assert "3 jobs" in plan.stdout and "2 FINISHED, 0 IN FLIGHT, 0 STALE, 1 TODO" in plan.stdout
    for scheme, status in (("vanilla", "FINISHED"), ("welt", "FINISHED"), ("ins", "TODO")):
        line = next(x for x in plan.stdout.splitlines() if f"scheme={scheme}" in x)
        assert f"  {status}" in line, line


def test_preflight_lists_every_missing_input_and_launches_nothing(tmp_path, data_root):
    r = cli(tmp_path, data_root, *TINY, "dataset=conll_files", f"dataset.train={tmp_path}/a.tsv,{tmp_path}/b.tsv",
            "dataset.split=0.8", multirun=True)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert "preflight: 2 problem(s), nothing launched" in out
    assert f"{tmp_path}/a.tsv not found" in out and f"{tmp_path}/b.tsv not found" in out
    assert not (tmp_path / "mlflow.db").exists() or runs(tmp_path).empty
