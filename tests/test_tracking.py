from omegaconf import OmegaConf

from bioner_grid.config import compose
from bioner_grid.identity import run_key
from bioner_grid.tracking import PARAM_LIMIT, flatten_params, resolve_uri


def test_flatten_params_covers_every_leaf_and_respects_mlflows_limit():
    cfg = OmegaConf.create({"a": {"b": 1, "c": [1, 2]}, "long": "x" * 7000, "n": None})
    params = flatten_params(cfg)
    assert params["a.b"] == "1" and params["a.c"] == "[1, 2]" and params["n"] == "None"
    assert len(params["long"]) == PARAM_LIMIT and params["long"].endswith("...[truncated]")
    real = flatten_params(compose(["data.root=/data"]))
    assert real["model.name"] == "minilm" and real["train.lr"] == "0.0001" and real["dataset.train"] == "/data/conll/NCBI-disease/train.tsv"


def test_relative_sqlite_uri_becomes_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_uri("sqlite:///outputs/mlflow.db") == f"sqlite:///{tmp_path}/outputs/mlflow.db"
    assert resolve_uri("sqlite:////abs/m.db") == "sqlite:////abs/m.db" and resolve_uri("http://h:5000") == "http://h:5000"


def test_settings_added_later_keep_the_earlier_keys_at_their_defaults():
    cfg = compose([])
    # a configuration from before train.select and data.train_on existed: a plain config, as one read
    # back from an old run's config.yaml (the composed one is typed and closed, and refuses deletion)
    old = OmegaConf.create(OmegaConf.to_container(compose([]), resolve=True))
    del old.train["select"]
    if "train_on" in old.data:
        del old.data["train_on"]
    assert run_key(cfg) == run_key(old)
    assert run_key(cfg) != run_key(compose(["train.select=last"]))


def test_metric_names_are_grouped_by_stage_in_mlflow_and_read_back_flat():
    from bioner_grid.store import flat_metric, metric_name as mlflow_metric

    expected = {"test_strict_f1": "test/strict_f1", "test_f1": "test/default_f1", "test_strict_Disease_f1": "test/strict_Disease_f1",
                "test_Disease_f1": "test/default_Disease_f1", "dev_epoch_strict_f1": "dev/epoch_strict_f1",
                "dev_epoch_f1": "dev/epoch_default_f1", "dev_epoch_loss": "dev/epoch_loss", "train_loss": "train/loss",
                "dev_epoch_pred_entities": "dev/epoch_pred_entities",  # the collapse sentinel's signal
                "train_seconds": "time/train_seconds", "test_seconds_per_1000_sentences": "time/test_seconds_per_1000_sentences",
                "data_train_n_B": "data/train_n_B", "peak_rss_mb": "memory/peak_rss_mb", "test_fair_LBE": "test/fair_LBE",
                "test_weighted_f1": "test/weighted_f1", "test_NCBIdisease_strict_f1": "test/NCBIdisease_strict_f1",
                "resumed": "train/resumed", "best_test_strict_f1": "sweep/best_test_strict_f1",
                "best_dev_strict_f1": "sweep/best_dev_strict_f1",
                "test_strict_f1_at_best_dev": "sweep/test_strict_f1_at_best_dev",
                "test_strict_f1_at_best_dev_ncbi_disease": "sweep/test_strict_f1_at_best_dev_ncbi_disease"}
    for flat, grouped in expected.items():
        assert mlflow_metric(flat) == grouped and flat_metric(grouped) == flat
        assert flat_metric(flat) == flat  # a store written before the grouping reads the same
    assert flat_metric("system/cpu_utilization_percentage") == "system/cpu_utilization_percentage"


def test_report_reads_old_flat_and_new_grouped_runs_into_the_same_columns(tmp_path):
    import mlflow

    from bioner_grid.report import load_runs

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("mixed")
    tags = {"model": "minilm", "dataset": "ncbi_disease", "scheme": "welt", "lr": "0.0001", "batch_size": "32"}
    with mlflow.start_run(tags={**tags, "seed": "1"}):
        mlflow.log_metrics({"test_strict_f1": 0.5, "dev_strict_f1": 0.4})  # logged before the grouping
    with mlflow.start_run(tags={**tags, "seed": "2"}):
        mlflow.log_metrics({"test/strict_f1": 0.7, "dev/strict_f1": 0.6})
    df = load_runs(uri, ["mixed"]).sort_values("seed")
    assert list(df["test_strict_f1"]) == [0.5, 0.7] and list(df["dev_strict_f1"]) == [0.4, 0.6]
    assert "test/strict_f1" not in df
