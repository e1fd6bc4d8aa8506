"""Training documents that are also in an evaluation split: found on the real corpora, dropped
before dev is held out (a contaminated copy trains as the clean corpus), kept with a warning, or
refused in one line; what a run records; the run key; the overlap matrix."""

import json
import logging
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest
from omegaconf import OmegaConf

from bioner_grid import identity, spec
from bioner_grid.config import compose
from bioner_grid.data import load_corpus, overlap_matrix
from bioner_grid.errors import DataError
from bioner_grid.overlap import Evaluation, Screen, Units, normalise
from bioner_grid.pubtator import read_pubtator
from conftest import NCBI, ROOT, cli, runs


def matrix_rows(text: str) -> dict[str, list[str]]:
    """The matrix as {test label: cells}, the header under ``header``."""
    lines = text.splitlines()[1:]
    header = lines[0].split()[3:]  # after "test \\ train"
    rows = {line.split()[0]: line.split(")", 1)[1].split() for line in lines[1:]}
    return {"header": header, **rows}


def test_the_issue_counts_of_test_documents_in_all_in_one_training_files(data_root):
    """Issue 21's figures: PMIDs of each PubTator test file also in some training file of dataset=aio."""
    cfg = compose([f"data.root={data_root}", "dataset=aio"])
    rows = matrix_rows(overlap_matrix([cfg.dataset]))
    anywhere = {name: " ".join(cells[-3:]) for name, cells in rows.items() if name != "header"}
    assert anywhere == {"BioRED": "72 of 100", "tmVar3": "75 of 158", "NLMgene": "22 of 100", "BC5CDR": "69 of 500",
                        "GNormPlus": "4 of 262", "NCBIdisease": "1 of 100", "Linnaeus": "0 of 20", "BioID": "0 of 3993"}
    column = dict(zip(rows["header"], range(len(rows["header"]))))
    assert rows["BioRED"][column["BC5CDR"]] == "21" and rows["BC5CDR"][column["BioRED"]] == "69"  # BioRED ∩ BC5CDR
    assert rows["BioRED"][column["tmVar3"]] == "24" and rows["tmVar3"][column["BioRED"]] == "75"


def test_a_copy_is_found_by_id_or_by_text(data_root):
    """One NLM-Gene test abstract has the PMID of a BioRED training abstract but not its text (six
    characters differ): found by id. A copy under another PMID is found by its text."""
    nlm = read_pubtator(data_root / "pubtator" / "NLMgene_Test.PubTator")[0]
    biored = read_pubtator(data_root / "pubtator" / "BioRED_TrainDev.PubTator")[0]
    test = Units.of_documents("t", [(d.pmid, d.text) for d in nlm])
    train = Units.of_documents("b", [(d.pmid, d.text) for d in biored])
    without_ids = Units("b", "documents", train.texts, [None] * len(train), train.where)
    assert (len(test.found_in(train)), len(test.found_in(without_ids))) == (22, 21)
    renamed = Units.of_documents("r", [("9" + d.pmid, "  " + d.text.upper().replace(" ", " \t ")) for d in nlm[:5]])
    assert renamed.found_in(test) == [0, 1, 2, 3, 4]
    assert normalise(" A\tB \n c ") == "a b c"


def contaminated_ncbi(tmp_path: Path, dev: bool) -> tuple[OmegaConf, OmegaConf]:
    """conll_files configs of NCBI-disease as published, and of a copy whose training file has the
    test sentences appended; ``dev=False``: no dev file, so dev is held out of training."""
    dirty = tmp_path / "train_with_test.tsv"
    dirty.write_text((NCBI / "train.tsv").read_text().rstrip("\n") + "\n\n" + (NCBI / "test.tsv").read_text())
    files = [f"dataset.test={NCBI}/test.tsv"] + ([f"dataset.dev={NCBI}/devel.tsv"] if dev else [])
    clean = compose(["dataset=conll_files", f"dataset.train={NCBI}/train.tsv", *files]).dataset
    copy = compose(["dataset=conll_files", f"dataset.train={dirty}", *files]).dataset
    return clean, copy


