"""Sweeps through a real SLURM cluster (../shared/slurm starts one on this machine).

Without a reachable cluster these tests skip, unless REQUIRE_SLURM=1 (set by .ci/run, which
starts the cluster), where that is a failure.
"""

import os
import re
import subprocess
import time

import pytest

from conftest import cli, runs

pytestmark = pytest.mark.slurm

ON_CLUSTER = ["hydra/launcher=slurm", "hydra.launcher.partition=debug", "hydra.launcher.gpus_per_node=0",
              "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=4", "hydra.launcher.array_parallelism=2"]


@pytest.fixture(scope="module")
def slurm():
    try:
        r = subprocess.run(["sinfo", "-h", "-o", "%P %a"], capture_output=True, text=True, timeout=20)
        ok = r.returncode == 0 and " up" in r.stdout
        why = r.stderr.strip() or r.stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        ok, why = False, str(e)
    if not ok:
        if os.environ.get("REQUIRE_SLURM") == "1":
            pytest.fail(f"REQUIRE_SLURM=1 but no SLURM cluster answers: {why}")
        pytest.skip(f"no SLURM cluster: {why} (start one: bash ../shared/slurm/start-local-slurm.sh)")


def squeue_empty(timeout=300):
    end = time.time() + timeout
    while time.time() < end:
        out = subprocess.run(["squeue", "-h", "-o", "%i"], capture_output=True, text=True).stdout.strip()
        if not out:
            return
        time.sleep(1)
    raise AssertionError(f"jobs still queued after {timeout} s: {out}")


def test_smoke_grid_through_sbatch_job_arrays(slurm, tmp_path, data_root):
    started = time.time()
    r = cli(tmp_path, data_root, "experiment=smoke_grid", *ON_CLUSTER, f"hydra.sweep.dir={tmp_path}/sweep", multirun=True)
    assert r.returncode == 0, r.stderr[-3000:]
    wall = time.time() - started
    df = runs(tmp_path)
    assert len(df) == 6 and set(df["status"]) == {"FINISHED"}
    assert sorted(zip(df["tags.dataset"], df["tags.scheme"])) == sorted(
        (d, s) for d in ("ncbi_disease", "bc5cdr_chem") for s in ("vanilla", "ens_0.5", "welt"))
    # submitit's job folders are named <array job id>_<task index>: one array, six tasks
    tasks = sorted(p.name for p in (tmp_path / "sweep" / ".submitit").iterdir() if p.is_dir() and "_" in p.name)
    assert len(tasks) == 6 and len({t.split("_")[0] for t in tasks}) == 1, tasks
    print(f"smoke grid on SLURM: 6 jobs in {wall:.0f} s")
    # one sweep: a parent run, the six jobs (separate sbatch processes) its children
    parents = runs(tmp_path, parents=True).query("`tags.kind` == 'sweep'")
    assert len(parents) == 1 and parents.iloc[0]["status"] == "FINISHED"
    assert set(df["tags.mlflow.parentRunId"]) == {parents.iloc[0]["run_id"]}

    # relaunching the same sweep skips all six and records nothing new
    r = cli(tmp_path, data_root, "experiment=smoke_grid", *ON_CLUSTER, f"hydra.sweep.dir={tmp_path}/sweep2", multirun=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "skipping 6 of 6 runs already FINISHED" in r.stdout + r.stderr
    assert len(runs(tmp_path)) == 6


REQUEUE = ["model=minilm", "data.max_train_sentences=480", "data.max_eval_sentences=64", "train.batch_size=16",
           "train.max_steps=30", "train.checkpoint_steps=10", "train.patience=null", "train.lr=5e-4"]


def test_requeued_job_resumes_from_its_checkpoint_with_the_same_result(slurm, tmp_path, data_root):
    sweep = tmp_path / "sweep"
    r = cli(tmp_path, data_root, *REQUEUE, *ON_CLUSTER, "grid.wait=false", f"hydra.sweep.dir={sweep}", multirun=True)
    assert r.returncode == 0, r.stderr[-3000:]
    job_ids = re.findall(r"submitted as SLURM job (\S+)", r.stdout + r.stderr)
    assert len(job_ids) == 1, r.stdout + r.stderr
    job_id = job_ids[0]
    # wait for the first checkpoint, then requeue the running job (as a preemption would)
    end = time.time() + 240
    while not list(sweep.glob("*/checkpoints/checkpoint-*")):
        assert time.time() < end, "no checkpoint appeared"
        time.sleep(0.5)
    subprocess.run(["scontrol", "requeue", job_id], check=True)
    # SLURM holds a requeued job for a while before it may start again; release it now
    time.sleep(2)
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=False)
    squeue_empty()

    df = runs(tmp_path)
    assert len(df) == 1, df[["status", "run_id"]]  # one run per key, continued, not a second one
    row = df.iloc[0]
    assert row["status"] == "FINISHED" and row["metrics.resumed"] == 1.0 and row["metrics.train_steps"] == 30
    log = "\n".join(p.read_text() for p in sweep.glob(".submitit/*/*.out"))
    assert "resuming MLflow run" in log

    ref = uninterrupted(tmp_path, data_root, REQUEUE)
    for m in ("test_strict_f1", "test_strict_precision", "test_f1", "dev_strict_f1", "test_fair_f1"):
        assert row[f"metrics.{m}"] == ref[f"metrics.{m}"], m
    print(f"requeued job {job_id}: resumed, test strict F1 {row['metrics.test_strict_f1']:.4f} "
          f"= uninterrupted {ref['metrics.test_strict_f1']:.4f}")



