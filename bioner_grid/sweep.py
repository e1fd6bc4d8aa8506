"""A sweep is one thing in MLflow: a parent run per launch, every job its child.

The launcher opens the parent (``kind=sweep``; tags: sweep id, command line, jobs planned /
skipped / in flight / launched) before the jobs fan out and hands its id to them through the
environment (``BIONER_GRID_PARENT_RUN_ID``, ``BIONER_GRID_SWEEP_ID``): sbatch and submitit's local
processes inherit it, and it is not part of the config, so the run key does not change. A job
tags its run ``mlflow.parentRunId`` (the UI nests it under the parent) and ``sweep``. When the
sweep has run (``grid.wait=true``), the parent gets its description (the sweep's configurations,
chosen on dev strict F1, test shown: what its page in the UI opens on), ``summary.md`` /
``summary.json`` and ends FINISHED, or FAILED when a job did not finish; the jobs' table (best dev
first) is printed with the address of the parent's page.

``bioner_grid.store`` (mlflow, ~1.3 s to import) is imported inside the functions that talk to the store: ``plan`` imports this module at start-up, and ``prefetch`` imports ``plan``.
"""

from __future__ import annotations

import logging
import math
import os
import shlex
import statistics
import sys
import time
import uuid
from datetime import datetime, timezone

from bioner_grid import identity, redact, tracking
from bioner_grid.errors import one_line
from bioner_grid.identity import GRID_KEYS, grid_values

log = logging.getLogger(__name__)

PARENT_ENV = "BIONER_GRID_PARENT_RUN_ID"
SWEEP_ENV = "BIONER_GRID_SWEEP_ID"
VARYING_ENV = "BIONER_GRID_VARYING"  # the grid keys whose values differ between the sweep's jobs
KIND = "sweep"
UI = "http://127.0.0.1:5000"  # `mlflow ui`'s default address (`make ui`)
WORKFLOW = "?workflowType=machine_learning"  # the UI's "Model training" layout (Runs, Models), not GenAI's


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


def ui_address(uri: str, experiment_id: str, run_id: str | None = None) -> str:
    """The runs view of the experiment, or the page of run ``run_id`` (a sweep's parent: its
    description is the sweep's table): on the tracking server itself, else on `mlflow ui` (`make ui`)."""
    base = uri.rstrip("/") if uri.startswith(("http://", "https://")) else UI
    # workflowType: the UI opens experiments in its GenAI layout ("Evaluation runs") unless told
    return f"{base}/#/experiments/{experiment_id}/runs" + (f"/{run_id}" if run_id else "") + WORKFLOW


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
                **{k: str(v) for k, v in self.counts.items()}, **tracking.git_state(),
                # who launched it: a launcher killed outright leaves the parent RUNNING; settle_submitted closes it
                **{identity.OPS + k: v for k, v in identity.this_job().items() if v}}
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
        ui = f"MLflow: {ui_address(self.tcfg.uri, self.experiment_id, self.run_id)}" + (
            "" if self.tcfg.uri.startswith("http")
            else f"  (start the UI: make ui, or mlflow ui --backend-store-uri {self.store.uri})")
        print(redact.text(ui), flush=True)
        return False


def close(store, run_id: str, sweep_id: str, counts: dict, rows: list[dict], failed: bool = False,
          killed: bool = False) -> str:
    """Give a sweep's parent run its summary and end it: FINISHED when every launched job finished,
    KILLED when a signal stopped the sweep, else FAILED. Returns the status.

    The summary: the parent's description (what its page opens on: the configurations of the sweep,
    chosen on dev, test shown, ``describe``), ``summary.md`` (the choice and every job), ``summary.json``,
    and the metrics of the configuration chosen on dev, ``sweep/best_dev_strict_f1`` (its mean dev
    strict F1 over seeds) and ``sweep/test_strict_f1_at_best_dev`` (its mean test strict F1); where no
    job has a dev score the choice is on test and the metric says so: ``sweep/best_test_strict_f1``.
    A sweep over several corpora has one choice per corpus (``..._<dataset>``)."""
    ok = not failed and all(r["status"] == "FINISHED" for r in rows) and len(rows) >= int(counts["jobs_launched"])
    store.describe(run_id, describe(rows, against_chosen(store, rows)))
    store.log_text(run_id, summary_markdown(rows, sweep_id), "summary.md")
    store.log_dict(run_id, {"sweep": sweep_id, **counts, "chosen_on": basis(rows),
                              "configurations": configurations(rows), "jobs": rows}, "summary.json")
    on, best = basis(rows), winners(rows)
    for dataset, c in best.items():
        suffix = f"_{dataset}" if len(best) > 1 else ""
        if on == "dev":
            store.log_metric(run_id, f"best_dev_strict_f1{suffix}", c["dev"][0])
            store.log_metric(run_id, f"test_strict_f1_at_best_dev{suffix}", c["test"][0])
        else:
            store.log_metric(run_id, f"best_test_strict_f1{suffix}", c["test"][0])
    store.log_metric(run_id, "jobs_finished", sum(r["status"] == "FINISHED" for r in rows))
    status = "FINISHED" if ok else "KILLED" if killed else "FAILED"
    store.terminate(run_id, status)
    return status


