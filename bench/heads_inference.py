"""Inference time of the softmax and CRF heads per 1000 sentences (AIONER compares the two),
minilm on the NCBI-disease test split (940 sentences), through the project's predict path.

    python bench/heads_inference.py [--repeats 3]
The heads are untrained: decoding cost does not depend on the weights.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf
from transformers import DataCollatorForTokenClassification, TrainingArguments, set_seed

from bioner_grid.align import make_windows
from bioner_grid.data import read_conll
from bioner_grid.modeling import build_model, load_tokenizer
from bioner_grid.train import WeightedLossTrainer, argmax_logits, predict

ROOT = Path(__file__).resolve().parent.parent
LABELS = ["O", "B-Disease", "I-Disease"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    sents = read_conll(Path(a.data) / "conll" / "NCBI-disease" / "test.tsv", "Disease").sentences
    train_cfg = OmegaConf.load(ROOT / "conf" / "train" / "default.yaml")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"minilm, NCBI-disease test ({len(sents)} sentences), device {device}, {torch.get_num_threads()} threads")
    for head in ("softmax", "crf"):
        mcfg = OmegaConf.merge(OmegaConf.load(ROOT / "conf" / "model" / "minilm.yaml"), {"head": head})
        tokenizer = load_tokenizer(mcfg)
        windows = make_windows(tokenizer, sents, {label: i for i, label in enumerate(LABELS)}, 128)
        set_seed(0)
        model = build_model(mcfg, LABELS, tokenizer)
        with tempfile.TemporaryDirectory() as tmp:
            args = TrainingArguments(tmp, per_device_eval_batch_size=int(train_cfg.eval_batch_size), report_to="none",
                                     use_cpu=device == "cpu", disable_tqdm=True)
            trainer = WeightedLossTrainer(model=model, args=args,
                                          data_collator=DataCollatorForTokenClassification(tokenizer),
                                          preprocess_logits_for_metrics=argmax_logits)
            predict(trainer, windows, dict(enumerate(LABELS)), len(sents))  # warm-up
            times = []
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                predict(trainer, windows, dict(enumerate(LABELS)), len(sents))
                times.append(time.perf_counter() - t0)
        best = min(times)
        print(f"{head:<8} {1000 * best / len(sents):6.2f} s per 1000 sentences (best of {a.repeats})")


if __name__ == "__main__":
    main()
