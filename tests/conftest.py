"""Shared fixtures: the real corpora in ../shared/datasets and small tokenizers of each family."""

from __future__ import annotations

import os
from pathlib import Path

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
