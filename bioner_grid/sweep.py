"""A sweep is one thing in MLflow: a parent run per launch, every job its child.

The launcher opens the parent (``kind=sweep``; tags: sweep id, command line, jobs planned /
skipped / in flight / launched) before the jobs fan out and hands its id to them through the
environment (``BIONER_GRID_PARENT_RUN_ID``, ``BIONER_GRID_SWEEP_ID``): sbatch and submitit's local
processes inherit it, and it is not part of the config, so the run key does not change. A job
tags its run ``mlflow.parentRunId`` (the UI nests it under the parent) and ``sweep``. When the
sweep has run (``grid.wait=true``), the parent gets ``summary.md`` / ``summary.json`` (its
children, sorted by test strict F1) and ends FINISHED, or FAILED when a job did not finish; the
same table is printed with the address of the experiment's runs view.

``bioner_grid.store`` (mlflow, ~1.3 s to import) is imported inside the functions that talk to the store: ``plan`` imports this module at start-up, and ``prefetch`` imports ``plan``.
"""

from __future__ import annotations

import logging
import math
import os
import shlex
import sys
import time
import uuid
from datetime import datetime, timezone

from bioner_grid import redact
from bioner_grid.identity import GRID_KEYS, grid_values

log = logging.getLogger(__name__)

PARENT_ENV = "BIONER_GRID_PARENT_RUN_ID"
SWEEP_ENV = "BIONER_GRID_SWEEP_ID"
VARYING_ENV = "BIONER_GRID_VARYING"  # the grid keys whose values differ between the sweep's jobs
KIND = "sweep"
UI = "http://127.0.0.1:5000"  # `mlflow ui`'s default address (`make ui`)


def child_tags() -> dict[str, str]:
    """The tags that put a job's run under its sweep's parent run (none outside a sweep)."""
    parent = os.environ.get(PARENT_ENV)
    if not parent:
        return {}
    return {"mlflow.parentRunId": parent, "sweep": os.environ.get(SWEEP_ENV, "")}


def run_name(values: dict[str, str]) -> str:
    """A job's run name: the grid values that vary within its sweep first (what tells the runs of
    one sweep apart stays visible in the UI's narrow name column), the rest after a ``·``:
    ``welt-42 · tiny_bert-ncbi_disease-0.0003-16``. Outside a sweep, all six in grid order."""
    varying = [k for k in os.environ.get(VARYING_ENV, "").split(",") if k in values]
    rest = [k for k in GRID_KEYS if k not in varying]
    if not varying:
        return "-".join(values[k] for k in GRID_KEYS)
    return "-".join(values[k] for k in varying) + (" · " + "-".join(values[k] for k in rest) if rest else "")


def varying_keys(configs) -> list[str]:
    values = [grid_values(c) for c in configs]
    return [k for k in GRID_KEYS if len({v[k] for v in values}) > 1]


def new_sweep_id(name: str) -> str:
    return f"{name}-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"


def ui_address(uri: str, experiment_id: str) -> str:
    """The runs view of the experiment: on the tracking server itself, else on `mlflow ui` (`make ui`)."""
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else UI
    return f"{base}/#/experiments/{experiment_id}/runs"


