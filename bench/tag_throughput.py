"""Tagging throughput of ``python -m bioner_grid.tag`` on PubTator input: sentences/s and
abstracts/s, minilm, the NCBI-disease test file (100 abstracts), read + split + tag + write.

    python bench/tag_throughput.py [--model minilm] [--batch-size 32] [--repeats 3]

Prints wall-clock and CPU-time rates (the CPU-time one is the steadier on a shared machine).
The model is minilm with an untrained (random) head, saved as a run saves it (train.save_model):
tagging cost does not depend on the weights. Also prints the saved folder's size.
"""

from __future__ import annotations

import argparse
import io
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch
from transformers import set_seed

from bioner_grid import bundle, export, tag
from bioner_grid.config import compose
from bioner_grid.corpus import Adapter
from bioner_grid.modeling import build_model, load_tokenizer

ROOT = Path(__file__).resolve().parent.parent
LABELS = ["O", "B-Disease", "I-Disease"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"))
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    set_seed(0)
    cfg = compose([f"model={a.model}", f"data.root={a.data}"])
    tokenizer = load_tokenizer(cfg.model)
    corpus = SimpleNamespace(labels=LABELS, adapter=Adapter())  # a single corpus's labels
    source = Path(a.data) / "pubtator" / "NCBIdisease_Test.PubTator"
    with tempfile.TemporaryDirectory() as tmp:
        folder = bundle.save(cfg, Path(tmp) / "model", build_model(cfg.model, LABELS, tokenizer), tokenizer, corpus)
        tagger = tag.open_tagger(folder, batch_size=a.batch_size)
        print(f"{a.model}: saved folder {export.folder_size_mb(folder):.1f} MB; device {tagger.device}, "
              f"{torch.get_num_threads()} threads, batch {a.batch_size}, max_seq_length {tagger.max_seq_length}")
        best = cpu = None
        for _ in range(a.repeats):
            started, cpu_started = time.perf_counter(), time.process_time()
            shard = tag.read_shard(source, "pubtator")
            tagger.tag_documents(shard.documents)
            tag.write_pubtator(shard, io.StringIO())
            seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
            if best is None or seconds < best:
                best, cpu = seconds, cpu_seconds
        n_docs = len(shard.documents)
        n_sents = sum(len(p.sentences) for d in shard.documents for p in d.passages)
        print(f"{source.name}: {n_docs} abstracts, {n_sents} sentences; best of {a.repeats}: {best:.2f} s = "
              f"{n_sents / best:.0f} sentences/s, {n_docs / best:.1f} abstracts/s")
        # On a shared machine the wall time depends on the other processes; CPU time much less.
        print(f"CPU time {cpu:.2f} s (all threads) = {n_sents / cpu:.0f} sentences and {n_docs / cpu:.1f} abstracts "
              "per CPU-second")


if __name__ == "__main__":
    main()
