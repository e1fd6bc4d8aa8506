"""Time ``python -m bioner_grid.plan`` on 1, 60, 280 and 840 jobs of ``welt_grid``.

    python bench/plan_time.py [--sizes 1,60,280,840] [--repeat 1]

1 job: biobert × NCBI-disease × vanilla; 60: 5 models × 4 corpora × 3 schemes; 280: the whole grid;
840: the whole grid × three seeds (``train.seed=1,2,3``). Each size runs ``plan`` as its own
process against a store that does not exist (every job TODO; ``plan`` never creates one), and
prints the wall time and the CPU time of that process (user + system: on a shared machine the CPU
time is the steadier figure), and both as a multiple of the 1-job plan. The plan's own code is the
one on ``PYTHONPATH`` (run it with an older checkout there to compare).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

GRID = {
    1: ["hydra.sweeper.params.model=biobert", "hydra.sweeper.params.dataset=ncbi_disease",
        "hydra.sweeper.params.scheme=vanilla"],
    60: ["hydra.sweeper.params.dataset='ncbi_disease,bc5cdr_chem,bc2gm,linnaeus'",
         "hydra.sweeper.params.scheme='vanilla,welt,ins'"],
    280: [],
    840: ["train.seed=1,2,3"],
}


def plan_time(n: int, store: str) -> tuple[float, float, int]:
    """(wall s, CPU s, jobs listed) of one ``plan`` process for the ``n``-job grid."""
    cmd = [sys.executable, "-m", "bioner_grid.plan", "experiment=welt_grid", f"tracking.uri=sqlite:///{store}", *GRID[n]]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        sys.exit(f"plan failed ({out.returncode}): {out.stderr.strip()[-500:]}")
    jobs = int(out.stdout.split(" jobs;", 1)[0].rsplit(" ", 1)[1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, jobs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1,60,280,840")
    ap.add_argument("--repeat", type=int, default=1, help="runs per size; the fastest is shown")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="plan-time-") as tmp:
        store = os.path.join(tmp, "none.db")  # never created: plan lists every job as TODO
        rows = {}
        for n in sizes:
            runs = [plan_time(n, store) for _ in range(args.repeat)]
            rows[n] = min(runs, key=lambda r: r[1])
            wall, cpu, jobs = rows[n]
            base = rows.get(1)
            ratio = f"  ({wall / base[0]:.1f}x wall, {cpu / base[1]:.1f}x CPU of 1 job)" if base and n != 1 else ""
            print(f"plan {jobs:>4} jobs: {wall:6.1f} s wall, {cpu:6.1f} s CPU{ratio}", flush=True)


if __name__ == "__main__":
    main()
