"""bioner_grid.estimate: plan's expected training times, from real finished tiny runs."""

from __future__ import annotations

import re

import pytest
from mlflow import MlflowClient

from bioner_grid import estimate
from conftest import app_inproc, run_inproc
from test_launchers import plan_inproc

TINY = ["model=tiny_bert", "scheme=vanilla", "data.max_train_sentences=48", "data.max_eval_sentences=16",
        "train.batch_size=16", "train.save_model=false"]


def test_expected_seconds_is_words_times_epochs_over_rate_with_length_and_precision_factors():
    assert estimate.expected_seconds(1000, 3, 50.0, 128, 128) == pytest.approx(60.0)
    longer = estimate.expected_seconds(1000, 3, 50.0, 128, 512)
    assert longer == pytest.approx(60.0 * (12 * 768 + 512) / (12 * 768 + 128))  # Kaplan et al.: C ∝ 12·d + L
    assert estimate.expected_seconds(1000, 3, 50.0, 128, 128, "fp32", "bf16") < 60.0 < \
        estimate.expected_seconds(1000, 3, 50.0, 128, 128, "bf16", "fp32")


def plan_line(out: str, needle: str) -> str:
    return next(line for line in out.splitlines() if needle in line)


@pytest.mark.slow  # a tiny training and a launch: ~30 s on an idle 2-core machine
def test_plan_estimates_a_rerun_from_a_finished_run_and_says_when_it_has_no_data(tmp_path, data_root, monkeypatch, capsys):
    store = [f"data.root={data_root}", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
             f"tracking.artifact_location={tmp_path}/artifacts"]
    first = run_inproc(tmp_path, data_root, *TINY, "train.epochs=1", out=tmp_path / "first")
    run = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db").get_run(first["run_id"])
    assert run.data.tags["device"] == "cpu"  # what the estimate needs to know: the device class it trained on
    # and, of its training time, its one dev evaluation's (an evaluation costs the same at any training size)
    assert run.data.metrics["train/evaluations"] == 1
    times = [run.data.metrics[f"time/train_{k}seconds"] for k in ("step_", "eval_", "")]
    assert 0 < times[0] and 0 < times[1] and times[0] + times[1] < times[2]

    # the same job for 2 epochs: plan's estimate, then the real run's measured training time
    r = plan_inproc(monkeypatch, capsys, tmp_path, *store, *TINY, "train.epochs=2")
    assert r.returncode == 0, r.stderr
    line = plan_line(r.stdout, "key ")
    m = re.search(r"train ~([\d.]+) (s|min) \(cpu, from 1 run\)", line)
    assert m, line
    estimated = float(m.group(1)) * (60 if m.group(2) == "min" else 1)
    assert "expected training time:" in r.stdout and "CPU-hours" in r.stdout
    # the same corpus, max_seq_length, precision and device: twice the recorded run's training time, as
    # printed (whole seconds or tenths of a minute). Deterministic: it never compares against a second
    # run's clock, which a loaded machine stretches (bench figures: README, "What a grid will cost").
    # its evaluations once per epoch at the time one took, its training at its rate
    expected = 2 * first["metrics"]["train_seconds"]
    assert abs(estimated - expected) <= (0.5 if expected < 60 else 3), (estimated, expected)

    # a model the store has never trained: said per job, counted in the total
    r = plan_inproc(monkeypatch, capsys, tmp_path, *store, *TINY, "model=bert")
    assert r.returncode == 0, r.stderr
    assert "no data to estimate from (no finished run of model bert)" in plan_line(r.stdout, "key ")
    assert "1 job(s) with no data to estimate from" in r.stdout

    # a SLURM launch whose time limit is below the estimate: refused before anything is submitted
    sweep = [*store, *TINY, "train.epochs=3000", "hydra/launcher=slurm", "hydra.launcher.timeout_min=1", "hydra.launcher.gpus_per_node=0",
             f"hydra.sweep.dir={tmp_path}/sweep", "grid.wait=false"]
    r = app_inproc(monkeypatch, capsys, tmp_path, "-m", *sweep, "grid.on_timeout_below_estimate=fail")
    assert r.returncode == 2, r.stderr[-2000:]
    assert "hydra.launcher.timeout_min: 1 job(s) expected to train longer than their time limit" in r.stderr
    assert "> timeout_min=1" in r.stderr and "nothing submitted" in r.stderr
    assert not (tmp_path / "sweep" / ".submitit").exists()


def test_on_timeout_below_estimate_is_a_typed_setting(tmp_path, data_root, monkeypatch, capsys):
    r = plan_inproc(monkeypatch, capsys, tmp_path, f"data.root={data_root}", f"tracking.uri=sqlite:///{tmp_path}/x.db",
                    "grid.on_timeout_below_estimate=maybe")
    assert r.returncode == 2
    assert "grid.on_timeout_below_estimate=maybe: must be one of warn, fail" in r.stderr


