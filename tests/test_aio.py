"""AIONER's all-in-one scheme: task tags, O-Task labels, per-member evaluation, the report table."""

import json
from pathlib import Path

import mlflow

from bioner_grid import report
from bioner_grid.aio import plain, tag_sentence
from bioner_grid.corpus import Sentence
from bioner_grid.scoring import score
from conftest import cli, runs

MEMBERS = ["BioRED", "NCBIdisease", "BC5CDR_Chemical", "BC5CDR_Disease", "Linnaeus", "GNormPlus", "NLMgene", "tmVar3", "BioID"]


def test_a_sentence_is_wrapped_in_its_task_tags():
    s = tag_sentence(Sentence(["SCN5A", "causes", "LQT3"], ["O", "O", "B-Disease"]), "Disease")
    assert s.tokens == ["<Disease>", "SCN5A", "causes", "LQT3", "</Disease>"]
    assert s.tags == ["O-Disease", "O-Disease", "O-Disease", "B-Disease", "O-Disease"]
    assert plain(s.tokens, s.tags) == (["SCN5A", "causes", "LQT3"], ["O", "O", "B-Disease"])
    # a Disease-task sentence is scored on Disease only: a predicted gene counts as O
    assert plain(s.tokens, ["O-Disease", "B-Gene", "O-Gene", "B-Disease", "O-Disease"], ["Disease"])[1] == ["O", "O", "B-Disease"]
    assert score([["O-ALL", "B-Gene"]], [["O-Gene", "B-Gene"]])["strict"]["f1"] == 1.0  # every O-* is outside


def test_tiny_aio_run_through_the_cli_into_mlflow_and_the_report(tmp_path, data_root):
    r = cli(tmp_path, data_root, "dataset=aio", "model=tiny_bert", "data.max_train_sentences=24", "data.max_eval_sentences=12",
            "train.epochs=1", "train.batch_size=16", f"data.cache={tmp_path}/cache", f"hydra.run.dir={tmp_path}/aio")
    assert r.returncode == 0, r.stderr[-3000:]
    row = runs(tmp_path).iloc[0]
    assert row["tags.aio_members"] == ",".join(MEMBERS) and row["status"] == "FINISHED"
    for m in MEMBERS:
        assert 0 <= row[f"metrics.test_{m}_strict_f1"] <= 1
    weights = json.loads(Path(mlflow.artifacts.download_artifacts(run_id=row["run_id"], artifact_path="class_weights.json")).read_text())
    assert len(weights["labels"]) == 19 and weights["labels"][:7] == ["O-ALL", "O-CellLine", "O-Chemical", "O-Disease", "O-Gene", "O-Species", "O-Variant"]
    assert set(weights["counts"]) == {"O", "B", "I"}  # every O-* counts as O
    lines = (tmp_path / "aio" / "predictions_test.conll").read_text().split("\n")
    assert lines[0].startswith("<ALL>\tO-ALL\t")
    # a single-corpus baseline in the same setting, and the AIONER-layout table
    r = cli(tmp_path, data_root, "dataset=aio", "dataset.only=[NCBIdisease]", "model=tiny_bert", "data.max_train_sentences=24",
            "data.max_eval_sentences=12", "train.epochs=1", "train.batch_size=16", f"data.cache={tmp_path}/cache",
            f"hydra.run.dir={tmp_path}/single")
    assert r.returncode == 0, r.stderr[-3000:]
    df = report.load_runs(f"sqlite:///{tmp_path}/mlflow.db", ["bioner-grid"])
    t = report.aio_table(df)
    rows = {c[0].text: [x.text for x in c[1:]] for c in t.rows}
    assert set(rows) == set(MEMBERS)
    single = 100 * df.loc[df["aio_members"] == "NCBIdisease", "test_NCBIdisease_strict_f1"].iloc[0]
    merged = 100 * row["metrics.test_NCBIdisease_strict_f1"]
    assert rows["NCBIdisease"] == [f"{single:.2f}", f"{merged:.2f}", f"{merged - single:+.2f}"]
    assert rows["Linnaeus"][0] == "—"