class SweepRun:
    """The parent run of one launch of a sweep (a context manager around the launch)."""

    def __init__(self, tcfg, name: str, planned: int, skipped: int, in_flight: int, launched: int, wait: bool,
                 varying: list[str] = ()):
        self.tcfg, self.name, self.wait, self.varying = tcfg, name, wait, list(varying)
        self.sweep_id = new_sweep_id(name)
        self.counts = {"jobs_planned": planned, "jobs_skipped": skipped, "jobs_in_flight": in_flight,
                       "jobs_launched": launched}
        self.run_id = self.experiment_id = None
        self.started = time.time()

    def __enter__(self):
        from bioner_grid import tracking
        from bioner_grid.store import RunStore

        self.store = RunStore.from_config(self.tcfg)
        self.experiment_id = self.store.experiment_id()
        prog = os.path.basename(sys.argv[0])
        command = " ".join(["python -m bioner_grid" if prog == "__main__.py" else prog, shlex.join(sys.argv[1:])])
        command = redact.text(command)  # a tracking.uri typed with user:pass@, a token=... override
        tags = {"kind": KIND, "sweep": self.sweep_id, "command": command, "wait": str(self.wait).lower(),
                "varying": ",".join(self.varying),
                **{k: str(v) for k, v in self.counts.items()}, **tracking.git_state()}
        # short: the UI's name column shows ~20 characters; the sweep id is the `sweep` tag
        run_name = f"{self.name} sweep ({self.counts['jobs_launched']} jobs)"
        run = self.store.create_run(run_name, tags)
        self.run_id = run.info.run_id
        os.environ[PARENT_ENV], os.environ[SWEEP_ENV] = self.run_id, self.sweep_id
        os.environ[VARYING_ENV] = ",".join(self.varying)
        log.info("sweep %s: MLflow parent run %s (%d planned, %d skipped, %d in flight, %d launched)", self.sweep_id,
                 self.run_id, *self.counts.values())
        return self

    def __exit__(self, exc_type, exc, tb):
        for name in (PARENT_ENV, SWEEP_ENV, VARYING_ENV):
            os.environ.pop(name, None)
        if not self.wait and exc is None:  # submitted: the jobs run on, and so does the sweep
            self.store.set_tags(self.run_id, {"state": "submitted"})
            return False
        rows = children(self.store, self.experiment_id, self.run_id)
        close(self.store, self.run_id, self.sweep_id, self.counts, rows, failed=exc is not None,
              killed=isinstance(exc, KeyboardInterrupt))  # stopped by SIGTERM/SIGINT (preempt)
        print(summary_table(rows, self.sweep_id, time.time() - self.started), flush=True)
        ui = f"MLflow: {ui_address(self.tcfg.uri, self.experiment_id)}" + (
            "" if self.tcfg.uri.startswith("http")
            else f"  (start the UI: make ui, or mlflow ui --backend-store-uri {self.store.uri})")
        print(redact.text(ui), flush=True)
        return False


def close(store, run_id: str, sweep_id: str, counts: dict, rows: list[dict], failed: bool = False,
          killed: bool = False) -> str:
    """Give a sweep's parent run its summary (``summary.md``, ``summary.json``, best test strict F1)
    and end it: FINISHED when every launched job finished, KILLED when a signal stopped the sweep,
    else FAILED. Returns the status."""
    ok = not failed and all(r["status"] == "FINISHED" for r in rows) and len(rows) >= int(counts["jobs_launched"])
    store.log_text(run_id, summary_markdown(rows, sweep_id), "summary.md")
    store.log_dict(run_id, {"sweep": sweep_id, **counts, "jobs": rows}, "summary.json")
    finished = [r["test_strict_f1"] for r in rows if ranked(r)]
    if finished:
        store.log_metric(run_id, "best_test_strict_f1", max(finished))
    store.log_metric(run_id, "jobs_finished", sum(r["status"] == "FINISHED" for r in rows))
    status = "FINISHED" if ok else "KILLED" if killed else "FAILED"
    store.terminate(run_id, status)
    return status


def settle_submitted(uri: str, experiment_name: str) -> list[str]:
    """Close the parents of submitted sweeps (``grid.wait=false``) whose jobs have all ended, as a
    waiting launch would have; ``plan`` and ``report`` call this. Returns one line per sweep closed."""
    from bioner_grid.store import RunStore

    store = RunStore(uri, experiment_name)
    experiment_id = store.experiment_id(create=False)
    if experiment_id is None:
        return []
    closed = []
    for parent in store.search(f"tags.kind = '{KIND}' AND tags.state = 'submitted' AND attributes.status = 'RUNNING'"):
        tags = parent.data.tags
        rows = children(store, experiment_id, parent.info.run_id)
        launched = int(tags.get("jobs_launched", 0))
        if len(rows) < launched or any(r["status"] == "RUNNING" for r in rows):
            continue
        counts = {k: tags.get(k, "0") for k in ("jobs_planned", "jobs_skipped", "jobs_in_flight", "jobs_launched")}
        status = close(store, parent.info.run_id, tags.get("sweep", ""), counts, rows)
        closed.append(f"sweep {tags.get('sweep')}: all {len(rows)} job(s) ended; parent run {parent.info.run_id} {status}")
    return closed


