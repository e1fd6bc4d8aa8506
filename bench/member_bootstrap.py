"""Two all-in-one runs compared member by member: each member's test F1 in run A and run B and the
paired bootstrap of B against A on that member's own test sentences.

    python bench/member_bootstrap.py --uri sqlite:////work/study-21/store.db RUN_A RUN_B [--resamples 10000]

For a pair the report does not set side by side (its all-in-one table pairs each setting with the
member alone): the same merge trained two ways, e.g. ``data.overlap=warn`` (training documents that
are also test documents kept) against ``drop`` (removed). Each member's sentences are cut out of
the runs' ``predictions_test.conll`` by their ``aio_slices`` tag (``report_aio.member_predictions``,
the cut the report makes) and resampled as ``bioner_grid.significance`` does (same defaults), so
the interval and p agree.
"""

from __future__ import annotations

import argparse
import json
import sys

from bioner_grid.report_aio import member_predictions
from bioner_grid.significance import Bootstrap, p_text
from bioner_grid.spec import ReportSchema
from bioner_grid.store import RunStore


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--uri", required=True, help="MLflow tracking URI holding both runs")
    ap.add_argument("a", help="run id of A")
    ap.add_argument("b", help="run id of B (the difference is B - A)")
    ap.add_argument("--resamples", type=int, default=ReportSchema.resamples)
    ap.add_argument("--seed", type=int, default=ReportSchema.seed)
    args = ap.parse_args()
    store = RunStore(args.uri, "")
    runs = [store.find_run(r) for r in (args.a, args.b)]
    tags = [r.data.tags for r in runs]
    paths = [store.download(r.info.run_id, "predictions_test.conll") for r in runs]
    slices = [json.loads(t["aio_slices"]) for t in tags]
    tagged = [(t.get("aio_merge") or "tags") == "tags" for t in tags]
    boot = Bootstrap(args.resamples, args.seed)
    for name, run, t in zip("AB", runs, tags):
        print(f"{name} {run.info.run_id}: data.overlap={t.get('overlap.policy', '?')}, "
              f"training documents removed: {t.get('overlap.removed', '?')}")
    print("| member | test sentences | A strict F1 | B strict F1 | B − A [95% CI] | p |")
    print("|---|---|---|---|---|---|")
    for member in slices[0]:
        a, b = (member_predictions(p, s, member, "test", t, r.info.run_id)
                for p, s, t, r in zip(paths, slices, tagged, runs))
        if a is None or b is None:
            print(f"| {member} | — | — | — | not in both runs | |")
            continue
        r = boot.compare([a], [b])
        print(f"| {member} | {r.n} | {r.f1_a:.2f} | {r.f1_b:.2f} | "
              f"{r.delta:+.2f} [{r.low:+.2f}, {r.high:+.2f}] | {p_text(r.p, r.resamples)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
