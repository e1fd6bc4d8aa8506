"""Adaptive search with pruning (``hydra/sweeper=optuna``: bioner_grid/search.py and the sweeper in
launchers/hydra_plugins/bioner_grid_launcher/optuna_sweeper.py), on tiny_bert over a slice of
NCBI-disease (``debug=quick``), a few steps per trial, run through the real Hydra app in this
process (``app_inproc``), each into its own SQLite store under tmp_path."""

from __future__ import annotations

import math

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from bioner_grid import search
from bioner_grid.errors import ConfigError
from conftest import app_inproc, runs
from test_slurm import slurm  # noqa: F401 (the fixture: a SLURM cluster answers, else skip)


def args(tmp_path, data_root, *extra, store="mlflow"):
    """A search of tiny trials: 2 optimiser steps, a dev evaluation after each."""
    return ["-m", "hydra/sweeper=optuna", f"data.root={data_root}", f"tracking.uri=sqlite:///{tmp_path}/{store}.db",
            f"tracking.artifact_location={tmp_path}/artifacts", "debug=quick", "train.max_steps=2",
            "train.checkpoint_steps=1", "train.save_model=false", "tracking.system_metrics=false",
            "train.patience=null", "hydra.sweeper.sampler.seed=7", f"hydra.sweep.dir={tmp_path}/multirun",
            *extra]


def study_of(tmp_path, store="mlflow") -> optuna.Study:
    storage = f"sqlite:///{tmp_path}/{store}.optuna.db"
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


# ---------------------------------------------------------------------------------------------
# The search space and the settings (no training)


def test_search_space_overrides_parse_as_the_hydra_optuna_plugin_reads_them():
    space, fixed = search.parse_space(["train.lr=tag(log, interval(1e-5, 1e-3))", "train.batch_size=choice(8,16,32)",
                                       "train.epochs=range(1,4)", "train.warmup_ratio=interval(0.0, 0.2)",
                                       "scheme=choice(vanilla,welt)", "dataset=ncbi_disease", "train.seed=3"])
    assert space == {"train.lr": FloatDistribution(1e-5, 1e-3, log=True),
                     "train.batch_size": CategoricalDistribution([8, 16, 32]),
                     "train.epochs": IntDistribution(1, 3),  # Hydra's range excludes its stop
                     "train.warmup_ratio": FloatDistribution(0.0, 0.2),
                     "scheme": CategoricalDistribution(["vanilla", "welt"])}
    assert fixed == ["dataset=ncbi_disease", "train.seed=3"]
    assert search.probe(space) == ["train.lr=1e-05", "train.batch_size=8", "train.epochs=1", "train.warmup_ratio=0.0",
                                   "scheme=vanilla"]
    assert search.varying(space) == ["lr", "batch_size", "scheme"]
    # a sampled float goes on the command line in full (the run key hashes the value)
    assert search.override("train.lr", 0.00012345678901234) == "train.lr=0.00012345678901234"
    for bad, message in (("train.lr=interval(1e-3, 1e-5)", "start < end"), ("train.lr=tag(log, interval(0.0, 1.0))", "start > 0"),
                         ("train.epochs=range(3,3)", "empty"), ("train.lr=glob(*)", "choice")):
        with pytest.raises(ConfigError, match=message):
            search.parse_space([bad])


def test_settings_refuse_a_test_metric_and_name_each_bad_key():
    ok = {"kind": "median", "n_startup_trials": 2, "n_warmup_steps": 0, "min_resource": 1, "reduction_factor": 3}
    assert search.settings_problems("dev_strict_f1", "maximize", 4, 1, {"kind": "tpe"}, ok) == []
    [line] = search.settings_problems("test_strict_f1", "maximize", 4, 1, {"kind": "tpe"}, ok)
    assert line.startswith("hydra.sweeper.metric=test_strict_f1: a search chooses on dev, never on test")
    found = search.settings_problems("dev_loss", "minimize", 0, 1, {"kind": "grid"}, {**ok, "kind": "hyperband"})
    assert [p.split(":")[0] for p in found] == ["hydra.sweeper.metric=dev_loss", "hydra.sweeper.direction=minimize",
                                                "hydra.sweeper.n_trials=0", "hydra.sweeper.sampler.kind=grid",
                                                "hydra.sweeper.pruner.kind=hyperband"]


