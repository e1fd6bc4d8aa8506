"""Time the report on a WeLT-sized store: 280 runs (5 models x 8 corpora x 7 schemes) logged
through the MLflow API into a fresh SQLite store, then `bioner_grid.report` end to end.

    python bench/report_280.py [--seeds 1] [--keep DIR]
Prints the logging time, the report time (load runs + tables + figures + HTML) and its size.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric, RunTag

from bioner_grid import report

MODELS = ["biobert", "bluebert", "pubmedbert", "scibert", "bioelectra"]
DATASETS = ["ncbi_disease", "bc5cdr_disease", "bc5cdr_chem", "bc2gm", "linnaeus", "bc4chemd", "biored_chem", "biored_disease"]


def populate(uri: str, seeds: int) -> int:
    client = MlflowClient(uri)
    exp = client.create_experiment("welt-280")
    rng = np.random.default_rng(0)
    n = 0
    now = int(time.time() * 1000)
    for model in MODELS:
        for dataset in DATASETS:
            base = rng.uniform(0.75, 0.92)
            for scheme in report.SCHEMES:
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
                    client.log_batch(run.info.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in values.items()],
                                     tags=[RunTag("run_key", f"{n:016x}")])
                    client.set_terminated(run.info.run_id, "FINISHED")
                    n += 1
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--keep", help="write the store and report here instead of a temporary folder")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(a.keep or tmp)
        root.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{root}/mlflow.db"
        t0 = time.perf_counter()
        n = populate(uri, a.seeds)
        t1 = time.perf_counter()
        df = report.load_runs(uri, ["welt-280"])
        t2 = time.perf_counter()
        page = report.write(df, root / "report")
        t3 = time.perf_counter()
        print(f"logged {n} runs in {t1 - t0:.1f} s")
        print(f"report: load {t2 - t1:.1f} s + tables/figures/html {t3 - t2:.1f} s = {t3 - t1:.1f} s; "
              f"{len(list((root / 'report').glob('table*.md')))} tables, {len(list((root / 'report').glob('*.png')))} figures, "
              f"report.html {page.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
