"""Real pretrained MiniLM fine-tuned briefly on real NCBI-disease learns far above chance."""

import json

import pytest

from conftest import cli


@pytest.mark.slow
def test_minilm_fine_tunes_on_ncbi(tmp_path, data_root):
    r = cli(tmp_path, data_root, "model=minilm", "data.max_train_sentences=1600", "train.epochs=1", "train.lr=1e-4",
            "train.batch_size=16", f"hydra.run.dir={tmp_path}/run")
    assert r.returncode == 0, r.stderr[-3000:]
    metrics = json.loads((tmp_path / "run" / "result.json").read_text())["metrics"]
    # A tagger that knows nothing scores ~0 entity-level F1; measured here: 0.592 strict F1 on the full test split (27 s of training).
    print(f"minilm, 1600 NCBI sentences, 1 epoch: test strict F1 {metrics['test_strict_f1']:.3f}, "
          f"{metrics['train_seconds']:.0f} s of training")
    assert metrics["test_strict_f1"] > 0.45, metrics
