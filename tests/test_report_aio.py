"""AIONER's Table 3 in the report (bioner_grid/report_aio.py): runs classified into BL1 / BL2 /
plain / MTL / all-in-one by their tags, the table from real tiny runs of experiment=aioner_comparison
with each setting paired against BL1 on the member's test sentences."""

import json

import pytest
from conftest import run_inproc

from bioner_grid import report
from bioner_grid.report_aio import Pairing, classify, setting
from bioner_grid.significance import Bootstrap, f1


def test_a_run_is_classified_by_its_members_merge_and_restriction():
    assert setting("NCBIdisease", None, None) == ("BL1", "NCBIdisease")
    assert setting("NCBIdisease", "tags", float("nan")) == ("BL1", "NCBIdisease")  # a missing tag reads as NaN
    assert setting("BioRED,NCBIdisease", "plain", "BioRED:Disease") == ("BL2", "NCBIdisease")
    assert setting("BioRED,BC5CDR_Chemical", "plain", "BioRED:Chemical") == ("BL2", "BC5CDR_Chemical")
    assert setting("BioRED,NCBIdisease,BC5CDR_Chemical", "plain", None) == ("plain", "")
    assert setting("BioRED,NCBIdisease,BC5CDR_Chemical", None, None) == ("AIO", "")
    assert setting("BioRED,NCBIdisease", "mtl", None) == ("MTL", "")
    # none of the table's settings: a plain single member, a tagged merge with a restricted member,
    # a restricted plain merge of three, no members at all
    for tags in (("NCBIdisease", "plain", None), ("BioRED,NCBIdisease", "tags", "BioRED:Disease"),
                 ("BioRED,NCBIdisease,GNormPlus", "plain", "BioRED:Disease"), (float("nan"), None, None)):
        assert setting(*tags) is None, tags


CAPS = ["model=tiny_bert", "data.max_train_sentences=16", "data.max_eval_sentences=8", "train.epochs=1", "train.batch_size=16"]


def test_the_comparison_table_of_real_runs_pairs_each_setting_with_bl1(tmp_path, data_root, monkeypatch):
    """Six tiny runs of the experiment (BL1 of NCBIdisease with two seeds, its BL2, the plain, the
    multi-task and the tagged merge of the three members): each in its own column (tags and plain never averaged
    together), Δ against BL1 with a paired bootstrap interval; the member's part cut out of each
    run's predictions scores exactly the F1 the run logged for that member."""
    monkeypatch.chdir(tmp_path)
    jobs = [("bl1_NCBIdisease", 1), ("bl1_NCBIdisease", 2), ("bl2_NCBIdisease", 1), ("plain", 1), ("mtl", 1), ("aio", 1)]
    for name, seed in jobs:
        run_inproc(tmp_path, data_root, "experiment=aioner_comparison", f"comparison.setting={name}", f"train.seed={seed}",
                   *CAPS, f"data.cache={tmp_path}/cache", out=tmp_path / f"{name}-{seed}")
    df = report.load_runs(f"sqlite:///{tmp_path}/mlflow.db", ["bioner-grid"])
    runs = classify(df)
    assert sorted(runs["setting"]) == ["AIO", "BL1", "BL1", "BL2", "MTL", "plain"]
    slices = json.loads(runs.loc[runs["setting"] == "AIO", "aio_slices"].iloc[0])
    assert slices["NCBIdisease"] == {"types": ["Disease"], "dev": [8, 16], "test": [8, 16]}  # after BioRED's 8

    files = report.RunFiles(tmp_path / "cache-report", df.attrs["tracking_uri"])
    ranker = report.Ranker(files, resamples=1000)
    (table,) = report.variant_tables(df, "test", ranker)
    assert [h for h in table.header] == ["Corpus", "BL1 (alone)", "BL2 (+BioRED, its type)", "Δ BL2 (+BioRED, its type)",
                                         "plain merge", "Δ plain merge", "MTL", "Δ MTL", "all-in-one", "Δ all-in-one"]
    rows = {r[0].text: r[1:] for r in table.rows}
    assert list(rows) == ["BioRED", "NCBIdisease", "BC5CDR_Chemical"]
    f1s = {s: 100 * runs.loc[runs["setting"] == s, "test_NCBIdisease_strict_f1"] for s in ("BL1", "BL2", "plain", "MTL", "AIO")}
    ncbi = rows["NCBIdisease"]
    assert ncbi[0].text == report.fmt(f1s["BL1"].mean(), f1s["BL1"].std(), 2) and ncbi[0].text.endswith("(n=2)")
    pairing = Pairing(runs, files, Bootstrap(1000), "test")
    bl1 = list(runs.loc[runs["setting"] == "BL1", "run_id"])
    for col, s in ((1, "BL2"), (3, "plain"), (5, "MTL"), (7, "AIO")):
        mean = f1s[s].iloc[0]
        assert ncbi[col].text == report.fmt(mean)
        other = list(runs.loc[runs["setting"] == s, "run_id"])
        r = pairing.compare("NCBIdisease", bl1, other)
        assert r is not None and r.n == 8 and r.f1_b == pytest.approx(mean) and r.f1_a == pytest.approx(f1s["BL1"].mean())
        assert ncbi[col + 1].text == f"{mean - f1s['BL1'].mean():+.2f} [{r.low:+.2f}, {r.high:+.2f}]"
        assert (ncbi[col + 1].mark == "tied") == (r.low <= 0 <= r.high)
    # every member's part of every run scores what the run logged for it (task tags or the member removed,
    # other types as O)
    for _, run in runs.iterrows():
        for member in run["aio_members"].split(","):
            pred = pairing.predictions(run["run_id"], member)
            assert 100 * f1(pred.counts.sum(axis=0)) == pytest.approx(100 * run[f"test_{member}_strict_f1"])
    # BioRED and BC5CDR's Chemical have no BL1 here: their merged scores without a Δ
    assert rows["BC5CDR_Chemical"][0].text == "—" and rows["BC5CDR_Chemical"][1].text == "—"
    assert rows["BC5CDR_Chemical"][3].text != "—" and rows["BC5CDR_Chemical"][4].text == "—"
    assert pairing.untested == 0 and "paired bootstrap" in table.note
    # the whole report carries it (report.build with the same ranker)
    tables, _ = report.build(df, ranker=ranker)
    assert [t.rows for t in tables if t.title.startswith("Settings per member corpus")] == [table.rows]


