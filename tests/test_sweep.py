"""A sweep's parent run answers "which won": chosen on dev, test shown, in its description (the top
of its page in the MLflow UI), its metrics, summary.md and the terminal table (bioner_grid.sweep),
on a real SQLite store."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow import MlflowClient

from bioner_grid import sweep
from bioner_grid.store import RunStore, run_metrics

# (scheme, seed, dev strict F1, test strict F1): welt wins on dev, vanilla would win on test
JOBS = (("welt", 1, 0.45, 0.43), ("welt", 2, 0.46, 0.41), ("vanilla", 1, 0.40, 0.44), ("vanilla", 2, 0.41, 0.45))


def sweep_store(tmp_path: Path, jobs=JOBS, dev: bool = True, failed: bool = True):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    exp = client.create_experiment("grid", artifact_location=(tmp_path / "art").as_uri())
    parent = client.create_run(exp, tags={"kind": "sweep"}).info.run_id
    for scheme, seed, d, t in jobs:
        tags = {"mlflow.parentRunId": parent, "model": "tiny_bert", "dataset": "ncbi_disease", "scheme": scheme,
                "lr": "0.0003", "batch_size": "16", "seed": str(seed), "cell_key": f"cell-{scheme}"}
        run = client.create_run(exp, run_name=f"{scheme}-{seed}", tags=tags).info.run_id
        client.log_metric(run, "test/strict_f1", t)
        if dev:
            client.log_metric(run, "dev/strict_f1", d)
        client.set_terminated(run, "FINISHED")
    if failed:
        run = client.create_run(exp, run_name="ins-1", tags={"mlflow.parentRunId": parent, "model": "tiny_bert",
                                                             "dataset": "ncbi_disease", "scheme": "ins", "seed": "1"})
        client.set_terminated(run.info.run_id, "FAILED")
    return RunStore(uri, "grid"), client, exp, parent


def test_the_parent_chooses_on_dev_shows_test_with_n_and_sd_and_names_unfinished_jobs(tmp_path):
    store, client, exp, parent = sweep_store(tmp_path)
    rows = sweep.children(store, exp, parent)
    assert [r["run_name"] for r in rows][:4] == ["welt-2", "welt-1", "vanilla-2", "vanilla-1"]  # dev, not test
    assert sweep.close(store, parent, "s-1", {"jobs_launched": 5}, rows) == "FAILED"
    run = client.get_run(parent)
    metrics = run_metrics(run)
    assert metrics["best_dev_strict_f1"] == pytest.approx(0.455) and "best_test_strict_f1" not in metrics
    assert metrics["test_strict_f1_at_best_dev"] == pytest.approx(0.42)  # welt's mean test, not vanilla's 0.445
    assert "sweep/test_strict_f1_at_best_dev" in run.data.metrics
    text = run.data.tags["mlflow.note.content"]
    lines = text.splitlines()
    # the answer first (the UI shows ~4 lines before "Show more"), then the configurations, best first
    assert lines[0] == "**Best on dev: scheme=welt · dev strict F1 45.5 ± 0.7, test strict F1 42.0 ± 1.4 (mean over 2 seeds)**  "
    table = [line.replace("&nbsp;", "").replace("  ", " ") for line in lines if line.startswith("| ")]
    assert lines[2].startswith("| ")  # right below the answer: visible before "Show more"
    assert table == ["| scheme | dev strict F1 (%) | test strict F1 (%) | n |",
                     "| **welt** | **45.5 ± 0.7** | **42.0 ± 1.4** | 2 |",
                     "| vanilla | 40.5 ± 0.7 | 44.5 ± 0.7 | 2 |"]
    assert "Not finished (1): ins-1 (FAILED)" in text
    summary = Path(client.download_artifacts(parent, "summary.md", str(tmp_path))).read_text()
    assert lines[0].strip("* ") in summary and summary.index("| welt-2 |") < summary.index("| vanilla-2 |")
    # the terminal: dev before test, best dev first, then the choice
    out = sweep.summary_table(rows, "s-1").splitlines()
    assert out[0] == "sweep s-1: 5 job(s), best dev strict F1 first"
    assert out[1].split() == ["run", "status", "dev", "F1", "test", "F1", "time"]
    assert [line.split()[0] for line in out[2:7]] == ["welt-2", "welt-1", "vanilla-2", "vanilla-1", "ins-1"]
    assert out[7].strip().startswith("Best on dev: scheme=welt · dev strict F1 45.5 ± 0.7, test strict F1 42.0")


def test_without_dev_scores_the_choice_is_on_test_and_says_so(tmp_path):
    store, client, exp, parent = sweep_store(tmp_path, dev=False, failed=False)
    rows = sweep.children(store, exp, parent)
    assert sweep.close(store, parent, "s-2", {"jobs_launched": 4}, rows) == "FINISHED"
    run = client.get_run(parent)
    assert run_metrics(run)["best_test_strict_f1"] == pytest.approx(0.445)  # named for what it was chosen on
    assert "best_dev_strict_f1" not in run_metrics(run)
    text = run.data.tags["mlflow.note.content"]
    assert text.startswith("**Best on test: scheme=vanilla · dev strict F1 —, test strict F1 44.5 ± 0.7")
    assert "**no job has a dev score: chosen on test**" in text and "Chosen on **test** strict F1" in text
    assert "no job has a dev score: chosen on test" in sweep.summary_table(rows, "s-2")


def test_one_seed_shows_no_sd_and_every_corpus_gets_its_own_choice(tmp_path):
    jobs = (("welt", 1, 0.45, 0.43), ("vanilla", 1, 0.40, 0.44))
    store, client, exp, parent = sweep_store(tmp_path, jobs=jobs, failed=False)
    run = client.create_run(exp, run_name="bc5", tags={"mlflow.parentRunId": parent, "model": "tiny_bert",
                                                        "dataset": "bc5cdr_chem", "scheme": "vanilla", "seed": "1",
                                                        "lr": "0.0003", "batch_size": "16", "cell_key": "bc5"})
    client.log_metric(run.info.run_id, "dev/strict_f1", 0.7)
    client.log_metric(run.info.run_id, "test/strict_f1", 0.6)
    client.set_terminated(run.info.run_id, "FINISHED")
    rows = sweep.children(store, exp, parent)
    sweep.close(store, parent, "s-3", {"jobs_launched": 3}, rows)
    parent_run = client.get_run(parent)
    m = run_metrics(parent_run)
    assert m["best_dev_strict_f1_ncbi_disease"] == pytest.approx(0.45) and m["test_strict_f1_at_best_dev_bc5cdr_chem"] == 0.6
    lines = parent_run.data.tags["mlflow.note.content"].splitlines()
    assert lines[0].startswith("**bc5cdr_chem: best on dev: scheme=vanilla · dev strict F1 70.0, test strict F1 60.0 (1 seed)")
    assert lines[1].startswith("**ncbi_disease: best on dev: scheme=welt · dev strict F1 45.0, test strict F1 43.0")
    plain = [x.replace("&nbsp;", "") for x in lines]
    assert "| dataset | scheme | dev strict F1 (%) | test strict F1 (%) | n |" in plain
    assert "| **ncbi_disease** | **welt** | **45.0** | **43.0** | 1 |" in plain


def test_a_description_longer_than_mlflow_keeps_drops_its_worst_rows_not_its_end(tmp_path):
    """280 configurations do not fit in a description (MLflow cuts a tag value at its limit,
    mid-table): the best ones are shown, a row says how many more are in summary.md, and the
    explanation under the table is kept."""
    from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

    assert sweep.DESCRIPTION_LIMIT == MAX_TAG_VAL_LENGTH
    rows = [{"run_id": f"r{i}", "run_name": f"job {i}", "status": "FINISHED", "model": "minilm", "dataset": "ncbi_disease",
             "scheme": ("vanilla", "welt")[i % 2], "lr": str(1e-5 * (1 + i)), "batch_size": "16", "seed": "1",
             "cell_key": f"k{i}", "dev_strict_f1": 0.5 + i / 1000, "test_strict_f1": 0.5, "seconds": 1.0, "pruned": False}
            for i in range(280)]
    text = sweep.describe(rows)
    assert len(text) <= sweep.DESCRIPTION_LIMIT
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert "77.9" in table[1]  # the best on dev first
    shown = len(table) - 2  # less the header and the "more" row
    assert shown > 20 and table[-1].startswith(f"| … {280 - shown} more configuration(s), worse on dev: `summary.md`")
    assert "Chosen on **dev** strict F1" in text and text.rstrip().endswith("read `summary.md` in its artifacts.")


def test_trimming_a_long_description_keeps_every_corpus_choice():
    """Two corpora of 150 configurations each: rows go by their place within their corpus, so both
    choices (and the best of each corpus) stay, not the whole of the corpus listed last."""
    rows = [{"run_id": f"r{d}{i}", "run_name": f"job {d}{i}", "status": "FINISHED", "model": "minilm", "dataset": d,
             "scheme": "welt", "lr": str(1e-5 * (1 + i)), "batch_size": "16", "seed": "1", "cell_key": f"{d}{i}",
             "dev_strict_f1": 0.5 + i / 1000, "test_strict_f1": 0.5, "seconds": 1.0, "pruned": False}
            for d in ("bc5cdr_chem", "ncbi_disease") for i in range(150)]
    text = sweep.describe(rows)
    assert len(text) <= sweep.DESCRIPTION_LIMIT
    table = [line for line in text.splitlines() if line.startswith("| ")]
    bold = [line for line in table if "**" in line]
    assert len(bold) == 2 and {"bc5cdr_chem", "ncbi_disease"} <= {c.strip("*") for line in bold for c in
                                                                  line.replace("&nbsp;", "").strip("| ").split(" | ")}
    per_corpus = [sum(f" {d}" in line.replace("&nbsp;", " ") or f"**{d}**" in line for line in table) for d in ("bc5cdr_chem", "ncbi_disease")]
    assert abs(per_corpus[0] - per_corpus[1]) <= 1 and min(per_corpus) > 10
