"""Tagging modes of an all-in-one model (``tag.mode``, bioner_grid/tagmodes.py): AIONER's rule for
overlapping predictions (the longest span wins), the passes of each mode, and the per-type table
of the three modes on BioRED's test set from a real (tiny) all-in-one model."""

from __future__ import annotations

import json

import pytest

from bioner_grid import tag, tag_compare
from bioner_grid.corpus import entity_spans
from bioner_grid.tagmodes import keep_longest, merge, passes, to_tags
from conftest import run_inproc

TASKS = {"ALL": ["Chemical", "Disease", "Gene"], "Chemical": ["Chemical"], "Disease": ["Disease"]}


def test_the_longest_span_wins():
    # "lithium toxicity": <Chemical> found "lithium" (0-1), <Disease> "lithium toxicity" (0-2)
    assert keep_longest([(0, 1, "Chemical"), (0, 2, "Disease")]) == [(0, 2, "Disease")]
    # a partial overlap: the longer of the two, wherever it starts
    assert keep_longest([(2, 4, "Gene"), (3, 6, "Chemical")]) == [(3, 6, "Chemical")]
    # what does not overlap the winner is kept, in text order
    assert keep_longest([(5, 6, "Gene"), (0, 3, "Disease"), (2, 4, "Chemical")]) == [(0, 3, "Disease"), (5, 6, "Gene")]


def test_ties_go_to_the_earliest_start_then_the_type_order():
    assert keep_longest([(3, 5, "Gene"), (2, 4, "Chemical")]) == [(2, 4, "Chemical")]
    assert keep_longest([(2, 4, "Gene"), (2, 4, "Chemical")], ["Gene", "Chemical"]) == [(2, 4, "Gene")]
    assert keep_longest([(2, 4, "Gene"), (2, 4, "Chemical")], ["Chemical", "Gene"]) == [(2, 4, "Chemical")]
    assert keep_longest([(2, 4, "Gene"), (2, 4, "Gene"), (6, 7, "Gene")]) == [(2, 4, "Gene"), (6, 7, "Gene")]


def test_passes_are_merged_into_one_flat_tagging():
    chemical = [["B-Chemical", "O", "O", "I-Chemical"]]  # a stray I- starts an entity (conlleval)
    disease = [["B-Disease", "I-Disease", "O", "O"]]
    assert merge([chemical, disease], ["Chemical", "Disease"]) == [["B-Disease", "I-Disease", "O", "B-Chemical"]]
    assert to_tags([(1, 3, "Gene")], 4) == ["O", "B-Gene", "I-Gene", "O"]


def test_the_passes_of_each_mode():
    every = {"Chemical", "Disease", "Gene"}
    assert passes(TASKS, every, True, "all") == [("ALL", every)]
    assert passes(TASKS, every, True, "auto") == [("ALL", every)]
    assert passes(TASKS, every, True, "individual") == [("Chemical", {"Chemical"}), ("Disease", {"Disease"}), ("ALL", {"Gene"})]
    assert passes(TASKS, every, True, "combined") == [("ALL", every), ("Chemical", {"Chemical"}), ("Disease", {"Disease"})]
    assert passes(TASKS, {"Chemical", "Gene"}, False, "auto") == [("Chemical", {"Chemical"}), ("ALL", {"Gene"})]
    with pytest.raises(ValueError, match="tag.mode=all: the model has no <ALL> task"):
        passes({"Disease": ["Disease"]}, {"Disease"}, True, "all")
    with pytest.raises(ValueError, match="tag.mode=every: must be one of auto, all, individual, combined"):
        passes(TASKS, every, True, "every")


@pytest.fixture(scope="module")
def aio_model(tmp_path_factory, data_root):
    """A tiny_bert all-in-one model of BioRED (task ALL), NCBI-disease (Disease) and BC5CDR's
    chemicals (Chemical): a few training sentences per member, one epoch."""
    tmp = tmp_path_factory.mktemp("aio")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        run_inproc(tmp, data_root, "dataset=aio", "dataset.only=[BioRED,NCBIdisease,BC5CDR_Chemical]", "model=tiny_bert",
                   "data.max_train_sentences=24", "data.max_eval_sentences=8", "train.epochs=1", "train.batch_size=16",
                   f"data.cache={tmp}/cache", out=tmp / "run")
    return tmp


@pytest.mark.slow
def test_the_three_modes_are_compared_per_type_on_biored(aio_model, data_root, capsys):
    model = aio_model / "run" / "model"
    args = [f"model={model}", f"data.root={data_root}", f"data.cache={aio_model}/cache", "max_sentences=60", "format=json"]
    assert tag_compare.main(args) == 0
    rows = next(iter(json.loads(capsys.readouterr().out).values()))
    assert [r["label"] for r in rows][-1] == "overall"
    gold_types = {r["label"] for r in rows[:-1]}
    assert {"Chemical", "Disease", "Gene"} <= gold_types
    for r in rows:
        for mode in tag_compare.MODES:
            assert 0 <= r[f"{mode} F1"] <= 100
    # combined = the union of all and individual, resolved by the longest span: each entity of the
    # <ALL> pass is in the combined tagging, or a longer (or as long, earlier) entity overlaps it
    tagger = tag.open_tagger(model)
    tokens, _ = tag_compare.member_test("BioRED", str(data_root), f"{aio_model}/cache")
    tokens = tokens[:60]
    alone, combined = (tagger.tag_sentences(tokens, None, mode=m) for m in ("all", "combined"))
    checked = 0
    for a, c in zip(alone, combined):
        kept = [(s, e, x) for x, s, e in entity_spans(c)]
        for x, s, e in entity_spans(a):
            checked += 1
            assert (s, e, x) in kept or any(ks < e and s < ke and ke - ks >= e - s for ks, ke, _ in kept)
    assert checked > 0


def test_every_mode_reads_its_tags_as_the_tagger_writes_entities():
    """A pass's stray I-X is an entity for the tagger (``entity_spans``, conlleval's reading), so the
    comparison counts it as one in every mode, one pass or several (a merged tagging rewrites it as
    B-X): the modes then differ only in their predictions."""

    class Tagger:
        types = ["Disease", "Gene"]

        def plan(self, types, mode):
            return {"all": [("ALL", {"Disease", "Gene"})], "individual": [("Gene", {"Gene"}), ("ALL", {"Disease"})]}[mode]

        def predict_pass(self, tokens, task):
            return [["I-Gene", "O", "B-Disease"]] if task == "ALL" else [["I-Gene", "O", "O"]]

    scores = tag_compare.compare(Tagger(), [["BRCA1", "in", "cancer"]], [["B-Gene", "O", "B-Disease"]],
                                 modes=("all", "individual"))
    assert scores["all"]["f1"] == scores["individual"]["f1"] == 1.0


def test_tag_refuses_a_mode_it_does_not_know(tmp_path, capsys):
    (tmp_path / "x.txt").write_text("Some text.\n")
    code = tag.main([f"model={tmp_path}", f"input={tmp_path}/x.txt", "format=text", f"out={tmp_path}/o", "tag.mode=every"])
    assert code == 2
    assert "tag.mode=every is not one of auto, all, individual, combined" in capsys.readouterr().err