def test_a_members_part_of_a_tagged_and_a_plain_run_pairs(tmp_path):
    """The member's sentences cut out of a tagged and of a plain merge's predictions are the same
    sentences (one fingerprint) and scored on the member's types only; other sentences do not pair,
    a slice outside the file gives nothing."""
    from bioner_grid.corpus import DataError
    from bioner_grid.report_aio import member_predictions

    def write(name, sentences):
        path = tmp_path / name
        path.write_text("".join("".join(f"{t}\t{g}\t{p}\n" for t, g, p in s) + "\n" for s in sentences), encoding="utf-8")
        return path

    other = [("BRCA1", "B-Gene", "B-Gene"), ("binds", "O", "O")]
    ncbi = [("LQT3", "B-Disease", "B-Disease"), ("in", "O", "B-Gene"), ("mice", "O", "O")]
    tagged = write("tagged.conll", [[("<ALL>", "O-ALL", "O-ALL"), *other, ("</ALL>", "O-ALL", "O-ALL")],
                                    [("<Disease>", "O-Disease", "O-Disease"), *[(t, g.replace("O", "O-Disease") if g == "O" else g, p)
                                                                              for t, g, p in ncbi], ("</Disease>", "O-Disease", "O-Disease")]])
    plain = write("plain.conll", [other, ncbi])
    slices = {"NCBIdisease": {"types": ["Disease"], "test": [1, 2]}}
    a = member_predictions(tagged, slices, "NCBIdisease", "test", True, "a")
    b = member_predictions(plain, slices, "NCBIdisease", "test", False, "b")
    assert a.fingerprint == b.fingerprint and a.counts.tolist() == b.counts.tolist() == [[1, 0, 0]]  # the Gene is O here
    wider = member_predictions(plain, {"NCBIdisease": {"types": ["Disease", "Gene"], "test": [1, 2]}}, "NCBIdisease", "test", False, "c")
    assert wider.counts.tolist() == [[1, 1, 0]]
    assert member_predictions(plain, {"NCBIdisease": {"types": ["Disease"], "test": [1, 3]}}, "NCBIdisease", "test", False, "d") is None
    first = member_predictions(plain, {"NCBIdisease": {"types": ["Disease"], "test": [0, 1]}}, "NCBIdisease", "test", False, "e")
    with pytest.raises(DataError, match="not the same test sentences"):
        Bootstrap(1000).compare([a], [first])
    assert member_predictions(plain, slices, "BioRED", "test", False, "f") is None  # no slice recorded for it


def test_runs_of_another_overlap_policy_are_another_table_not_another_seed():
    """Two all-in-one runs that differ in ``data.overlap`` (test documents kept in training, or
    dropped) are two configurations: each in its own table, never averaged as two seeds."""
    import pandas as pd

    from bioner_grid.report import fmt
    from bioner_grid.report_aio import tables

    runs = pd.DataFrame([{"run_id": f"r{i}", "status": "FINISHED", "aio_members": "BioRED,NLMgene", "aio_merge": None,
                          "aio_types_only": None, "model_name": "minilm", "scheme": "welt", "lr": 1e-4, "batch_size": 32,
                          "overlap.policy": policy, "test_BioRED_strict_f1": f1, "pruned": None, "collapsed": None}
                         for i, (policy, f1) in enumerate((("drop", 0.7561), ("warn", 0.7789)))])
    found = tables(runs, "test", fmt)
    assert [t[0] for t in found] == ["Settings per member corpus, AIONER Table 3 (test strict F1, %; minilm, welt, overlap=drop)",
                                     "Settings per member corpus, AIONER Table 3 (test strict F1, %; minilm, welt, overlap=warn)"]
    assert [t[2][0][1][0] for t in found] == ["75.61", "77.89"]