def test_the_study_lives_beside_the_tracking_store(tmp_path):
    assert search.default_storage(f"sqlite:///{tmp_path}/mlflow.db") == f"sqlite:///{tmp_path}/mlflow.optuna.db"
    assert search.default_storage(str(tmp_path / "mlruns")) == f"sqlite:///{tmp_path}/mlruns/optuna.db"
    assert search.default_storage("http://login:5000").endswith("outputs/optuna/studies.journal")
    with pytest.raises(ConfigError, match="PGPASSWORD"):
        search.check_storage("postgresql://mlflow:secret@db:5432/optuna")
    search.check_storage("postgresql://mlflow@db:5432/optuna")


@pytest.mark.parametrize("bad,line", [
    (["hydra.sweeper.metric=test_strict_f1"], "error: hydra.sweeper.metric=test_strict_f1: a search chooses on dev"),
    (["train.lrr=tag(log, interval(1e-5, 1e-3))"], "error: train.lrr: no such key (did you mean train.lr?)"),
    (["train.batch_size=choice(8,0)", "train.lr=-1"], "error: train.lr=-1.0: must be > 0"),
])
def test_bad_input_stops_with_one_line_and_exit_2_before_anything_is_recorded(tmp_path, data_root, monkeypatch, capsys,
                                                                             bad, line):
    space = [] if any("=choice" in b or "=tag" in b for b in bad) else ["train.lr=tag(log, interval(1e-5, 1e-3))"]
    r = app_inproc(monkeypatch, capsys, tmp_path, *args(tmp_path, data_root, *space, *bad))
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(line), r.stderr
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlflow.optuna.db").exists()
    assert not (tmp_path / "multirun").exists()