def sentences(corpus, split):
    return [(s.tokens, s.tags) for s in corpus.splits[split].sentences]


@pytest.mark.parametrize("dev", [True, False], ids=["dev file", "dev held out"])
def test_a_contaminated_copy_trains_exactly_as_the_clean_corpus_under_drop(tmp_path, dev):
    clean, copy = contaminated_ncbi(tmp_path, dev)
    a, b = load_corpus(clean, overlap="drop"), load_corpus(copy, overlap="drop")
    for split in ("train", "dev", "test"):  # dev too: the copies are dropped before dev is held out
        assert sentences(a, split) == sentences(b, split), split
    assert b.overlap.tags()["overlap.train_test"] == "941"  # the 940 pasted test sentences and one of the 5424
    assert b.overlap.tags()["overlap.test_in_train"] == "940 of 940" and a.overlap.tags()["overlap.test_in_train"] == "1 of 940"
    removed = int(a.overlap.tags()["overlap.removed"])
    warned = load_corpus(clean, overlap="warn")
    assert warned.overlap.tags()["overlap.removed"] == "0"
    # every training sentence of the published file is trained on, held out as dev, or removed
    assert len(sentences(a, "train")) + (0 if dev else len(sentences(a, "dev"))) + removed == 5424
    assert len(sentences(warned, "train")) + (0 if dev else len(sentences(warned, "dev"))) == 5424
    if dev:  # published NCBI: 1 training sentence in test, 12 in dev; drop removes those 13, warn none
        tags = a.overlap.tags()
        assert (tags["overlap.train_test"], tags["overlap.train_dev"], removed) == ("1", "12", 13)


def test_warn_keeps_the_published_split_and_logs_the_count(caplog, monkeypatch):
    from bioner_grid import overlap

    monkeypatch.setattr(overlap, "SAID", set())
    clean = compose(["dataset=conll_files", f"dataset.train={NCBI}/train.tsv", f"dataset.test={NCBI}/test.tsv",
                     f"dataset.dev={NCBI}/devel.tsv"]).dataset
    with caplog.at_level(logging.WARNING, logger="bioner_grid.overlap"):
        corpus = load_corpus(clean, overlap="warn")
    assert len(corpus.splits["train"].sentences) == 5424
    assert f"{NCBI}/train.tsv: 1 sentences also in {NCBI}/test.tsv (data.overlap=warn)" in caplog.messages
    assert f"{NCBI}/train.tsv: 12 sentences also in {NCBI}/devel.tsv (data.overlap=warn)" in caplog.messages
    caplog.clear()  # the same files loaded again in this process (the next job of a local sweep): said once
    with caplog.at_level(logging.WARNING, logger="bioner_grid.overlap"):
        load_corpus(clean, overlap="warn")
    assert not caplog.messages


def test_fail_names_the_files_and_the_count(tmp_path):
    _, copy = contaminated_ncbi(tmp_path, dev=True)
    with pytest.raises(DataError) as e:
        load_corpus(copy, overlap="fail")
    assert str(e.value) == f"{copy.train}: 941 sentences also in {NCBI}/test.tsv (data.overlap=fail)"


