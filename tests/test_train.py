"""Length-grouped training batches that a resumed run draws exactly as an uninterrupted one."""

import torch
from omegaconf import OmegaConf
from transformers import DataCollatorForTokenClassification, TrainingArguments

from bioner_grid.align import make_windows
from bioner_grid.data import read_conll
from bioner_grid.modeling import build_model
from bioner_grid.train import EpochSeededLengthGroupedSampler, WeightedLossTrainer
from conftest import NCBI, ROOT

LABELS = ["O", "B-Disease", "I-Disease"]


def test_shuffle_depends_on_seed_and_epoch_only():
    lengths = [(i * 37) % 50 + 1 for i in range(200)]
    a = EpochSeededLengthGroupedSampler(lengths, batch_size=16, seed=42)
    b = EpochSeededLengthGroupedSampler(lengths, batch_size=16, seed=42)
    orders = []
    for epoch in range(3):
        a.set_epoch(epoch)
        torch.manual_seed(epoch * 1000)  # the global RNG, in whatever state, plays no part
        first = list(a)
        b.set_epoch(epoch)
        assert list(b) == first and sorted(first) == list(range(200))
        orders.append(first)
    assert orders[0] != orders[1] != orders[2]  # a new shuffle every epoch
    # length-grouped: the lengths within a batch are far closer than in batches of a plain shuffle
    def median_spread(order):
        spread = sorted(max(lengths[i] for i in order[k:k + 16]) - min(lengths[i] for i in order[k:k + 16])
                        for k in range(0, 192, 16))
        return spread[len(spread) // 2]
    shuffled = torch.randperm(200, generator=torch.Generator().manual_seed(0)).tolist()
    assert median_spread(orders[0]) * 2 < median_spread(shuffled)

def test_trainer_uses_it_and_moves_it_to_each_new_epoch(tmp_path, minilm_tokenizer, monkeypatch):
    seen = []
    iterate = EpochSeededLengthGroupedSampler.__iter__
    monkeypatch.setattr(EpochSeededLengthGroupedSampler, "__iter__", lambda self: seen.append(self.epoch) or iterate(self))
    cfg = OmegaConf.load(ROOT / "conf" / "model" / "tiny_bert.yaml")
    windows = make_windows(minilm_tokenizer, read_conll(NCBI / "train.tsv", "Disease").sentences[:48],
                           {label: i for i, label in enumerate(LABELS)}, 64)
    args = TrainingArguments(str(tmp_path), num_train_epochs=3, per_device_train_batch_size=16, use_cpu=True,
                             report_to="none", save_strategy="no", disable_tqdm=True, seed=7,
                             train_sampling_strategy="group_by_length")
    trainer = WeightedLossTrainer(model=build_model(cfg, LABELS, minilm_tokenizer), args=args,
                                  train_dataset=[w.features() for w in windows],
                                  data_collator=DataCollatorForTokenClassification(minilm_tokenizer))
    trainer.train()
    assert trainer.state.global_step == 9 and seen == [0, 1, 2]