def test_plan_lists_a_search_space_and_says_how_many_trials_run(tmp_path, data_root, capsys):
    """A search command pasted into plan: the cells of a discrete space; a continuous key at its
    two ends (checked and estimated there), with a note that the trials' values come later; the
    rules checked on every listed configuration; nothing created."""
    from bioner_grid import cli

    store = f"tracking.uri=sqlite:///{tmp_path}/absent.db"
    common = ["-m", "debug=quick", f"data.root={data_root}", store, "hydra/sweeper=optuna", "hydra.sweeper.n_trials=5"]
    assert cli.run("plan", [*common, "train.lr=choice(1e-4,3e-4)", "train.batch_size=choice(8,16,32)"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("experiment adhoc: 6 configurations of its search space;")
    assert out[1].startswith("search (hydra/sweeper=optuna): at most n_trials=5 trials over train.lr=choice(1e-4,3e-4), "
                             "train.batch_size=choice(8,16,32); 6 cells listed;")
    assert sum(" TODO " in line for line in out) == 6
    assert cli.run("plan", [*common, "train.lr=tag(log, interval(1e-5, 1e-3))", "train.batch_size=choice(8,16)"]) == 0
    out = capsys.readouterr().out.splitlines()
    listed = [line.split()[1:3] for line in out if " TODO " in line]
    assert listed == [["train.lr=1e-05", "train.batch_size=8"], ["train.lr=1e-05", "train.batch_size=16"],
                      ["train.lr=0.001", "train.batch_size=8"], ["train.lr=0.001", "train.batch_size=16"]]
    assert "train.lr: listed at the ends of its interval" in out[1]
    # a value of hydra.sweeper.params that is no space is in every job, as the sweeper gives it
    from bioner_grid.plan import search_cells

    jobs, note = search_cells({"train.epochs": "1", "train.lr": "choice(1e-4,3e-4)"}, 4)
    assert jobs == [["train.epochs=1", "train.lr=0.0001"], ["train.epochs=1", "train.lr=0.0003"]]
    assert "over train.lr=choice(1e-4,3e-4);" in note
    assert cli.run("plan", [*common, "train.lr=interval(-1, 1e-3)"]) == 2  # a rule broken at an end: one line
    assert capsys.readouterr().err.strip().startswith("error: train.lr=-1.0: must be > 0")
    assert not (tmp_path / "absent.db").exists()


# ---------------------------------------------------------------------------------------------
# Searches that train (a few seconds per trial)


def test_trials_are_child_runs_and_a_relaunch_continues_the_study_training_nothing_twice(tmp_path, data_root,
                                                                                        monkeypatch, capsys):
    space = ["train.lr=tag(log, interval(1e-5, 1e-3))", "train.batch_size=choice(8,16)"]
    r = app_inproc(monkeypatch, capsys, tmp_path, *args(tmp_path, data_root, "hydra.sweeper.n_trials=2", *space))
    assert r.returncode == 0, r.stderr
    df = runs(tmp_path, parents=True)
    parent = df[df["tags.kind"] == "sweep"]
    children = df[df["tags.kind"] != "sweep"]
    assert len(parent) == 1 and len(children) == 2  # one parent for the whole search, not one per batch
    assert set(children["tags.mlflow.parentRunId"]) == set(parent["run_id"])
    assert sorted(children["tags.trial"]) == ["0", "1"]
    assert set(children["tags.pruned"]) == {"false"} and set(children["status"]) == {"FINISHED"}
    assert parent["tags.search"].item() == "optuna" and parent["status"].item() == "FINISHED"
    study = study_of(tmp_path)
    assert parent["tags.study"].item() == study.study_name
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    by_trial = dict(zip(children["tags.trial"].astype(int), children["metrics.dev_strict_f1"]))
    assert {t.number: t.value for t in study.trials} == by_trial  # dev strict F1 (never test) is the objective
    assert {t.user_attrs["run_id"] for t in study.trials} == set(children["run_id"])
    assert all(len(t.intermediate_values) == 2 for t in study.trials)  # each job reported both evaluations
    assert "study " + study.study_name in r.stdout and "best dev_strict_f1" in r.stdout

    # the same command again: the study holds its n_trials, nothing runs
    r = app_inproc(monkeypatch, capsys, tmp_path, *args(tmp_path, data_root, "hydra.sweeper.n_trials=2", *space))
    assert r.returncode == 0, r.stderr
    assert "2 trial(s): 2 complete, 0 pruned, 0 failed; this launch trained 0, reused 0" in r.stdout
    assert len(runs(tmp_path, parents=True)) == 3

    # a new study over the same store with the same seed asks the same configurations: every one is
    # FINISHED in the store, so their dev F1 is reused and nothing trains (no new run, no new parent)
    r = app_inproc(monkeypatch, capsys, tmp_path, *args(tmp_path, data_root, "hydra.sweeper.n_trials=2",
                                                          "hydra.sweeper.study_name=again", *space))
    assert r.returncode == 0, r.stderr
    assert "this launch trained 0, reused 2 FINISHED run(s)" in r.stdout
    assert len(runs(tmp_path, parents=True)) == 3
    again = optuna.load_study(study_name="again", storage=f"sqlite:///{tmp_path}/mlflow.optuna.db")
    assert [t.params for t in again.trials] == [t.params for t in study.trials]
    assert [t.value for t in again.trials] == [t.value for t in study.trials]
    assert [t.intermediate_values for t in again.trials] == [t.intermediate_values for t in study.trials]
    assert all(t.user_attrs["reused"] for t in again.trials)


def study_of_name(tmp_path, name):
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path}/mlflow.optuna.db")


def seed_study(tmp_path, name: str, curve: dict[int, float], store="mlflow") -> None:
    """The study ``name`` with one COMPLETE trial whose dev F1 curve is ``curve`` (as an earlier
    search would have left it), and the pruner the searches below use, so that the median pruner
    (n_startup_trials=1) compares every new trial with it from the first evaluation on."""
    study = optuna.create_study(study_name=name, storage=f"sqlite:///{tmp_path}/{store}.optuna.db", direction="maximize")
    for key, value in (("metric", "dev_strict_f1"), ("sampler", {"kind": "tpe", "seed": 7}), ("pruner", PRUNER)):
        study.set_user_attr(key, value)
    study.add_trial(optuna.trial.create_trial(
        params={"train.lr": 1e-4}, distributions={"train.lr": FloatDistribution(1e-5, 1e-3, log=True)},
        value=max(curve.values()), intermediate_values=curve))


PRUNER = {"kind": "median", "n_startup_trials": 1, "n_warmup_steps": 0, "min_resource": 1, "reduction_factor": 3}
PRUNED = ["hydra.sweeper.pruner.n_startup_trials=1", "hydra.sweeper.study_name=pruning"]


def test_a_pruned_run_stops_early_ends_finished_tagged_pruned_keeps_its_metrics_and_is_never_resumed(
        tmp_path, data_root, monkeypatch, capsys):
    seed_study(tmp_path, "pruning", {1: 0.9, 2: 0.95})  # no tiny_bert reaches this after one step
    space = ["train.lr=tag(log, interval(1e-5, 1e-3))"]
    r = app_inproc(monkeypatch, capsys, tmp_path, *args(tmp_path, data_root, "hydra.sweeper.n_trials=2", *PRUNED, *space))
    assert r.returncode == 0, r.stderr
    [run] = runs(tmp_path).to_dict("records")
    assert run["status"] == "FINISHED" and run["tags.pruned"] == "true" and run["tags.pruned_at_evaluation"] == "1"
    assert run["tags.trial"] == "1"
    assert run["tags.mlflow.note.content"].startswith("**Pruned** by the adaptive search after evaluation 1")  # its page says so
    assert run["metrics.train_steps"] == 1  # stopped after its first evaluation, of max_steps=2
    assert math.isfinite(run["metrics.dev_strict_f1"]) and math.isfinite(run["metrics.test_strict_f1"])  # kept
    study = study_of_name(tmp_path, "pruning")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.PRUNED]
    assert list(study.trials[1].intermediate_values) == [1]
    assert "1 pruned" in r.stdout

    # skip-finished treats it as done: a new study asking the same configuration reuses it as PRUNED
    seed_study(tmp_path, "pruning2", {1: 0.9, 2: 0.95})
    r = app_inproc(monkeypatch, capsys, tmp_path, *args(tmp_path, data_root, "hydra.sweeper.n_trials=2",
                                                          "hydra.sweeper.pruner.n_startup_trials=1",
                                                          "hydra.sweeper.study_name=pruning2", *space))
    assert r.returncode == 0, r.stderr
    assert "reused 1 FINISHED run(s)" in r.stdout and len(runs(tmp_path)) == 1
    assert study_of_name(tmp_path, "pruning2").trials[1].state == TrialState.PRUNED

    # the report counts it apart and ranks nothing with it
    from bioner_grid import report
    from bioner_grid.runtable import finished

    df = report.load_runs(f"sqlite:///{tmp_path}/mlflow.db", ["bioner-grid"])
    assert finished(df).empty
    _, notes = report.build(df)
    assert any(n.startswith("1 pruned run(s)") for n in notes), notes