def test_a_pubtator_copy_under_other_pmids_is_dropped_before_dev_is_held_out(tmp_path, data_root):
    """NCBI-disease's PubTator test abstracts pasted into its training file under other PMIDs (found
    by their text): under drop the corpus, dev held out by a seeded fraction, is the clean one."""
    pub = data_root / "pubtator"
    test_text = (pub / "NCBIdisease_Test.PubTator").read_text()
    renamed = "\n".join(("9" + line) if line.strip() else line for line in test_text.split("\n"))
    dirty = tmp_path / "dirty.PubTator"
    dirty.write_text((pub / "NCBIdisease_TrainDev.PubTator").read_text().rstrip("\n") + "\n\n" + renamed)
    types = "dataset.types={Disease: [DiseaseClass, SpecificDisease, CompositeMention, Modifier]}"
    load = lambda train: load_corpus(compose(["dataset=pubtator_files", f"dataset.train={train}",  # noqa: E731
                                              f"dataset.test={pub}/NCBIdisease_Test.PubTator", types]).dataset,
                                     cache_dir=tmp_path / "cache", overlap="drop")
    a, b = load(pub / "NCBIdisease_TrainDev.PubTator"), load(dirty)
    for split in ("train", "dev", "test"):
        assert sentences(a, split) == sentences(b, split), split
    assert b.overlap.tags()["overlap.train_test"] == "100" and a.overlap.tags()["overlap.train_test"] == "0"
    pasted = {"9" + d.pmid for d in read_pubtator(pub / "NCBIdisease_Test.PubTator")[0]}
    assert [(p.split, set(p.found)) for p in b.overlap.pairs] == [("test", pasted)]  # found by text: no such PMID in test


def test_all_in_one_drops_what_members_share_with_each_others_test_and_dev(tmp_path, data_root):
    cfg = compose([f"data.root={data_root}", "dataset=aio", "dataset.only=[BioRED,tmVar3]", f"data.cache={tmp_path}"])
    assert cfg.data.overlap == "drop"  # AIONER's protocol is the all-in-one default
    corpus = load_corpus(cfg.dataset, cache_dir=cfg.data.cache, overlap=cfg.data.overlap)
    tags = corpus.overlap.tags()
    assert tags["overlap.BioRED.train_test"] == "75" and tags["overlap.tmVar3.train_test"] == "24"  # each other's test
    assert tags["overlap.BioRED.test_in_train"] == "24 of 100" and tags["overlap.tmVar3.test_in_train"] == "75 of 158"
    assert int(tags["overlap.removed"]) == 75 + 24 + int(tags["overlap.train_dev"])
    ids = {p.member: set(p.found) for p in corpus.overlap.pairs if p.split == "test"}
    tmvar_test = {d.pmid for d in read_pubtator(data_root / "pubtator" / "tmVar3_Test.PubTator")[0]}
    assert ids["BioRED"] <= tmvar_test and len(ids["BioRED"]) == 75
    kept = load_corpus(cfg.dataset, cache_dir=cfg.data.cache, overlap="warn")
    assert len(kept.splits["train"].sentences) + len(kept.splits["dev"].sentences) > \
        len(corpus.splits["train"].sentences) + len(corpus.splits["dev"].sentences)


def test_the_default_is_drop_for_aio_and_warn_elsewhere_and_a_bad_value_is_refused():
    assert [compose(o).data.overlap for o in ([], ["dataset=biored_chem"], ["dataset=aio"])] == ["warn", "warn", "drop"]
    assert spec.problems(compose(["data.overlap=keep"])) == ["data.overlap=keep: must be one of drop, warn, fail"]


def test_the_run_key_changes_only_where_drop_changes_what_is_trained(data_root):
    key = lambda *o: identity.run_key(compose([f"data.root={data_root}", *o]))  # noqa: E731
    cell = lambda *o: identity.cell_key(compose([f"data.root={data_root}", *o]))  # noqa: E731
    # the keys of 7f093a4, before data.overlap existed: warn and fail keep them
    assert key() == key("data.overlap=warn") == key("data.overlap=fail") == "d32e4eec0d644ede"
    assert key("dataset=biored_chem") == "4cffab75eecd7508"
    # the all-in-one key of 7f093a4 is "d085099f65af988a" without BioID's strip_suffixes (issue 22 item 5,
    # which changed that key once); with the member option cleared it is unchanged
    assert key("dataset=aio", "data.overlap=warn", "dataset.members.8.strip_suffixes=[]") == "d085099f65af988a"
    # drop trains on other data: a key (and cell) of its own, also at the all-in-one default
    assert key("data.overlap=drop") != key() and cell("data.overlap=drop") != cell()
    assert key("dataset=aio") == key("dataset=aio", "data.overlap=drop") != "d085099f65af988a"
    assert identity.defines_result("data.overlap")  # a param of the run, so the report tells drop from warn


