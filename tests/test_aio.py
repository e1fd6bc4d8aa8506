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
    assert aio.run_tags() == {"aio_members": "NCBIdisease,GNormPlus",  # where each member's sentences lie (report_aio)
                              "aio_slices": '{"NCBIdisease":{"types":["Disease"],"test":[0,1]},"GNormPlus":{"types":["Gene"],"test":[1,2]}}'}
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
    (t,) = report.variant_tables(df)  # no predictions given: no bootstrap interval (tests/test_report_aio.py pairs them)
    assert t.header == ["Corpus", "BL1 (alone)", "all-in-one", "Δ all-in-one"]
    rows = {c[0].text: [x.text for x in c[1:]] for c in t.rows}
    assert set(rows) == set(MEMBERS)
    single = 100 * df.loc[df["aio_members"] == "NCBIdisease", "test_NCBIdisease_strict_f1"].iloc[0]
    merged = 100 * row["metrics.test_NCBIdisease_strict_f1"]
    assert rows["NCBIdisease"] == [f"{single:.2f}", f"{merged:.2f}", f"{merged - single:+.2f}"]
    assert rows["Linnaeus"][0] == "—"


def log_aio_store(tmp_path) -> str:
    """A store with all-in-one runs (two members merged, and NCBIdisease alone) and plain
    ncbi_disease runs, two schemes and two seeds each, and one FAILED all-in-one run; metrics
    logged under their stored (grouped) names as the pipeline logs them."""
    from mlflow import MlflowClient

    from bioner_grid.store import metric_name

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment("grid", artifact_location=(tmp_path / "art").as_uri())

    def run(dataset, scheme, seed, f1, members=None, metrics=None, status="FINISHED"):
        tags = {"model": "tiny_bert", "dataset": dataset, "scheme": scheme, "lr": "5e-05", "batch_size": "32", "seed": str(seed)}
        r = client.create_run(experiment, tags={**tags, **({"aio_members": members} if members else {})})
        for k, v in {"test_strict_f1": f1, "test_strict_precision": f1, "test_strict_recall": f1, **(metrics or {})}.items():
            client.log_metric(r.info.run_id, metric_name(k), v)
        client.set_terminated(r.info.run_id, status)

    def data(o, b, i, sentences):
        return {"data_train_n_O": o, "data_train_n_B": b, "data_train_n_I": i,
                **{f"data_{s}_sentences": n for s, n in zip(("train", "dev", "test"), sentences)}}

    for scheme, base in (("vanilla", 0.0), ("welt", 0.01)):
        for seed in (1, 2):
            run("aio", scheme, seed, 0.70 + base + seed / 100, "NCBIdisease,GNormPlus",
                {"test_NCBIdisease_strict_f1": 0.80 + base + seed / 100, "test_GNormPlus_strict_f1": 0.60 + base, **data(900, 60, 40, (100, 10, 20))})
            run("aio", scheme, seed, 0.75 + base, "NCBIdisease", {"test_NCBIdisease_strict_f1": 0.75 + base + seed / 200, **data(450, 30, 20, (50, 5, 10))})
            run("ncbi_disease", scheme, seed, 0.82 + base - seed / 100, metrics=data(800, 120, 80, (70, 7, 9)))
    run("aio", "welt", 3, 0.1, "NCBIdisease,GNormPlus", status="FAILED")
    return uri


def test_the_report_of_a_store_with_and_without_all_in_one_runs(tmp_path):
    """The all-in-one corpus's part of the report (report_aio.ReportHooks, called for any runs): its table,
    its corpora named by their members in the corpus tables; a store without all-in-one runs gets
    neither. The tables are those the report gave when it held these branches itself (commit 7f093a4)."""
    uri = log_aio_store(tmp_path)
    df = report.load_runs(uri, ["grid"])
    tables, notes = report.build(df)
    assert [t.title.split(" (")[0].split(":")[0] for t in tables] == [
        "Overview", "All-in-one", "All-in-one", "NCBI-disease", "All-in-one", "NCBI-disease", "Wins",
        "Best scheme per model and corpus, chosen on test strict F1; test F1",
        "Schemes versus Vanilla over matched", *["Settings per member corpus, AIONER Table 3"] * 2,
        "Class distribution of the training split", "Sentences per split"]
    assert notes[0] == "13 runs read: 12 finished, 1 not finished (1 FAILED), left out."
    # the ranking: one table per all-in-one member set (scored on other test sentences), none across them
    assert [t.title.split(":")[0] for t in tables[1:3]] == ["All-in-one (NCBIdisease)", "All-in-one (NCBIdisease + GNormPlus)"]
    # issue 22: one comparison per scheme (the old table averaged Vanilla and WeLT runs together)
    assert "\n".join(report.to_markdown(t).split("\n\n")[1] for t in tables[-4:-2]) == """\
| Corpus | BL1 (alone) | all-in-one | Δ all-in-one |
|:---|---:|---:|---:|
| NCBIdisease | 75.75 ± 0.35 (n=2) | **81.50 ± 0.71 (n=2)** | +5.75 |
| GNormPlus | — | **60.00 ± 0.00 (n=2)** | — |
| Corpus | BL1 (alone) | all-in-one | Δ all-in-one |
|:---|---:|---:|---:|
| NCBIdisease | 76.75 ± 0.35 (n=2) | **82.50 ± 0.71 (n=2)** | +5.75 |
| GNormPlus | — | **61.00 ± 0.00 (n=2)** | — |"""
    assert tables[-4].title.endswith("(test strict F1, %; tiny_bert, vanilla)")
    assert "\n".join(report.to_markdown(t) for t in tables[-2:]) == """\
### Class distribution of the training split (%)

| Dataset | O | B | I |
|:---|---:|---:|---:|
| All-in-one (NCBIdisease) | 90.00 | 6.00 | 4.00 |
| All-in-one (NCBIdisease + GNormPlus) | 90.00 | 6.00 | 4.00 |
| NCBI-disease | 80.00 | 12.00 | 8.00 |

### Sentences per split

| Dataset | Train | Dev | Test |
|:---|---:|---:|---:|
| All-in-one (NCBIdisease) | 50 | 5 | 10 |
| All-in-one (NCBIdisease + GNormPlus) | 100 | 10 | 20 |
| NCBI-disease | 70 | 7 | 9 |
"""
    assert "| All-in-one | TinyBERT | 73.25 ± 2.06 (n=4) | **74.25 ± 2.06 (n=4)** |" in report.to_markdown(tables[0])
    assert [t.rows for t in report.variant_tables(df)] == [t.rows for t in tables[-4:-2]]

    plain = report.load_runs(uri, ["grid"], "tags.dataset = 'ncbi_disease'")
    assert plain["aio_members"].isna().all()
    tables, _ = report.build(plain)
    assert not any(t.title.startswith(("All-in-one", "Settings per member")) for t in tables)
    assert [[c.text for c in row] for row in tables[-1].rows] == [["NCBI-disease", "70", "7", "9"]]
    # the files the report writes carry the same: no all-in-one table, and aio_members a column of runs.csv
    report.write(plain, tmp_path / "out", cache=tmp_path / "cache")
    assert "aio_members" in (tmp_path / "out" / "runs.csv").read_text().splitlines()[0].split(",")
    assert "All-in-one" not in (tmp_path / "out" / "report.md").read_text()
