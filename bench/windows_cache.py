"""Per-job time the tokenised-window cache saves: ``make_windows`` on train/dev/test of a corpus
(cold: tokenise and write the cache) against a cache hit (digest + validated .npz read), minilm, best of 3.

    python bench/windows_cache.py [--data ../shared/datasets]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from omegaconf import OmegaConf

from bioner_grid.align import cached_windows
from bioner_grid.data import read_conll
from bioner_grid.modeling import load_tokenizer

ROOT = Path(__file__).resolve().parent.parent
CORPORA = {"NCBI-disease": "Disease", "BC5CDR-disease": "Disease", "BC5CDR-chem": "Chemical", "BC2GM": "GENE",
           "linnaeus": "Species"}


def best_of(n, fn) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets"))
    a = ap.parse_args()
    tokenizer = load_tokenizer(OmegaConf.load(ROOT / "conf" / "model" / "minilm.yaml"))
    for corpus, etype in CORPORA.items():
        folder = Path(a.data) / "conll" / corpus
        if not folder.is_dir():
            print(f"{corpus:<15} not found under {folder.parent}")
            continue
        splits = [read_conll(folder / f"{s}.tsv", etype).sentences for s in ("train", "devel", "test")]
        l2i = {"O": 0, f"B-{etype}": 1, f"I-{etype}": 2}
        n = sum(len(s) for s in splits)

        def cold():
            with tempfile.TemporaryDirectory() as d:
                [cached_windows(tokenizer, s, l2i, 128, d) for s in splits]

        with tempfile.TemporaryDirectory() as d:
            [cached_windows(tokenizer, s, l2i, 128, d) for s in splits]
            warm = best_of(3, lambda: [cached_windows(tokenizer, s, l2i, 128, d) for s in splits])
        c = best_of(3, cold)
        print(f"{corpus:<15} {n:>6} sentences  tokenise {c:5.2f} s  cache hit {warm:5.2f} s  saved {c - warm:5.2f} s per job")


if __name__ == "__main__":
    main()