def settle_submitted(uri: str, experiment_name: str) -> list[str]:
    """Close the parents of submitted sweeps (``grid.wait=false``) whose jobs have all ended, as a
    waiting launch would have; ``plan`` and ``report`` call this. Also the parent of a waiting sweep
    whose launcher died without closing it (SIGKILL, a login node's OOM killer: its ``ops.pid`` on
    this host is gone), once none of its jobs runs: KILLED unless every launched job finished.
    Returns one line per sweep closed."""
    from bioner_grid.store import RunStore

    store = RunStore(uri, experiment_name)
    experiment_id = store.experiment_id(create=False)
    if experiment_id is None:
        return []
    closed = []
    for parent in store.search(f"tags.kind = '{KIND}' AND attributes.status = 'RUNNING'"):
        tags = parent.data.tags
        submitted = tags.get("state") == "submitted"
        if not submitted and not identity.process_gone(tags):
            continue  # a waiting launch still running (or on another host: it closes its parent itself)
        rows = children(store, experiment_id, parent.info.run_id)
        launched = int(tags.get("jobs_launched", 0))
        if (submitted and len(rows) < launched) or any(r["status"] == "RUNNING" for r in rows):
            continue
        counts = {k: tags.get(k, "0") for k in ("jobs_planned", "jobs_skipped", "jobs_in_flight", "jobs_launched")}
        status = close(store, parent.info.run_id, tags.get("sweep", ""), counts, rows, killed=not submitted)
        what = f"all {len(rows)} job(s) ended" if submitted else f"its launcher (pid {identity.ops_tag(tags, 'pid')}) is gone"
        closed.append(f"sweep {tags.get('sweep')}: {what}; parent run {parent.info.run_id} {status}")
    return closed


def children(store, experiment_id: str, parent_id: str) -> list[dict]:
    """The parent's child runs as rows: name, status, grid keys, cell key, dev/test strict F1,
    train time; ranked first, best first on dev (on test where no job has a dev score: ``basis``)."""
    from bioner_grid.store import real_value, run_metrics

    runs = store.search(f"tags.mlflow.parentRunId = '{parent_id}'", experiment_ids=[experiment_id])
    rows = []
    for r in runs:
        m, t = {k: real_value(v) for k, v in run_metrics(r).items()}, r.data.tags
        end = r.info.end_time or int(time.time() * 1000)
        rows.append({"run_id": r.info.run_id, "run_name": r.info.run_name, "status": r.info.status,
                     **{k: t.get(k) for k in GRID_KEYS}, "cell_key": t.get("cell_key"),
                     "test_strict_f1": m.get("test_strict_f1"), "dev_strict_f1": m.get("dev_strict_f1"),
                     "seconds": m.get("train_seconds", (end - r.info.start_time) / 1000),
                     "pruned": t.get("pruned") == "true"})  # stopped early by an adaptive search (bioner_grid.search)
    on = basis(rows)
    rows.sort(key=lambda r: (not ranked(r, on), -(r[f"{on}_strict_f1"] if ranked(r, on) else 0)))
    return rows


def basis(rows: list[dict]) -> str:
    """What a sweep's jobs are chosen on: ``dev`` (strict F1), the rule everywhere, or ``test`` where
    no job has a dev score (then every table and metric says so)."""
    return "dev" if any(r.get("dev_strict_f1") is not None for r in rows) else "test"


def _finite(x) -> bool:
    return x is not None and math.isfinite(x)