def uninterrupted(tmp_path, data_root, overrides):
    """The same configuration run straight through, into a store of its own: the reference result."""
    other = tmp_path / "uninterrupted"
    other.mkdir()
    r = cli(other, data_root, *overrides, f"hydra.run.dir={other}/run")
    assert r.returncode == 0, r.stderr[-3000:]
    ref = runs(other).iloc[0]
    assert ref["metrics.test_strict_f1"] > 0.1  # it has learnt something: equal scores are not trivially 0
    return ref


def test_time_limit_shorter_than_an_epoch_loses_at_most_one_step_per_attempt_under_load(slurm, tmp_path, data_root):
    """A 2-minute limit (SLURM's USR2 30 s before it) on a job of 240 fp32 steps of 32 sentences
    (about 4 minutes on one CPU) whose schedule never checkpoints before step 240 (``max_steps``
    sets the evaluation period), with a CPU-bound process running beside it all along. Each attempt signalled while training finishes its step, writes checkpoint-N and
    is requeued; the next resumes from exactly that step (a signal after the last step: from the
    schedule's checkpoint-240), until the run has finished with the metrics of an uninterrupted run."""
    import sys

    sweep = tmp_path / "sweep"
    # fp32, not bf16 where the CPU has it: the job must outlast the time limit whatever the hardware
    overrides = ["model=minilm", "data.max_train_sentences=2000", "data.max_eval_sentences=64", "train.batch_size=32",
                 "train.max_steps=240", "train.patience=null", "train.lr=5e-4", "train.precision=fp32"]
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        started = time.time()
        r = cli(tmp_path, data_root, *overrides, *ON_CLUSTER, "hydra.launcher.timeout_min=2",
                "hydra.launcher.signal_delay_s=30", "hydra.launcher.max_num_timeout=15", "grid.wait=false",
                f"hydra.sweep.dir={sweep}", multirun=True)
        assert r.returncode == 0, r.stderr[-3000:]
        (job_id,) = re.findall(r"submitted as SLURM job (\S+)", r.stdout + r.stderr)
        end = time.time() + 1500
        while subprocess.run(["squeue", "-h", "-j", job_id], capture_output=True, text=True).stdout.strip():
            assert time.time() < end, "job still queued after 1500 s"
            subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], capture_output=True)
            time.sleep(2)
        wall = time.time() - started
    finally:
        hog.kill()
        hog.wait()

    log = "\n".join(p.read_text() for p in sorted(sweep.glob(".submitit/*/*_log.*")))
    written = [int(n) for n in re.findall(r"step (\d+) done: writing checkpoint-\1, then exiting for requeue", log)]
    resumed = [int(n) for n in re.findall(r"resuming MLflow run \S+ from \S+checkpoint-(\d+)", log)]
    timeouts = len(set(re.findall(r"^submitit WARNING .* Caught signal SIGUSR2 on \S+: this job is timed-out", log, re.M)))
    assert written, log[-3000:]
    # every checkpoint written at a signal is where the next attempt goes on: nothing after it is lost
    assert set(written) <= set(resumed), (written, resumed)
    # any other resume is from the schedule's only save, at the last step: a signal during the final
    # evaluation or the test scoring finds no step left to finish, so the next attempt goes on from there
    assert set(resumed) - set(written) <= {240}, (written, resumed)
    df = runs(tmp_path)
    assert len(df) == 1 and df.iloc[0]["status"] == "FINISHED" and df.iloc[0]["metrics.train_steps"] == 240
    row = df.iloc[0]
    ref = uninterrupted(tmp_path, data_root, overrides)
    for m in ("test_strict_f1", "test_strict_precision", "test_f1", "dev_strict_f1", "test_fair_f1"):
        assert row[f"metrics.{m}"] == ref[f"metrics.{m}"], m
    print(f"job {job_id}: {timeouts} time-outs, checkpoints at the signal {sorted(set(written))}, resumed from "
          f"{sorted(set(resumed))}, {wall:.0f} s with a CPU hog beside it; test strict F1 "
          f"{row['metrics.test_strict_f1']:.4f} = uninterrupted {ref['metrics.test_strict_f1']:.4f}")