def children(store, experiment_id: str, parent_id: str) -> list[dict]:
    """The parent's child runs as rows: name, status, grid keys, test/dev strict F1, train time."""
    from bioner_grid.store import real_value, run_metrics

    runs = store.search(f"tags.mlflow.parentRunId = '{parent_id}'", experiment_ids=[experiment_id])
    rows = []
    for r in runs:
        m, t = {k: real_value(v) for k, v in run_metrics(r).items()}, r.data.tags
        end = r.info.end_time or int(time.time() * 1000)
        rows.append({"run_id": r.info.run_id, "run_name": r.info.run_name, "status": r.info.status,
                     **{k: t.get(k) for k in ("model", "dataset", "scheme", "lr", "batch_size", "seed")},
                     "test_strict_f1": m.get("test_strict_f1"), "dev_strict_f1": m.get("dev_strict_f1"),
                     "seconds": m.get("train_seconds", (end - r.info.start_time) / 1000)})
    rows.sort(key=lambda r: (not ranked(r), -(r["test_strict_f1"] if ranked(r) else 0)))
    return rows


def ranked(row: dict) -> bool:
    """Whether a job takes part in the ranking: it has a finite test strict F1 (an inf is no best,
    a NaN no score); the others are listed last, their value shown as it is."""
    return row["test_strict_f1"] is not None and math.isfinite(row["test_strict_f1"])


def non_finite_note(rows: list[dict]) -> str | None:
    bad = [r for r in rows if r["test_strict_f1"] is not None and not ranked(r)]
    if not bad:
        return None
    return (f"not ranked: {len(bad)} job(s) with a non-finite test strict F1: "
            + ", ".join(f"{r['run_name']} ({r['run_id']}, {r['test_strict_f1']})" for r in bad))


def _pct(x) -> str:
    return "—" if x is None else f"{100 * x:.1f}" if math.isfinite(x) else str(x)


def _secs(s) -> str:
    s = int(round(s or 0))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def summary_table(rows: list[dict], sweep_id: str, wall_s: float | None = None) -> str:
    """The terminal table of a sweep's jobs, best test strict F1 first."""
    head = f"sweep {sweep_id}: {len(rows)} job(s)" + (f" in {_secs(wall_s)}" if wall_s is not None else "")
    width = max([len(r["run_name"] or "") for r in rows] + [3])
    lines = [head, f"  {'run':<{width}}  {'status':<8}  {'test F1':>7}  {'dev F1':>6}  {'time':>7}"]
    for r in rows:
        lines.append(f"  {r['run_name'] or '':<{width}}  {r['status']:<8}  {_pct(r['test_strict_f1']):>7}  "
                     f"{_pct(r['dev_strict_f1']):>6}  {_secs(r['seconds']):>7}")
    note = non_finite_note(rows)
    return "\n".join(lines + ([f"  {note}"] if note else []))


def summary_markdown(rows: list[dict], sweep_id: str) -> str:
    """The parent run's ``summary.md``: one row per child, best test strict F1 (dev-selected model) first."""
    lines = [f"# Sweep {sweep_id}", "", "Test strict F1 of the dev-selected checkpoint, in %.", "",
             "| run | status | model | dataset | scheme | lr | batch | seed | test strict F1 | dev strict F1 | time |",
             "|---|---|---|---|---|---|---|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['run_name']} | {r['status']} | {r['model']} | {r['dataset']} | {r['scheme']} | {r['lr']} | "
                     f"{r['batch_size']} | {r['seed']} | {_pct(r['test_strict_f1'])} | {_pct(r['dev_strict_f1'])} | "
                     f"{_secs(r['seconds'])} |")
    note = non_finite_note(rows)
    return "\n".join(lines + (["", note] if note else [])) + "\n"
