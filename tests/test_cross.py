"""Issue 21, items 3 and 4: other datasets' test splits scored by a run (``evaluation.extra_tests``,
bioner_grid/cross.py) and learning-curve subsamples (``data.train_fraction`` /
``data.train_documents``), with their report parts (report_cross.py, report_curve.py)."""

from __future__ import annotations

import json
import warnings

import mlflow
import pandas as pd
import pytest

from bioner_grid import cross, identity, scoring, spec, tracking
from bioner_grid.config import compose
from bioner_grid.corpus import nested_subsample, subsample_of
from bioner_grid.data import _mapped_types, load_corpus, load_extra_tests, read_conll
from conftest import DATA, NCBI, app_inproc, run_inproc, runs

BC5CDR = DATA / "conll" / "BC5CDR-disease"
QUICK = ["debug=quick", "train.save_model=false", "tracking.system_metrics=false"]


# ---------------------------------------------------------------------------------------------
# Types: mapped as the dataset configs name them, refused in one line where they cannot be


def test_types_come_from_the_dataset_configs_and_map_by_name():
    cfg = compose([f"data.root={DATA}", "evaluation.extra_tests=[bc5cdr_disease,biored_disease,ncbi_disease]"])
    assert cross.output_types(cfg.dataset) == ["Disease"]  # NCBI-disease's entity_type
    assert cross.output_types(cross.dataset_config("biored_disease", cfg)) == ["Disease"]  # BioRED's types: {Disease: …}
    aio = compose([f"data.root={DATA}", "dataset=aio", "dataset.only=[NCBIdisease]"]).dataset
    assert cross.output_types(aio) == ["Disease"]  # NCBI's subtypes, mapped to Disease by the aio config
    assert cross.extra_names(cfg) == ["bc5cdr_disease", "biored_disease"]  # its own test is scored anyway
    assert cross.type_mapping(["Gene"], ["GENE"]) == ({"GENE": "Gene"}, [])  # BC2GM's name for the type
    assert cross.type_mapping(["Disease"], ["DISO", "Chemical"], {"DISO": "Disease"}) == ({"DISO": "Disease"}, ["Chemical"])
    assert spec.problems(cfg) == []


@pytest.mark.parametrize("extra, message", [
    ("bc5cdr_chem", "evaluation.extra_tests: bc5cdr_chem: its type(s) Chemical map to none of the model's (Disease, "
                    "dataset=ncbi_disease); drop it or set evaluation.type_map={Chemical: <model type>}"),
    ("nosuch", "evaluation.extra_tests: nosuch: no such dataset config (one of aio, "),
    ("aio", "evaluation.extra_tests: aio: an all-in-one corpus cannot be an extra test set"),
])
def test_an_unmappable_extra_test_is_a_spec_problem(extra, message):
    problems = spec.problems(compose([f"data.root={DATA}", f"evaluation.extra_tests=[{extra}]"]))
    assert len(problems) == 1 and problems[0].startswith(message)
    mapped = compose([f"data.root={DATA}", "evaluation.extra_tests=[bc5cdr_chem]", "evaluation.type_map={Chemical: Disease}"])
    assert spec.problems(mapped) == []  # the user's mapping makes it scorable


def test_a_run_with_an_unmappable_extra_test_stops_before_training(tmp_path, monkeypatch, capsys):
    r = app_inproc(monkeypatch, capsys, tmp_path, *QUICK, f"data.root={DATA}", "evaluation.extra_tests=[biored_chem]",
                   f"tracking.uri=sqlite:///{tmp_path}/mlflow.db")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1].startswith("error: evaluation.extra_tests: biored_chem: its type(s) Chemical")
    assert not (tmp_path / "mlflow.db").exists()


