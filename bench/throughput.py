"""Training throughput of our pipeline against the WeLT reference code's batching, on minilm + NCBI.

ours fp32: dynamic padding (DataCollatorForTokenClassification) + length-grouped batches of 32
ours bf16: the same batches under bf16 autocast (``train.precision=bf16``; on CPUs with AVX512-BF16/AMX
           or a CUDA GPU that supports it -- what ``train.precision=auto`` picks there)
reference: every sequence padded to 384 sub-tokens, random batches of 5, fp32 (the WeLT reference code)

Both run the same model, loss and Trainer for a fixed number of optimiser steps; the first steps
are warm-up and not timed. Prints sentences/s and non-pad tokens/s of each, `bf16 vs fp32: N.Nx`,
and `speedup: N.Nx` (the best of ours against the reference, sentences/s) on its last line.

    python bench/throughput.py [--steps-ours 0] [--steps-ref 40] [--data ../shared/datasets]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from transformers import DataCollatorForTokenClassification, TrainerCallback, TrainingArguments, set_seed

from bioner_grid.align import make_windows
from bioner_grid.data import read_conll
from bioner_grid.modeling import build_model, load_tokenizer
from bioner_grid.train import WeightedLossTrainer

ROOT = Path(__file__).resolve().parent.parent
LABELS = ["O", "B-Disease", "I-Disease"]
WARMUP = 3


class CountingCollator:
    """Wraps a collator; counts sentences, non-pad and total tokens of every batch."""

    def __init__(self, inner):
        self.inner, self.batches = inner, []

    def __call__(self, features):
        batch = self.inner(features)
        mask = batch["attention_mask"]
        self.batches.append((mask.shape[0], int(mask.sum()), mask.numel()))
        return batch


class StepTimer(TrainerCallback):
    def __init__(self):
        self.ends = []

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(time.perf_counter())


def measure(name, tokenizer, features, batch_size, steps, padding, length_grouped, mcfg, bf16=False):
    set_seed(0)
    model = build_model(mcfg, LABELS, tokenizer)
    kwargs = {"padding": "max_length", "max_length": 384} if padding == "max_length" else {}
    collator = CountingCollator(DataCollatorForTokenClassification(tokenizer, **kwargs))
    timer = StepTimer()
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(tmp, max_steps=steps, per_device_train_batch_size=batch_size, learning_rate=5e-5,
                                 train_sampling_strategy="group_by_length" if length_grouped else "random",
                                 use_cpu=not torch.cuda.is_available(), report_to="none", save_strategy="no",
                                 disable_tqdm=True, logging_strategy="no", seed=0, bf16=bf16)
        trainer = WeightedLossTrainer(model=model, args=args, train_dataset=features, data_collator=collator,
                                      callbacks=[timer], class_weights=[0.2167, 0.4192, 0.3641])
        trainer.train()
    seconds = timer.ends[-1] - timer.ends[WARMUP - 1]
    timed = collator.batches[WARMUP:steps]
    sents = sum(b[0] for b in timed)
    real = sum(b[1] for b in timed)
    total = sum(b[2] for b in timed)
    print(f"{name:<10} batch {batch_size:>2}  {len(timed)} timed steps  {sents / seconds:7.1f} sentences/s  "
          f"{real / seconds:8.0f} non-pad tokens/s  padding {100 * (1 - real / total):4.1f}%")
    return sents / seconds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--steps-ours", type=int, default=0, help="0: one whole epoch")
    ap.add_argument("--steps-ref", type=int, default=40)
    a = ap.parse_args()
    mcfg = OmegaConf.load(ROOT / "conf" / "model" / "minilm.yaml")
    tokenizer = load_tokenizer(mcfg)
    sents = read_conll(Path(a.data) / "conll" / "NCBI-disease" / "train.tsv", "Disease").sentences
    l2i = {label: i for i, label in enumerate(LABELS)}
    print(f"minilm on NCBI-disease train ({len(sents)} sentences), device "
          f"{'cuda' if torch.cuda.is_available() else 'cpu'}, {torch.get_num_threads()} threads")
    features = [w.features() for w in make_windows(tokenizer, sents, l2i, 128)]
    steps = a.steps_ours or len(features) // 32
    ours = measure("ours fp32", tokenizer, features, 32, steps, "dynamic", True, mcfg)
    ours_bf16 = measure("ours bf16", tokenizer, features, 32, steps, "dynamic", True, mcfg, bf16=True)
    ref = measure("reference", tokenizer, [w.features() for w in make_windows(tokenizer, sents, l2i, 384)], 5,
                  a.steps_ref, "max_length", False, mcfg)
    print(f"bf16 vs fp32: {ours_bf16 / ours:.1f}x")
    print(f"speedup: {max(ours, ours_bf16) / ref:.1f}x")


if __name__ == "__main__":
    main()
