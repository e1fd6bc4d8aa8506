"""AIONER's all-in-one scheme: task tags, O-Task labels, per-member evaluation, the report table."""

import json
from pathlib import Path

import mlflow

from bioner_grid import report
from bioner_grid.aio import AllInOne, plain, tag_sentence
from bioner_grid.corpus import Adapter, Sentence
from bioner_grid.scoring import score
from conftest import ROOT, run_inproc, runs

MEMBERS = ["BioRED", "NCBIdisease", "BC5CDR_Chemical", "BC5CDR_Disease", "Linnaeus", "GNormPlus", "NLMgene", "tmVar3", "BioID"]


def test_a_sentence_is_wrapped_in_its_task_tags():
    s = tag_sentence(Sentence(["SCN5A", "causes", "LQT3"], ["O", "O", "B-Disease"]), "Disease")
    assert s.tokens == ["<Disease>", "SCN5A", "causes", "LQT3", "</Disease>"]
    assert s.tags == ["O-Disease", "O-Disease", "O-Disease", "B-Disease", "O-Disease"]
    assert plain(s.tokens, s.tags) == (["SCN5A", "causes", "LQT3"], ["O", "O", "B-Disease"])
    # a Disease-task sentence is scored on Disease only: a predicted gene counts as O
    assert plain(s.tokens, ["O-Disease", "B-Gene", "O-Gene", "B-Disease", "O-Disease"], ["Disease"])[1] == ["O", "O", "B-Disease"]
    assert score([["O-ALL", "B-Gene"]], [["O-Gene", "B-Gene"]])["strict"]["f1"] == 1.0  # every O-* is outside


def test_the_adapters_hooks_a_plain_corpus_and_an_all_in_one_one():
    """What the pipeline, the saved model and the tagger call for any corpus: the all-in-one
    adapter teaches the tokenizer its task tags, tags the run with its members, scores each member
    on its own task (a gene predicted in a Disease sentence counts as O there) and the whole
    without task tags (where it counts); the plain adapter changes nothing."""
    from omegaconf import OmegaConf

    from bioner_grid.modeling import load_tokenizer

    s1 = tag_sentence(Sentence(["SCN5A", "causes", "LQT3"], ["O", "O", "B-Disease"]), "Disease")
    s2 = tag_sentence(Sentence(["BRCA1", "mutation"], ["B-Gene", "O"]), "Gene")
    tokens, gold = [s1.tokens, s2.tokens], [s1.tags, s2.tags]
    pred = [["O-Disease", "B-Gene", "O-Disease", "B-Disease", "O-Disease"], ["O-Gene", "O-Gene", "O-Gene", "O-Gene"]]
    aio = AllInOne(("<Disease>", "</Disease>", "<Gene>", "</Gene>"),
                   {"NCBIdisease": {"task": "Disease", "types": ["Disease"], "test": [0]},
                    "GNormPlus": {"task": "Gene", "types": ["Gene"], "test": [1]}})
    views = aio.member_views("test", tokens, gold, pred)
    assert views["NCBIdisease"] == ([["SCN5A", "causes", "LQT3"]], [["O", "O", "B-Disease"]], [["O", "O", "B-Disease"]])
    assert views["GNormPlus"][1:] == ([["B-Gene", "O"]], [["O", "O"]])
    assert aio.scored_view(tokens, gold, pred)[2] == [["B-Gene", "O", "B-Disease"], ["O", "O"]]
    assert aio.run_tags() == {"aio_members": "NCBIdisease,GNormPlus"}
    assert aio.tasks() == {"Disease": ["Disease"], "Gene": ["Gene"]}
    assert aio.wrap(Sentence(["BRCA1"], ["O"]), "Gene").tokens == ["<Gene>", "BRCA1", "</Gene>"]
    assert aio.unwrap(["<Gene>", "BRCA1", "</Gene>"], ["O-Gene", "B-Gene", "O-Gene"]) == ["B-Gene"]

    plain_corpus = Adapter()
    assert plain_corpus.member_views("test", tokens, gold, pred) == {} and plain_corpus.run_tags() == {}
    assert plain_corpus.scored_view(tokens, gold, pred) == (tokens, gold, pred) and plain_corpus.tasks() == {}
    minilm = OmegaConf.load(ROOT / "conf" / "model" / "minilm.yaml")
    tokenizers = load_tokenizer(minilm), load_tokenizer(minilm)
    plain_corpus.prepare_tokenizer(tokenizers[0])
    aio.prepare_tokenizer(tokenizers[1])
    assert len(tokenizers[1]) == len(tokenizers[0]) + 4
    assert tokenizers[1].tokenize("<Gene> BRCA1 </Gene>")[0] == "<Gene>"


def test_tiny_aio_run_through_the_cli_into_mlflow_and_the_report(tmp_path, data_root, monkeypatch):
    monkeypatch.chdir(tmp_path)  # in this process, as the command line runs it (tests/conftest.py run_inproc)
    run_inproc(tmp_path, data_root, "dataset=aio", "model=tiny_bert", "data.max_train_sentences=24", "data.max_eval_sentences=12",
               "train.epochs=1", "train.batch_size=16", f"data.cache={tmp_path}/cache", out=tmp_path / "aio")
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
    run_inproc(tmp_path, data_root, "dataset=aio", "dataset.only=[NCBIdisease]", "model=tiny_bert", "data.max_train_sentences=24",
               "data.max_eval_sentences=12", "train.epochs=1", "train.batch_size=16", f"data.cache={tmp_path}/cache",
               out=tmp_path / "single")
    df = report.load_runs(f"sqlite:///{tmp_path}/mlflow.db", ["bioner-grid"])
    t = report.aio_table(df)
    rows = {c[0].text: [x.text for x in c[1:]] for c in t.rows}
    assert set(rows) == set(MEMBERS)
    single = 100 * df.loc[df["aio_members"] == "NCBIdisease", "test_NCBIdisease_strict_f1"].iloc[0]
    merged = 100 * row["metrics.test_NCBIdisease_strict_f1"]
    assert rows["NCBIdisease"] == [f"{single:.2f}", f"{merged:.2f}", f"{merged - single:+.2f}"]
    assert rows["Linnaeus"][0] == "—"