def ranked(row: dict, on: str = "test") -> bool:
    """Whether a job takes part in the ranking on ``on``: a finite strict F1 there, and a finite test
    strict F1 if it has one (an inf is no best, a NaN no score), and not pruned by an adaptive search
    (bioner_grid.search: stopped early, its score is no peer of the others'); the others are listed
    last, their values shown as they are."""
    return (_finite(row[f"{on}_strict_f1"]) and (row["test_strict_f1"] is None or _finite(row["test_strict_f1"]))
            and not row.get("pruned"))


def non_finite_note(rows: list[dict]) -> str | None:
    on = basis(rows)
    bad = [r for r in rows if (r["test_strict_f1"] is not None or r[f"{on}_strict_f1"] is not None)
           and not ranked(r, on) and not r.get("pruned")]  # pruned: listed as PRUNED, not as non-finite
    if not bad:
        return None
    what = "test" if on == "test" else "dev or test"

    def shown(r):
        return r["test_strict_f1"] if on == "test" else f"dev {r['dev_strict_f1']}, test {r['test_strict_f1']}"

    return (f"not ranked: {len(bad)} job(s) with a non-finite {what} strict F1: "
            + ", ".join(f"{r['run_name']} ({r['run_id']}, {shown(r)})" for r in bad))


def label_keys(rows: list[dict]) -> list[str]:
    """The grid keys (seed aside) that tell a sweep's configurations apart: those whose values differ
    between its jobs; model, dataset and scheme where none does."""
    keys = [k for k in GRID_KEYS if k != "seed" and len({r.get(k) for r in rows} - {None}) > 1]
    return keys or ["model", "dataset", "scheme"]


