"""Shared fixtures and helpers: the real corpora in ../shared/datasets, small tokenizers of each
family, and the command line run into a temporary MLflow store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("BIONER_DATA", ROOT.parent / "shared" / "datasets")).resolve()
NCBI = DATA / "conll" / "NCBI-disease"


@pytest.fixture(scope="session")
def data_root() -> Path:
    if not (NCBI / "train.tsv").is_file():
        pytest.fail(f"real corpora not found under {DATA} (set BIONER_DATA)")
    return DATA


@pytest.fixture(scope="session")
def minilm_tokenizer():
    from omegaconf import OmegaConf

    from bioner_grid.modeling import load_tokenizer

    return load_tokenizer(OmegaConf.load(ROOT / "conf" / "model" / "minilm.yaml"))


SLICE = ["debug=quick"]  # tiny_bert, 96 training / 40 evaluation sentences, 2 epochs (conf/debug/quick.yaml)


def cli(tmp_path: Path, data_root, *overrides, multirun=False):
    args = [sys.executable, "-m", "bioner_grid", *(["-m"] if multirun else []), f"data.root={data_root}",
            f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", f"tracking.artifact_location={tmp_path}/artifacts",
            *overrides]
    return subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600)


def runs(tmp_path, parents=False):
    """The training runs of the store (``parents=True``: with the sweeps' parent runs), metric columns
    under their flat names (``metrics.test_strict_f1``) as the report reads them; MLflow holds them
    grouped by stage (``test/strict_f1``, tests/test_tracking.py)."""
    from bioner_grid.store import flat_metric

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    df = mlflow.search_runs(experiment_names=["bioner-grid"], order_by=["start_time ASC"])
    df = df.rename(columns={c: f"metrics.{flat_metric(c[len('metrics.'):])}" for c in df.columns if c.startswith("metrics.")})
    if not parents and "tags.kind" in df:
        df = df[df["tags.kind"].fillna("") != "sweep"].reset_index(drop=True)
    return df
