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
    old = compose([])  # a configuration from before train.select and data.train_on existed
    OmegaConf.set_struct(old, False)
    del old.train["select"]
    if "train_on" in old.data:
        del old.data["train_on"]
    assert run_key(cfg) == run_key(old)
    assert run_key(cfg) != run_key(compose(["train.select=last"]))