@pytest.mark.slow
def test_a_relaunch_runs_a_trial_an_interrupted_launch_left_running_under_its_own_number(tmp_path, data_root,
                                                                                       monkeypatch, capsys):
    """A launch stopped mid-batch leaves its trials RUNNING in the study; the same command again runs
    them (their jobs resume their runs by run key) before it asks any new trial."""
    study = optuna.create_study(study_name="resume", storage=f"sqlite:///{tmp_path}/mlflow.optuna.db",
                                direction="maximize")
    for key, value in (("metric", "dev_strict_f1"), ("sampler", {"kind": "tpe", "seed": 7}),
                       ("pruner", {**PRUNER, "n_startup_trials": 2})):
        study.set_user_attr(key, value)
    left = study.ask(fixed_distributions={"train.lr": FloatDistribution(1e-5, 1e-3, log=True)})
    r = app_inproc(monkeypatch, capsys, tmp_path, *args(tmp_path, data_root, "hydra.sweeper.n_trials=1",
                                                          "hydra.sweeper.study_name=resume",
                                                          "train.lr=tag(log, interval(1e-5, 1e-3))"))
    assert r.returncode == 0, r.stderr
    [trial] = study_of_name(tmp_path, "resume").trials
    assert trial.number == left.number == 0 and trial.state == TrialState.COMPLETE
    [run] = runs(tmp_path).to_dict("records")
    assert run["tags.trial"] == "0" and float(run["tags.lr"]) == left.params["train.lr"]