def _mean_sd(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def configurations(rows: list[dict]) -> list[dict]:
    """The sweep's configurations (one per cell key: every setting but the seed; grid values without
    the seed for runs recorded before cell keys; a run without either alone) over their FINISHED, ranked jobs: grid values,
    ``n`` (seeds), ``dev`` and ``test`` as (mean, sd or None) or None; best first on ``basis`` within
    each dataset, datasets in name order."""
    on = basis(rows)
    groups: dict[str, list[dict]] = {}
    for r in rows:
        if r["status"] == "FINISHED" and ranked(r, on):
            grid = [r.get(k) for k in GRID_KEYS if k != "seed"]
            key = r.get("cell_key") or ("|".join(map(str, grid)) if any(grid) else r["run_id"])  # untagged: its own
            groups.setdefault(key, []).append(r)
    out = []
    for key, runs in groups.items():
        c = {k: runs[0].get(k) for k in GRID_KEYS if k != "seed"}
        c.update({"cell_key": key, "n": len(runs), "run_ids": [r["run_id"] for r in runs]})
        for split in ("dev", "test"):
            values = [r[f"{split}_strict_f1"] for r in runs if _finite(r[f"{split}_strict_f1"])]
            c[split] = _mean_sd(values) if values else None
        out.append(c)
    out.sort(key=lambda c: (str(c["dataset"]), -c[on][0]))
    return out


PREDICTIONS = "predictions_test.conll"  # each run's test predictions (pipeline), what the bootstrap resamples


def against_chosen(store, rows: list[dict]) -> dict[str, object]:
    """Each configuration's test strict F1 against the configuration chosen on its corpus: the paired
    bootstrap over the test sentences (``significance.Bootstrap`` with the report's default resample
    count and seed, so the report shows the same interval and p), as ``significance.Result`` by cell
    key. A configuration without logged test predictions (or on other test sentences) gets none.
    Each run's predictions are read once, into one temporary folder removed at the end."""
    import tempfile

    from bioner_grid.errors import DataError
    from bioner_grid.significance import Bootstrap, read_predictions
    from bioner_grid.spec import ReportSchema

    boot, found, read = Bootstrap(ReportSchema.resamples, ReportSchema.seed), {}, {}
    best = winners(rows)
    with tempfile.TemporaryDirectory(prefix="bioner-grid-sweep-") as tmp:
        def fetch(run_id: str):
            if PREDICTIONS not in store.list_artifacts(run_id):
                return None
            os.makedirs(f"{tmp}/{run_id}")  # MLflow downloads into a folder that exists
            return read_predictions(store.download(run_id, PREDICTIONS, f"{tmp}/{run_id}"))

        def predictions(run_ids: list[str]) -> list | None:  # a configuration's runs, each read once
            got = [read[r] if r in read else read.setdefault(r, fetch(r)) for r in run_ids]
            return None if any(p is None for p in got) else got

        try:
            for c in configurations(rows):
                chosen = best[str(c["dataset"])]
                if c["cell_key"] == chosen["cell_key"]:
                    continue
                a, b = predictions(chosen["run_ids"]), predictions(c["run_ids"])
                if a and b:
                    try:
                        found[c["cell_key"]] = boot.compare(a, b)
                    except (DataError, ValueError):  # other test sentences (data.max_eval_sentences swept), or none
                        pass
        except Exception as e:  # noqa: BLE001 (any store or file failure: the column is an extra, the sweep must close)
            log.warning("sweep summary without bootstrap intervals: %s", redact.text(one_line(e)))
            return {}
    return found


def winners(rows: list[dict]) -> dict[str, dict]:
    """Per dataset, the configuration chosen on ``basis`` (best mean strict F1 over seeds)."""
    best: dict[str, dict] = {}
    for c in configurations(rows):  # best first within a dataset
        best.setdefault(str(c["dataset"]), c)
    return best


def _ms(value: tuple[float, float | None] | None) -> str:
    """mean ± sd in percent, one decimal (the mean alone for one seed)."""
    if value is None:
        return "—"
    mean, sd = value
    return tracking.pct(mean) + (f" ± {100 * sd:.1f}" if sd is not None else "")


def _label(c: dict, keys: list[str]) -> str:
    return ", ".join(f"{k}={c[k]}" for k in keys)


def verdict(rows: list[dict]) -> list[str]:
    """One line per dataset: the configuration chosen (on dev), its dev and test strict F1 (%)."""
    on, keys = basis(rows), label_keys(rows)
    keys = [k for k in keys if k != "dataset"]
    best = winners(rows)
    lines = []
    for dataset, c in best.items():
        where = f"{dataset}: best" if len(best) > 1 else "Best"
        seeds = f"mean over {c['n']} seeds" if c["n"] > 1 else "1 seed"
        lines.append(f"{where} on {on}: {_label(c, keys or ['model', 'scheme'])} · dev strict F1 {_ms(c['dev'])}, "
                     f"test strict F1 {_ms(c['test'])} ({seeds})")
    if not best:
        lines.append("no finished job with a finite score: nothing chosen")
    if on == "test":
        lines.append("no job has a dev score: chosen on test")
    return lines


# after every cell: MLflow's description renders a Markdown table with no cell padding and drops
# its alignment (the sanitiser keeps no style attribute), so columns would touch
PAD = "&nbsp;" * 4
DESCRIPTION_LIMIT = 8000  # characters of a tag value (the description) beyond which MLflow cuts it (MAX_TAG_VAL_LENGTH)


def _signed(x: float) -> str:
    return f"{x:+.2f}".replace("-", "\u2212")  # a real minus sign, as the report prints it


def describe(rows: list[dict], vs: dict | None = None) -> str:
    """The parent run's description (Markdown; the top of its page in the MLflow UI): the
    configuration chosen on dev first, then every configuration of the sweep with its dev and test
    strict F1 (mean ± sd over seeds, %), its number of seeds n and (``vs``: ``against_chosen``) its
    test strict F1 difference from the choice with the paired bootstrap 95% interval and p, best
    first (the page shows the first ~100 px, the answer and the table's top rows, before "Show
    more"); then how it was chosen, and the unfinished and unranked jobs."""
    from bioner_grid.significance import p_text

    on, keys, vs = basis(rows), label_keys(rows), vs or {}
    best = {c["cell_key"] for c in winners(rows).values()}
    lines = [f"**{line}**  " for line in verdict(rows)] + [""]  # two spaces: a Markdown line break
    header = [*keys, "dev strict F1 (%)", "test strict F1 (%)", "n"] + (["Δ test vs chosen (95% interval)", "p"] if vs else [])
    lines += ["| " + " | ".join(f"{h}{PAD}" for h in header) + " |", "|" + "---|" * len(header)]
    table, places = [], {}  # the rows, and each one's place within its corpus (0: the choice)
    for c in configurations(rows):  # best first within each corpus
        place = places[str(c["dataset"])] = places.get(str(c["dataset"]), -1) + 1
        b = "**" if c["cell_key"] in best else ""
        cells = [f"{b}{c[k]}{b}" for k in keys] + [f"{b}{_ms(c['dev'])}{b}", f"{b}{_ms(c['test'])}{b}", str(c["n"])]
        if vs:
            r = vs.get(c["cell_key"])
            cells += (["chosen", ""] if c["cell_key"] in best else ["—", ""] if r is None else
                      [f"{_signed(r.delta)} [{_signed(r.low)}, {_signed(r.high)}]",
                       p_text(r.p, r.resamples).replace(" ", "&nbsp;")])  # "< 0.0002" on one line
        table.append((place, "| " + " | ".join(f"{cell}{PAD}" for cell in cells) + " |"))
    below = ["", f"Chosen on **{on}** strict F1 (the mean over seeds), test strict F1 shown; mean ± sd over the n "
             "seeds; in bold the choice" + (" per corpus." if len(best) > 1 else ".")]
    if vs:
        some = next(iter(vs.values()))
        sentences = f"the {some.n} test sentences" if len(best) == 1 else "each corpus's test sentences"
        below[-1] += (" Δ: test strict F1 minus the choice's, in points, with the paired bootstrap 95% percentile "
                      f"interval over {sentences} and the two-sided p from the same {some.resamples} "
                      "resamples (p < 0.05 exactly when the interval excludes 0; the report's numbers).")
    unfinished = [r for r in rows if r["status"] != "FINISHED"]
    if unfinished:
        named = ", ".join(f"{r['run_name']} ({r['status']})" for r in unfinished[:20])
        below += ["", f"Not finished ({len(unfinished)}): {named}" + (", …" if len(unfinished) > 20 else "")]
    note = non_finite_note(rows)
    if note:
        below += ["", note[:1000]]
    below += ["", f"{len(rows)} job(s): unfold this run in the runs table, or read `summary.md` in its artifacts."]
    # MLflow cuts a description longer than its tag limit (mid-table) and warns: the rows furthest
    # from their corpus's choice give way instead, never a choice, and a row says how many did
    cut = 0
    while len("\n".join(lines + [t for _, t in table] + below)) + 200 > DESCRIPTION_LIMIT and len(table) > len(best):
        table.remove(max(table, key=lambda t: t[0]))  # a row furthest from its corpus's choice
        cut += 1
    more = [f"| … {cut} more configuration(s), worse on {on}: `summary.md` |" + " |" * (len(header) - 1)] if cut else []
    return "\n".join(lines + [t for _, t in table] + more + below) + "\n"


def summary_table(rows: list[dict], sweep_id: str, wall_s: float | None = None) -> str:
    """The terminal table of a sweep's jobs, best first on dev (dev strict F1 before test), then the
    configuration chosen on dev with its test strict F1."""
    on = basis(rows)
    head = (f"sweep {sweep_id}: {len(rows)} job(s)" + (f" in {_secs(wall_s)}" if wall_s is not None else "")
            + f", best {on} strict F1 first")
    width = max([len(r["run_name"] or "") for r in rows] + [3])
    lines = [head, f"  {'run':<{width}}  {'status':<8}  {'dev F1':>6}  {'test F1':>7}  {'time':>7}"]
    for r in rows:
        status = "PRUNED" if r.get("pruned") else r["status"]
        lines.append(f"  {r['run_name'] or '':<{width}}  {status:<8}  {tracking.pct(r['dev_strict_f1']):>6}  "
                     f"{tracking.pct(r['test_strict_f1']):>7}  {_secs(r['seconds']):>7}")
    lines += [f"  {line}" for line in verdict(rows)]
    note = non_finite_note(rows)
    return "\n".join(lines + ([f"  {note}"] if note else []))


def _secs(s) -> str:
    s = int(round(s or 0))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def summary_markdown(rows: list[dict], sweep_id: str) -> str:
    """The parent run's ``summary.md``: the configuration chosen on dev, then one row per job, best
    first on dev (the configurations' table is the parent's description)."""
    lines = [f"# Sweep {sweep_id}", "", *(f"{line}  " for line in verdict(rows)), "",
             "Strict F1 of the dev-selected checkpoint, in %.", "",
             "| run | status | model | dataset | scheme | lr | batch | seed | dev strict F1 | test strict F1 | time |",
             "|---|---|---|---|---|---|---|---|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['run_name']} | {r['status']} | {r['model']} | {r['dataset']} | {r['scheme']} | {r['lr']} | "
                     f"{r['batch_size']} | {r['seed']} | {tracking.pct(r['dev_strict_f1'])} | {tracking.pct(r['test_strict_f1'])} | "
                     f"{_secs(r['seconds'])} |")
    note = non_finite_note(rows)
    return "\n".join(lines + (["", note] if note else [])) + "\n"