def test_a_learning_curve_size_is_estimated_as_its_fraction_of_the_whole_split(data_root):
    """``data.train_fraction``: the job trains on about that fraction of the split's words, so a run
    on the whole split (or a run of that very size, preferred) gives its words; a size in
    documents has no estimate without a run of that size (documents differ in length)."""
    from dataclasses import replace

    from bioner_grid.config import compose

    whole = estimate.Sample("minilm", "ncbi_disease", 100.0, 128, "bf16", "cpu", 40000.0, 2000.0, "train", "None")
    quarter = compose([f"data.root={data_root}", "dataset=ncbi_disease", "data.train_fraction=0.25"])
    assert estimate.corpus_words(quarter, [whole]) == pytest.approx(10000.0)
    same_size = replace(whole, words=9000.0, sentences=500.0, fraction="0.25")
    assert estimate.corpus_words(quarter, [whole, same_size]) == 9000.0
    assert estimate.corpus_words(compose([f"data.root={data_root}", "dataset=ncbi_disease"]), [whole, same_size]) == 40000.0
    assert estimate.corpus_words(compose([f"data.root={data_root}", "dataset=ncbi_disease", "data.train_documents=50"]),
                                 [whole]) is None
    # and plan's estimate follows: a quarter of the words, a quarter of the time
    full = estimate.estimate(compose([f"data.root={data_root}", "dataset=ncbi_disease", "model=minilm"]), [whole])
    part = estimate.estimate(compose([f"data.root={data_root}", "dataset=ncbi_disease", "model=minilm",
                                      "data.train_fraction=0.25"]), [whole])
    assert part.seconds == pytest.approx(full.seconds / 4)


def test_dev_evaluations_are_estimated_apart_from_training(data_root):
    """A run that recorded its optimiser steps' time apart: a job on the same corpus trains its own
    words at the steps' rate and spends per evaluation (one an epoch) what the run spent between
    steps, so a 10% learning-curve job is not estimated at a tenth of the whole run."""
    from bioner_grid.config import compose

    # 100 s in all: 60 s of steps training 40000 words x 4 epochs, 4 evaluations of 8 s, 8 s of checkpoints
    run = estimate.Sample("minilm", "ncbi_disease", 40000.0 * 4 / 60, 128, "bf16", "cpu", 40000.0, 2000.0, "train",
                          "None", evaluations=4.0, eval_seconds=32.0, other_seconds=8.0, dev_words=20000.0)
    tenth = compose([f"data.root={data_root}", "dataset=ncbi_disease", "model=minilm", "train.epochs=4",
                     "data.train_fraction=0.1"])
    assert estimate.estimate(tenth, [run]).seconds == pytest.approx(6.0 + 40.0)
    two = compose([f"data.root={data_root}", "dataset=ncbi_disease", "model=minilm", "train.epochs=2"])
    assert estimate.estimate(two, [run]).seconds == pytest.approx(30.0 + 20.0)
    # a dev split twice as long: its evaluations twice as long, the checkpoints as they were
    longer = estimate.Sample("minilm", "bc5cdr_disease", 1.0, 128, "bf16", "cpu", 1.0, 1.0, "train", "None",
                             dev_words=40000.0)
    other = compose([f"data.root={data_root}", "dataset=bc5cdr_disease", "model=minilm", "train.epochs=4"])
    assert estimate.evaluation_seconds(run, 4, estimate._dev_words(other, [run, longer]), 128, "bf16") == pytest.approx(72.0)


def test_all_in_one_variants_of_one_dataset_name_are_sized_by_their_own_runs(data_root):
    """``dataset=aio`` names every all-in-one corpus: one member alone (``dataset.only``) and the
    three merged differ threefold in words, so a job is sized by the runs whose dataset settings
    agree with its own (it used to take the median over all of them: every job the same time)."""
    from dataclasses import replace

    from bioner_grid.config import compose
    from bioner_grid.tracking import run_params

    one_cfg = compose([f"data.root={data_root}", "dataset=aio", "model=minilm", "dataset.only=[BioRED]"])
    all_cfg = compose([f"data.root={data_root}", "dataset=aio", "model=minilm", "dataset.merge=plain"])
    base = estimate.Sample("minilm", "aio", 100.0, 128, "bf16", "cpu", 10000.0, 300.0, "train", "None")
    one = replace(base, corpus=tuple(sorted(estimate.dataset_settings(run_params(one_cfg)).items())))
    merged = replace(base, words=30000.0, sentences=900.0,
                     corpus=tuple(sorted(estimate.dataset_settings(run_params(all_cfg)).items())))
    assert dict(one.corpus)["dataset.merge"] == "tags"  # unlogged at its default: read as the default
    jobs = [estimate.estimate(c, [one, merged]).seconds for c in (one_cfg, all_cfg)]
    assert jobs[1] == pytest.approx(3 * jobs[0])
    # the merged corpus with task tags (the default merge) has no run: not sized by the plain one's
    tags_cfg = compose([f"data.root={data_root}", "dataset=aio", "model=minilm"])
    assert estimate.estimate(tags_cfg, [one, merged]).seconds is None
    assert estimate.estimate(tags_cfg, [base]).seconds is not None  # a run without dataset params still counts
