"""Time the report on a WeLT-sized store: 280 runs (5 models x 8 corpora x 7 schemes) logged
through the MLflow API into a fresh SQLite store, then `bioner_grid.report` end to end.

    python bench/report_280.py [--seeds 1] [--keep DIR] [--no-artifacts]
Prints the logging time, the report time (load runs + tables + figures + HTML) and its size. Each run
also logs a predictions_test.conll (940 sentences x 25 tokens, the size of NCBI's test split; the
same gold per corpus, predictions varied per run) and an error_analysis_test.json, so that the
report's paired bootstraps (report.resamples, 10,000 per pair by default) and error profiles are timed:
once with the artifacts fetched from the store, once again from the report's cache.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric, RunTag

from bioner_grid import report, runtable

MODELS = ["biobert", "bluebert", "pubmedbert", "scibert", "bioelectra"]
DATASETS = ["ncbi_disease", "bc5cdr_disease", "bc5cdr_chem", "bc2gm", "linnaeus", "bc4chemd", "biored_chem", "biored_disease"]


SENTENCES, TOKENS = 940, 25


def gold_tags(dataset: str) -> np.ndarray:
    """(sentences, tokens) tag ids 0=O 1=B 2=I of a made-up corpus: ~1 entity of 1-3 tokens per sentence."""
    rng = np.random.default_rng(zlib.crc32(dataset.encode()))
    tags = np.zeros((SENTENCES, TOKENS), dtype=np.int8)
    for i in range(SENTENCES):
        for start in rng.choice(TOKENS - 3, rng.integers(0, 3), replace=False):
            tags[i, start], tags[i, start + 1 : start + rng.integers(1, 4)] = 1, 2
    return tags


def predicted_tags(gold: np.ndarray, rng, error: float) -> np.ndarray:
    pred = gold.copy()
    flip = rng.random(gold.shape) < error
    pred[flip] = rng.integers(0, 3, int(flip.sum()))
    return pred


def write_predictions(path: Path, gold: np.ndarray, pred: np.ndarray) -> None:
    names = np.array(["O", "B-Disease", "I-Disease"])
    with open(path, "w", encoding="utf-8") as f:
        for i in range(len(gold)):
            f.write("".join(f"w{j}\t{g}\t{p}\n" for j, (g, p) in enumerate(zip(names[gold[i]], names[pred[i]]))) + "\n")


def populate(uri: str, seeds: int, artifacts: bool = True, folder: Path | None = None) -> int:
    client = MlflowClient(uri)
    exp = client.create_experiment("welt-280", artifact_location=(folder / "artifacts").as_uri() if folder else None)
    rng = np.random.default_rng(0)
    n = 0
    now = int(time.time() * 1000)
    for model in MODELS:
        for dataset in DATASETS:
            base = rng.uniform(0.75, 0.92)
            gold = gold_tags(dataset)
            for scheme in runtable.SCHEMES:
                for seed in range(1, seeds + 1):
                    run = client.create_run(exp, tags={"model": model, "dataset": dataset, "scheme": scheme, "lr": "5e-05",
                                                       "batch_size": "32", "seed": str(seed)})
                    values = {}
                    for split in ("dev", "test"):
                        for mode in ("", "strict_"):
                            p, r = base + rng.normal(0, 0.01), base + rng.normal(0, 0.01)
                            values.update({f"{split}_{mode}precision": p, f"{split}_{mode}recall": r,
                                           f"{split}_{mode}f1": 2 * p * r / (p + r)})
                        values[f"{split}_fair_f1"] = values[f"{split}_strict_f1"] + 0.02
                    values.update({"train_seconds": rng.uniform(600, 4000), "peak_rss_mb": rng.uniform(3000, 9000),
                                   "data_train_sentences": 5424, "data_dev_sentences": 923, "data_test_sentences": 940,
                                   "data_train_n_O": 124452, "data_train_n_B": 5134, "data_train_n_I": 6115})
                    values.update({f"test_fair_{e}": float(rng.integers(10, 80)) for e in ("LE", "BE", "LBE")})
                    client.log_batch(run.info.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in values.items()],
                                     tags=[RunTag("run_key", f"{n:016x}")])
                    if artifacts:
                        write_predictions(folder / "predictions_test.conll", gold, predicted_tags(gold, rng, rng.uniform(0.02, 0.05)))
                        (folder / "error_analysis_test.json").write_text(json.dumps(
                            {k: {"count": int(rng.integers(20, 200)), "examples": []} for k in ("type1", "type2", "type3")}))
                        client.log_artifact(run.info.run_id, str(folder / "predictions_test.conll"))
                        client.log_artifact(run.info.run_id, str(folder / "error_analysis_test.json"))
                    client.set_terminated(run.info.run_id, "FINISHED")
                    n += 1
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--keep", help="write the store and report here instead of a temporary folder")
    ap.add_argument("--no-artifacts", action="store_true", help="log metrics only (no predictions, no error analyses)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(a.keep or tmp)
        root.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{root}/mlflow.db"
        t0 = time.perf_counter()
        n = populate(uri, a.seeds, not a.no_artifacts, root)
        print(f"logged {n} runs in {time.perf_counter() - t0:.1f} s")
        for attempt in ("first (artifacts fetched from the store)", "again (from the report's cache)"):
            t1 = time.perf_counter()
            df = report.load_runs(uri, ["welt-280"])
            t2 = time.perf_counter()
            page = report.write(df, root / "report", cache=root / "cache")
            t3 = time.perf_counter()
            print(f"report, {attempt}: load {t2 - t1:.1f} s + tables/figures/html {t3 - t2:.1f} s = {t3 - t1:.1f} s; "
                  f"{len(list((root / 'report').glob('table*.md')))} tables, {len(list((root / 'report').glob('*.png')))} figures, "
                  f"report.html {page.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