def test_screen_tags_and_summary_of_a_small_corpus():
    screen = Screen("drop")
    train = Units("train.tsv", "sentences", ["a b", "c d", "e f"], [None] * 3, ["1", "4", "7"], [2, 2, 2])
    test = Units("test.tsv", "sentences", ["c d", "x y"], [None] * 2, ["1", "4"], [2, 2])
    assert screen.apply(["s1", "s2", "s3"], train, [Evaluation("test", test)]) == ["s1", "s3"]
    assert screen.tags() == {"overlap.policy": "drop", "overlap.train_test": "1", "overlap.train_dev": "0",
                             "overlap.removed": "1", "overlap.test_in_train": "1 of 2"}
    assert screen.summary()["pairs"][0]["found"] == ["4"]


def test_fail_stops_the_run_with_one_line_and_records_nothing(tmp_path, data_root):
    _, copy = contaminated_ncbi(tmp_path, dev=True)
    r = cli(tmp_path, data_root, "debug=quick", "dataset=conll_files", f"dataset.train={copy.train}",
            f"dataset.dev={copy.dev}", f"dataset.test={copy.test}", "data.overlap=fail", f"data.cache={tmp_path}/cache")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == f"error: {copy.train}: 941 sentences also in {NCBI}/test.tsv (data.overlap=fail)"
    assert [line for line in r.stderr.splitlines() if "error" in line.lower() or "Traceback" in line] == \
        [r.stderr.strip().splitlines()[-1]]  # one line (an import-time UserWarning of MLflow's aside)
    assert not (tmp_path / "mlflow.db").exists() or runs(tmp_path).empty


def test_a_run_records_what_was_found_and_removed(tmp_path, data_root):
    """One quick run on the contaminated copy under drop: tags per split, the param, overlap.json."""
    _, copy = contaminated_ncbi(tmp_path, dev=True)
    r = cli(tmp_path, data_root, "debug=quick", "dataset=conll_files", f"dataset.train={copy.train}",
            f"dataset.dev={copy.dev}", f"dataset.test={copy.test}", "data.overlap=drop", f"data.cache={tmp_path}/cache",
            f"hydra.run.dir={tmp_path}/run")
    assert r.returncode == 0, r.stderr[-3000:]
    row = runs(tmp_path).iloc[0]
    assert row["tags.overlap.policy"] == "drop" and row["params.data.overlap"] == "drop"
    assert row["tags.overlap.train_test"] == "941" and row["tags.overlap.test_in_train"] == "940 of 940"
    found = json.loads(Path(mlflow.artifacts.download_artifacts(run_id=row["run_id"], artifact_path="overlap.json")).read_text())
    test_pair = next(p for p in found["pairs"] if p["split"] == "test")
    assert test_pair["train"] == copy.train and test_pair["evaluation"] == f"{NCBI}/test.tsv" and len(test_pair["found"]) == 941
    dev_pair = next(p for p in found["pairs"] if p["split"] == "dev")
    assert found["removed"][""] == int(row["tags.overlap.removed"]) == len(set(test_pair["found"]) | set(dev_pair["found"]))


def test_the_matrix_command_on_bio_corpora(data_root):
    r = subprocess.run([sys.executable, "-m", "bioner_grid.data", "overlap", "dataset=ncbi_disease,bc2gm,linnaeus",
                        f"data.root={data_root}"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    rows = matrix_rows(r.stdout)
    assert rows["header"] == ["NCBI-disease", "BC2GM", "linnaeus", "in", "any", "train"]
    # issue 21: test sentences of 8+ tokens also in their own training file: NCBI 1, BC2GM 12, LINNAEUS 19
    assert rows["NCBI-disease"] == ["1", "0", "0", "1", "of", "910"]
    assert rows["BC2GM"][1] == "12" and rows["linnaeus"][2] == "19"