@pytest.mark.slow
def test_the_same_seed_and_study_give_the_same_trials_and_pruning_decisions(tmp_path, data_root, monkeypatch, capsys):
    """Two searches from scratch, each with its own tracking store and study (nothing to reuse):
    the same trials, the same dev curves and the same pruning decisions."""
    space = ["train.lr=tag(log, interval(3e-3, 3e-2))"]  # fast enough for tiny_bert to find entities in 8 steps
    seen = []
    for store in ("a", "b"):
        seed_study(tmp_path, "pruning", {1: 0.0, 2: 0.01}, store=store)  # pruned: below 1% dev F1 at evaluation 2
        r = app_inproc(monkeypatch, capsys, tmp_path, *args(tmp_path, data_root, "hydra.sweeper.n_trials=4", *PRUNED,
                                                              "train.max_steps=8", "train.checkpoint_steps=4",
                                                              "train.batch_size=8", *space, store=store))
        assert r.returncode == 0, r.stderr
        study = optuna.load_study(study_name="pruning", storage=f"sqlite:///{tmp_path}/{store}.optuna.db")
        seen.append([(t.params, t.state, t.intermediate_values) for t in study.trials])
    print("trials:", *(f"{p} {s.name} {dict(v)}" for p, s, v in seen[0]), sep="\n  ")
    assert seen[0] == seen[1]
    assert len({str(p) for p, _, _ in seen[0]}) == 4  # four different configurations were tried
    assert {s for _, s, _ in seen[0][1:]} == {TrialState.COMPLETE, TrialState.PRUNED}  # decisions, not all alike


@pytest.mark.slurm
def test_a_batch_of_n_jobs_trials_runs_as_one_sbatch_array_each_job_reporting_to_the_study(slurm, tmp_path, data_root):
    """``hydra.sweeper.n_jobs=2`` through the SLURM launcher: two trials in one job array, each job
    in its own process attaching to its trial through the study's SQLite file."""
    from conftest import cli
    from test_slurm import ON_CLUSTER

    given = args(tmp_path, data_root, "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2",
                 "train.lr=tag(log, interval(1e-5, 1e-3))", *ON_CLUSTER)
    r = cli(tmp_path, data_root, *[a for a in given[1:] if not a.startswith(("data.root=", "tracking."))], multirun=True)
    assert r.returncode == 0, r.stderr[-3000:]
    tasks = sorted(p.name for p in (tmp_path / "multirun" / ".submitit").iterdir() if p.is_dir() and "_" in p.name)
    assert len(tasks) == 2 and len({t.split("_")[0] for t in tasks}) == 1, tasks  # one array, two tasks
    study = study_of(tmp_path)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2
    assert all(len(t.intermediate_values) == 2 for t in study.trials)  # reported from the SLURM jobs
    df = runs(tmp_path, parents=True)
    parent = df[df["tags.kind"] == "sweep"]
    assert len(parent) == 1 and sorted(df[df["tags.kind"] != "sweep"]["tags.trial"]) == ["0", "1"]
