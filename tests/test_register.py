"""``register``: idempotent (a run already registered under a name is not registered again), and a
run whose scores are not finite is never the best (runs logged through the real MLflow API)."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from bioner_grid import register


def scored_run(client, experiment, tmp_path, dataset="ncbi", scheme="welt", dev=0.5, test=0.4, seed=1) -> str:
    """A FINISHED run with dev/test strict F1 and a saved model (an MLmodel folder, tag ``model_uri``)."""
    run = client.create_run(experiment, tags={"model": "tiny_bert", "dataset": dataset, "scheme": scheme, "lr": "0.001",
                                              "batch_size": "16", "seed": str(seed), "cell_key": f"{dataset}-{scheme}"})
    run_id = run.info.run_id
    model = tmp_path / f"model-{run_id}"
    model.mkdir()
    (model / "MLmodel").write_text("flavors: {}\n")
    client.log_artifacts(run_id, str(model), "model")
    client.set_tag(run_id, "model_uri", f"runs:/{run_id}/model")
    for name, value in {"dev_strict_f1": dev, "test_strict_f1": test, "test_f1": test}.items():
        client.log_metric(run_id, name, value)
    client.set_terminated(run_id, "FINISHED")
    return run_id


@pytest.fixture()
def store(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    return uri, client, client.create_experiment("grid", artifact_location=(tmp_path / "art").as_uri())


def test_register_twice_registers_one_version(store, tmp_path, capsys):
    uri, client, exp = store
    run_id = scored_run(client, exp, tmp_path)
    args = [f"tracking.uri={uri}", "report.experiment=grid", "name=best"]
    assert register.main(args) == 0
    assert f"registered models:/best-ncbi/1 (run {run_id})" in capsys.readouterr().out
    assert register.main(args) == 0
    assert f"already registered as models:/best-ncbi/1 (run {run_id}); nothing new" in capsys.readouterr().out
    versions = client.search_model_versions("name = 'best-ncbi'")
    assert [(str(v.version), v.run_id) for v in versions] == [("1", run_id)]


def test_a_better_run_later_gets_a_new_version_of_its_own(store, tmp_path, capsys):
    uri, client, exp = store
    first = scored_run(client, exp, tmp_path, scheme="vanilla", dev=0.5)
    args = [f"tracking.uri={uri}", "report.experiment=grid", "name=best"]
    assert register.main(args) == 0
    second = scored_run(client, exp, tmp_path, scheme="welt", dev=0.6)
    assert register.main(args) == 0
    assert register.main(args) == 0
    versions = sorted(client.search_model_versions("name = 'best-ncbi'"), key=lambda v: int(v.version))
    assert [v.run_id for v in versions] == [first, second]


@pytest.mark.parametrize("bad", [float("inf"), float("nan")], ids=["inf", "nan"])
def test_non_finite_dev_score_is_never_the_best(store, tmp_path, capsys, bad):
    uri, client, exp = store
    scored_run(client, exp, tmp_path, scheme="vanilla", dev=bad)
    good = scored_run(client, exp, tmp_path, scheme="welt", dev=0.3)
    assert register.main([f"tracking.uri={uri}", "report.experiment=grid", "name=best"]) == 0
    out = capsys.readouterr().out
    assert "ncbi: tiny_bert welt" in out and f"(run {good})" in out
    assert [v.run_id for v in client.search_model_versions("name = 'best-ncbi'")] == [good]