def test_a_sweep_checks_every_job_and_submits_none(tmp_path, monkeypatch, capsys):
    """The disease test set is fine for the NCBI job and not for the chemical one: nothing runs."""
    r = app_inproc(monkeypatch, capsys, tmp_path, "-m", *QUICK, f"data.root={DATA}", "dataset=ncbi_disease,bc5cdr_chem",
                   "evaluation.extra_tests=[bc5cdr_disease]", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db")
    assert r.returncode == 2
    last = r.stderr.strip().splitlines()[-1]
    assert "evaluation.extra_tests: bc5cdr_disease: its type(s) Disease map to none of the model's (Chemical" in last
    assert not (tmp_path / "mlflow.db").exists() or runs(tmp_path).empty


def test_a_typed_bio_file_with_an_undeclared_type_stops_at_its_line(tmp_path):
    """The configs declare a BIO corpus's type; a file typed otherwise is caught where it is read."""
    bad = tmp_path / "test.tsv"
    bad.write_text("Aspirin\tB-Chemical\nhelps\tO\n\nfever\tB-Disease\n")
    ds = cross.dataset_config("bc5cdr_disease", compose([f"data.root={DATA}"]))
    with pytest.raises(Exception, match=rf"^{bad}:1: type 'Chemical' of evaluation.extra_tests x maps to no type"):
        _mapped_types(read_conll(bad, "Disease"), {"Disease": "Disease"}, "x", ds)


# ---------------------------------------------------------------------------------------------
# The extra test sets join the overlap check


def test_extra_test_sentences_pasted_into_training_are_dropped_as_the_own_test_is(tmp_path):
    """NCBI-disease's training file holds 8 sentences of BC5CDR-disease's test (found on the real
    files); a copy with 50 more pasted in trains, under drop, exactly as the published file does."""
    pasted = "\n\n".join("\n".join(f"{t}\t{g}" for t, g in zip(s.tokens, s.tags))
                         for s in read_conll(BC5CDR / "test.tsv", "Disease").sentences[:50])
    dirty = tmp_path / "train.tsv"
    dirty.write_text((NCBI / "train.tsv").read_text().rstrip("\n") + "\n\n" + pasted + "\n")

    def load(train, policy):
        cfg = compose([f"data.root={DATA}", "dataset=conll_files", f"dataset.train={train}", f"dataset.dev={NCBI}/devel.tsv",
                       f"dataset.test={NCBI}/test.tsv", "dataset.entity_type=Disease",
                       "evaluation.extra_tests=[bc5cdr_disease]", f"data.cache={tmp_path}/cache"])
        extra = load_extra_tests(cross.plan(cfg), cfg.dataset.format, cfg.data.cache)
        return load_corpus(cfg.dataset, cache_dir=cfg.data.cache, overlap=policy, extra=[e.evaluation for e in extra])

    clean, copy = load(NCBI / "train.tsv", "drop"), load(dirty, "drop")
    assert [s.tokens for s in clean.splits["train"].sentences] == [s.tokens for s in copy.splits["train"].sentences]
    tags = copy.overlap.tags()
    assert clean.overlap.tags()["overlap.cross.bc5cdr_disease.train_test"] == "8"
    assert tags["overlap.cross.bc5cdr_disease.train_test"] == "58"
    n_test = len(read_conll(BC5CDR / "test.tsv").sentences)
    assert tags["overlap.cross.bc5cdr_disease.test_in_train"].endswith(f" of {n_test}")
    warned = load(dirty, "warn")
    assert len(warned.splits["train"].sentences) > len(copy.splits["train"].sentences)


# ---------------------------------------------------------------------------------------------
# A run scores them: cross/<dataset>/* metrics


def test_a_run_logs_cross_metrics_that_rescore_from_its_predictions(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_inproc(tmp_path, DATA, *QUICK, "evaluation.extra_tests=[bc5cdr_disease,biored_disease]",
                        "data.max_train_sentences=48", "train.max_steps=4", f"data.cache={tmp_path}/cache")
    row = runs(tmp_path).iloc[0]
    for name in ("bc5cdr_disease", "biored_disease"):
        path = tmp_path / "run" / f"predictions_cross_{name}.conll"
        rows = [line.split("\t") for line in path.read_text().split("\n\n") for line in line.splitlines()]
        sents = [[line.split("\t") for line in block.splitlines()] for block in path.read_text().split("\n\n") if block]
        assert len(sents) == 40  # data.max_eval_sentences of debug=quick caps them as the own test
        assert {r[1][2:] for r in rows if r[1] != "O"} <= {"Disease"} and {r[2][2:] for r in rows if r[2] != "O"} <= {"Disease"}
        strict = scoring.score([[r[1] for r in s] for s in sents], [[r[2] for r in s] for s in sents])["strict"]
        assert result["metrics"][f"cross/{name}/strict_f1"] == pytest.approx(strict["f1"])
        assert row[f"metrics.cross/{name}/strict_f1"] == pytest.approx(strict["f1"])
        assert f"metrics.cross/{name}/default_f1" in row and f"metrics.cross/{name}/fair_f1" in row
        assert row[f"tags.overlap.cross.{name}.test_in_train"].split(" of ")[0].isdigit()
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    logged = set(client.get_run(row["run_id"]).data.metrics)
    assert {"cross/bc5cdr_disease/strict_f1", "cross/biored_disease/strict_Disease_f1", "test/strict_f1"} <= logged
    assert row["params.evaluation.extra_tests"] == "['bc5cdr_disease', 'biored_disease']"
    assert json.loads((tmp_path / "run" / "result.json").read_text())["metrics"]["cross/biored_disease/strict_f1"] >= 0


# ---------------------------------------------------------------------------------------------
# Learning curves: nested subsamples, part of the run key only when set


def test_subsamples_are_nested_for_one_seed_and_differ_between_seeds():
    items = list(range(500))
    sizes = [nested_subsample(items, 7, f) for f in (0.1, 0.25, 0.5, 1.0)]
    assert [len(s) for s in sizes] == [50, 125, 250, 500]
    assert all(set(a) < set(b) for a, b in zip(sizes, sizes[1:]))
    assert sizes[0] == sorted(sizes[0])  # file order kept
    assert nested_subsample(items, 8, 0.1) != sizes[0]
    assert set(nested_subsample(items, 7, count=30)) < set(sizes[0]) and len(nested_subsample(items, 7, count=30)) == 30
    with pytest.raises(Exception, match="data.train_documents=600 but the training split has 500 documents"):
        nested_subsample(items, 7, count=600)


@pytest.mark.parametrize("dataset, unit", [("ncbi_disease", "sentences"), ("biored_disease", "documents")])
def test_on_a_real_corpus_the_subsample_is_nested_and_dev_and_test_stay(tmp_path, dataset, unit):
    cfg = compose([f"data.root={DATA}", f"dataset={dataset}", f"data.cache={tmp_path}/cache"])
    taken: dict[float, int] = {}

    def load(fraction):
        take = subsample_of(fraction, None, 3)
        counted = (lambda items: taken.setdefault(fraction, len(items)) and take(items)) if take else None
        return load_corpus(cfg.dataset, cache_dir=cfg.data.cache, take=counted)

    full, *parts = load(None), load(0.1), load(0.5)
    train = [[tuple(s.tokens) for s in c.splits["train"].sentences] for c in (*parts, full)]
    assert all(set(a) <= set(b) and len(a) < len(b) for a, b in zip(train, train[1:]))
    for split in ("dev", "test"):  # selection and scoring are the same at every size
        assert all(p.splits[split].sentences == full.splits[split].sentences for p in parts)
    assert len(set(taken.values())) == 1  # the same units were offered at every size: after overlap and dev
    if unit == "documents":
        assert taken[0.1] == 400  # BioRED TrainDev's 500 abstracts less the last 100 (dev)


def test_the_run_key_holds_the_training_size_only_when_it_is_set():
    base = [f"data.root={DATA}"]
    plain = compose(base)
    assert "train_fraction" not in identity.identity(plain)["data"] and "extra_tests" not in identity.identity(plain)
    params = tracking.run_params(plain)
    assert not {"data.train_fraction", "data.train_documents", "evaluation.extra_tests", "evaluation.type_map"} & set(params)
    keys = {identity.run_key(compose(base + [o])) for o in ("data.train_fraction=0.1", "data.train_fraction=0.5",
                                                            "data.train_documents=50")}
    assert len(keys) == 3 and identity.run_key(plain) not in keys
    assert identity.run_key(compose(base + ["data.train_fraction=0.5", "train.seed=2"])) != \
        identity.run_key(compose(base + ["data.train_fraction=0.5"]))
    assert identity.cell_key(compose(base + ["data.train_fraction=0.5", "train.seed=2"])) == \
        identity.cell_key(compose(base + ["data.train_fraction=0.5"]))  # seeds of one size share a cell
    assert tracking.run_params(compose(base + ["data.train_fraction=0.5"]))["data.train_fraction"] == "0.5"
    assert identity.run_key(compose(base + ["evaluation.extra_tests=[bc5cdr_disease]"])) != identity.run_key(plain)
    assert identity.run_key(compose(base + ["evaluation.extra_tests=[ncbi_disease]"])) == identity.run_key(plain)  # own test


@pytest.mark.parametrize("override, message", [
    ("data.train_fraction=0", "data.train_fraction=0.0: must be a fraction in (0, 1]"),
    ("data.train_fraction=1.5", "data.train_fraction=1.5: must be a fraction in (0, 1]"),
    ("data.train_documents=0", "data.train_documents=0: must be a positive integer or null"),
])
def test_a_bad_training_size_is_refused(override, message):
    assert spec.problems(compose([f"data.root={DATA}", override])) == [message]
    both = compose([f"data.root={DATA}", "data.train_fraction=0.5", "data.train_documents=5"])
    assert spec.problems(both) == ["data.train_fraction and data.train_documents: set one of them, not both"]


# ---------------------------------------------------------------------------------------------
# The report: the train -> test matrix and the learning curve from a small real store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Two disease corpora tested on each other, and a curve of two sizes (two seeds at the first):
    5 tiny runs, about 20 s each on this shared 2-core machine (so the tests on it are ``slow``)."""
    tmp = tmp_path_factory.mktemp("store")
    small = [*QUICK, "data.max_train_sentences=32", "data.max_eval_sentences=16", "train.max_steps=2",
             f"data.cache={tmp}/cache"]
    run_inproc(tmp, DATA, *small, "evaluation.extra_tests=[bc5cdr_disease,biored_disease]", out=tmp / "a")
    run_inproc(tmp, DATA, *small, "dataset=bc5cdr_disease", "evaluation.extra_tests=[ncbi_disease]", out=tmp / "b")
    for i, (fraction, seed) in enumerate([(0.02, 1), (0.02, 2), (0.05, 1)]):
        run_inproc(tmp, DATA, *small, "scheme=vanilla", f"data.train_fraction={fraction}", f"train.seed={seed}",
                   "data.max_train_sentences=null", out=tmp / f"c{i}")
    return tmp


@pytest.mark.slow
def test_the_report_shows_the_cross_matrix_and_the_learning_curve(store):
    from bioner_grid import report

    df = report.load_runs(f"sqlite:///{store}/mlflow.db", ["bioner-grid"])
    tables, _ = report.build(df)
    cross_table = next(t for t in tables if t.title.startswith("Cross-corpus strict F1 (%), Disease: TinyBERT, WeLT"))
    assert cross_table.header == ["trained on → tested on", "BC5CDR-disease", "NCBI-disease", "BioRED-disease"]
    cells = {r[0].text: [c.text for c in r[1:]] for r in cross_table.rows}
    a = df[df["dataset"] == "ncbi_disease"].dropna(subset=["cross/bc5cdr_disease/strict_f1"]).iloc[0]
    b = df[df["dataset"] == "bc5cdr_disease"].iloc[0]
    assert cells["NCBI-disease"][0].rstrip("*†") == f"{100 * a['cross/bc5cdr_disease/strict_f1']:.2f}"
    assert cells["BC5CDR-disease"][0].rstrip("*†") == f"{100 * b['test_strict_f1']:.2f}"  # the diagonal: its own test
    assert cells["BC5CDR-disease"][2] == "—"  # not tested there
    # NCBI-disease's training file shares 8 sentences with BC5CDR-disease's test (warn: trained on): marked
    assert a["overlap.cross.bc5cdr_disease.test_in_train"] != "0 of 0" and cells["NCBI-disease"][0].endswith("*")
    curve = next(t for t in tables if t.title.startswith("Learning curve on NCBI-disease"))
    sizes = [(r[1].text, int(r[2].text)) for r in curve.rows]
    assert [s for s, _ in sizes] == ["fraction 0.02", "fraction 0.05"] and sizes[0][1] < sizes[1][1]
    runs_c = df[df["data.train_fraction"] == "0.02"]
    f1 = 100 * runs_c["test_strict_f1"]
    assert curve.rows[0][3].text == f"{f1.mean():.2f} ± {f1.std():.2f} (n=2)"
    assert curve.rows[1][3].text == f"{100 * df.loc[df['data.train_fraction'] == '0.05', 'test_strict_f1'].iloc[0]:.2f}"


@pytest.mark.slow
def test_the_report_writes_the_heatmap_and_the_curve(store, tmp_path):
    from bioner_grid import report

    df = report.load_runs(f"sqlite:///{store}/mlflow.db", ["bioner-grid"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        page = report.write(df, tmp_path / "report", cache=store / "artifacts_cache")
    # every figure fits its labels (a tight_layout that gives up leaves them cut at the frame)
    assert not [w for w in caught if "layout not applied" in str(w.message)], [str(w.message) for w in caught]
    pngs = sorted(p.name for p in (tmp_path / "report").glob("*.png"))
    assert "cross_Disease_tiny_bert_welt.png" in pngs and "curve_ncbi_disease.png" in pngs
    text = page.read_text()
    assert "Cross-corpus strict F1" in text and "Learning curve on NCBI-disease" in text
    assert pd.read_csv(tmp_path / "report" / "runs.csv")["dataset"].nunique() == 2
    # the figures' text (kept as text in the SVG): display names, and n in each heatmap cell
    heatmap = (tmp_path / "report" / "cross_Disease_tiny_bert_welt.svg").read_text()
    assert all(name in heatmap for name in ("NCBI-disease", "BC5CDR-disease", "TinyBERT", "WeLT"))
    assert "ncbi_disease" not in heatmap and heatmap.count("n=1") == 5  # five cells scored (3 + 2), one seed each
    curve = (tmp_path / "report" / "curve_ncbi_disease.svg").read_text()
    assert "Learning curve: NCBI-disease" in curve and "TinyBERT, Vanilla (n=1–2)" in curve
