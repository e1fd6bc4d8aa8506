"""Reports from MLflow: runs logged through the real MLflow API with known metrics."""

import json
import os
import shutil
import statistics

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from scipy import stats

from bioner_grid import report, runtable
from conftest import ROOT
from conftest import app_inproc, runs

ORDER = ["INS", "ISNS", "ENS(0.3)", "ENS(0.5)", "ENS(0.9)", "Vanilla", "WeLT"]


def log_run(client, experiment, status="FINISHED", **values):
    tags = {k: str(values.pop(k)) for k in ("model", "dataset", "scheme", "lr", "batch_size", "seed") if k in values}
    run = client.create_run(experiment, tags=tags)
    for k, v in values.items():
        client.log_metric(run.info.run_id, k, v)
    client.set_terminated(run.info.run_id, status)


@pytest.fixture()
def store(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    experiment = client.create_experiment("grid", artifact_location=(tmp_path / "art").as_uri())
    return uri, client, experiment


def f1_run(client, experiment, model, dataset, scheme, f1, seed=1, status="FINISHED", p=None, r=None):
    log_run(client, experiment, status, model=model, dataset=dataset, scheme=scheme, lr=5e-5, batch_size=32, seed=seed,
            test_strict_f1=f1, test_strict_precision=p if p is not None else f1, test_strict_recall=r if r is not None else f1)


def test_welt_table_marks_the_best_f_with_printed_ties_and_missing(store):
    """Without predictions to bootstrap, only the best (and what equals it as printed) is marked, on
    the F row (the choice is made on F1); display names from the packaged configs."""
    uri, client, exp = store
    for scheme, f1 in {"ins": 0.80, "isns": 0.82, "ens_0.3": 0.82, "ens_0.5": 0.81, "ens_0.9": 0.79, "vanilla": 0.81}.items():
        f1_run(client, exp, "biobert", "ncbi_disease", scheme, f1)
    f1_run(client, exp, "biobert", "ncbi_disease", "welt", 0.90, status="FAILED")  # counted, left out
    f1_run(client, exp, "scibert", "ncbi_disease", "welt", 0.70)
    df = report.load_runs(uri, ["grid"])
    t = report.welt_table(df, "ncbi_disease")
    assert t.header == ["Model", ""] + ORDER
    f_row = next(r for r in t.rows if r[0].text == "BioBERT" and r[1].text == "F")
    assert [c.text for c in f_row[2:]] == ["80.00", "82.00", "82.00", "81.00", "79.00", "81.00", "—"]
    assert [c.mark for c in f_row[2:]] == [None, "best", "best", None, None, None, None]
    assert not any(c.mark for r in t.rows if r[1].text != "F" for c in r)  # P and R are shown, not ranked
    tables, notes = report.build(df)
    assert notes[0] == "8 runs read: 7 finished, 1 not finished (1 FAILED), left out."
    assert "BioBERT/NCBI-disease/WeLT" in notes[1] and "SciBERT/NCBI-disease/INS" in notes[1]
    assert any("could not be tested for a tie" in n for n in notes)
    md = report.to_markdown(t)
    assert "| BioBERT | F | 80.00 | **82.00** | **82.00** | 81.00 | 79.00 | 81.00 | — |" in md
    tex = report.to_latex(t)
    assert r"\textbf{82.00}" in tex and r"\toprule" in tex


def test_overview_table_has_a_row_per_corpus_and_the_seed_spread(store):
    uri, client, exp = store
    for seed, (v, w) in enumerate([(0.80, 0.78), (0.82, 0.79), (0.84, 0.80)], start=1):
        f1_run(client, exp, "minilm", "ncbi_disease", "vanilla", v, seed=seed)
        f1_run(client, exp, "minilm", "ncbi_disease", "welt", w, seed=seed)
    f1_run(client, exp, "minilm", "bc5cdr_chem", "welt", 0.9)
    t = report.overview_table(report.load_runs(uri, ["grid"]))
    assert t.header == ["Dataset", "Model", "Vanilla", "WeLT"]  # no dev logged: no dev rows
    assert [[c.text for c in r] for r in t.rows] == [["BC5CDR-chem", "MiniLM", "—", "90.00"],
                                                    ["NCBI-disease", "MiniLM", "82.00 ± 2.00 (n=3)", "79.00 ± 1.00 (n=3)"]]
    assert [c.mark for c in t.rows[1][2:]] == ["best", None]


def test_seeds_give_mean_and_std(store):
    uri, client, exp = store
    for seed, f1 in enumerate([0.80, 0.82, 0.84], start=1):
        f1_run(client, exp, "biobert", "bc2gm", "welt", f1, seed=seed)
    f1_run(client, exp, "biobert", "bc2gm", "vanilla", 0.5)
    t = report.welt_table(report.load_runs(uri, ["grid"]), "bc2gm")
    f_row = next(r for r in t.rows if r[1].text == "F")
    assert f_row[t.header.index("WeLT")].text == f"82.00 ± {statistics.stdev([80.0, 82.0, 84.0]):.2f} (n=3)" == "82.00 ± 2.00 (n=3)"
    assert f_row[t.header.index("WeLT")].mark == "best"


def test_wilcoxon_against_scipy_directly(store):
    uri, client, exp = store
    rng = np.random.default_rng(0)
    vanilla, welt = [], []
    for model in ("biobert", "scibert"):
        for dataset in ("ncbi_disease", "bc2gm", "linnaeus"):
            for seed in (1, 2):
                v = float(rng.uniform(0.7, 0.9))
                w = v + float(rng.normal(0.004, 0.006))
                f1_run(client, exp, model, dataset, "vanilla", v, seed=seed)
                f1_run(client, exp, model, dataset, "welt", w, seed=seed)
                vanilla.append(100 * v)
                welt.append(100 * w)
    t = report.wilcoxon_table(report.load_runs(uri, ["grid"]))
    (row,) = [r for r in t.rows if r[0].text == "WeLT"]
    d = np.array(welt) - np.array(vanilla)
    assert row[1].text == "12"
    assert row[2].text == f"{np.median(d):+.2f}"
    assert (row[3].text, row[4].text) == (str((d > 0).sum()), str((d < 0).sum()))
    assert row[6].text == f"{stats.wilcoxon(welt, vanilla).pvalue:.4f}"


def test_wins_table_counts_cells(store):
    uri, client, exp = store
    for dataset, values in {"ncbi_disease": {"vanilla": 0.8, "welt": 0.9, "ins": 0.85},
                            "bc2gm": {"vanilla": 0.9, "welt": 0.9, "ins": 0.7}}.items():
        for scheme, f1 in values.items():
            f1_run(client, exp, "biobert", dataset, scheme, f1)
    t = report.wins_table(report.load_runs(uri, ["grid"]))
    assert {r[0].text: (r[1].text, r[2].text) for r in t.rows} == {"INS": ("0", "0"), "Vanilla": ("1", "0"), "WeLT": ("2", "0")}


def test_published_versus_ours(store):
    uri, client, exp = store
    # the paper: linnaeus, BioBERT, INS -> P 92.52, R 78.57, F1 84.98
    f1_run(client, exp, "biobert", "linnaeus", "ins", 0.8600, p=0.9, r=0.82)
    f1_run(client, exp, "tiny_bert", "linnaeus", "ins", 0.5)  # not in the paper: not compared
    t = report.paper_comparison(report.load_runs(uri, ["grid"]))
    assert len(t.rows) == 1
    assert [c.text for c in t.rows[0]] == ["LINNAEUS", "BioBERT", "INS", "90.00", "82.00", "86.00", "92.52", "78.57", "84.98", "+1.02"]


def test_report_cli_on_a_real_tiny_grid_in_a_browser(tmp_path, data_root, monkeypatch, capsys):
    from bioner_grid import cli as commands

    # the sweep and the report in this process (the real entry points: tests/test_cli.py)
    r = app_inproc(monkeypatch, capsys, tmp_path, "-m", f"data.root={data_root}", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
                   f"tracking.artifact_location={tmp_path}/artifacts", "experiment=smoke_grid", "scheme=vanilla,welt",
                   "train.seed=1,2", f"hydra.sweep.dir={tmp_path}/sweep")
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(runs(tmp_path)) == 8
    out = tmp_path / "report"
    monkeypatch.chdir(ROOT)
    code = commands.run("report", [f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", f"tracking.artifact_location={tmp_path}/artifacts",
                                   "report.experiment=bioner-grid", f"report.out={out}"])
    assert code == 0, capsys.readouterr().err[-3000:]
    assert {"report.html", "report.md", "table01.tex", "table01.csv", "schemes_ncbi_disease.png"} <= {p.name for p in out.iterdir()}
    md = (out / "report.md").read_text()
    assert "±" in md  # two seeds per configuration
    assert "| BC5CDR-chem | " in md and "Sentences per split" in md
    assert mlflow.search_runs(experiment_names=["bioner-grid"], filter_string="tags.kind = 'report'").empty
    report_runs = mlflow.search_runs(experiment_names=["bioner-grid-reports"], filter_string="tags.kind = 'report'", output_format="list")
    assert len(report_runs) == 1
    assert "report.html" in {a.path for a in MlflowClient().list_artifacts(report_runs[0].info.run_id)}
    assert report_runs[0].info.artifact_uri.startswith((tmp_path / "artifacts").as_uri())

    driver = browser()
    try:
        driver.get((out / "report.html").as_uri())
        driver.set_window_size(1300, 2400)
        shot = tmp_path / "report.png"
        assert driver.save_screenshot(str(shot))
        from selenium.webdriver.common.by import By

        bold = driver.find_elements(By.CSS_SELECTOR, "td.best strong")
        assert bold and all(b.value_of_css_property("font-weight") in ("700", "bold") for b in bold)
        assert any(b.text.strip() and b.text.strip()[0].isdigit() for b in bold)
        body = driver.find_element(By.TAG_NAME, "body").text
        assert "Schemes versus Vanilla" in body and "Sentences per split" in body
        images = driver.find_elements(By.TAG_NAME, "img")
        assert images and all(driver.execute_script("return arguments[0].naturalWidth", i) > 100 for i in images)
        print(f"report screenshot: {shot}")
    finally:
        driver.quit()


def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver):
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail("REQUIRE_BROWSER=1 but chromium/chromedriver are not installed")
        pytest.skip("chromium and chromedriver not installed (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver), options=options)


def test_foundation_views_choose_the_lr_on_dev_and_show_test(store, tmp_path):
    uri, client, exp = store
    # dev peaks at lr 1e-4 for bert and at 1e-5 for gpt2; batch size 16 is better than 8. On test, bert
    # with batch 8 peaks at 1e-3 instead: a test-chosen table would show 85.00 there.
    for model, best in (("bert", 1e-4), ("gpt2", 1e-5)):
        for lr in (1e-5, 1e-4, 1e-3):
            for bs in (8, 16):
                dev = 0.8 - (0.1 if lr != best else 0.0) + (0.02 if bs == 16 else 0.0)
                test = 0.85 if (model, bs, lr) == ("bert", 8, 1e-3) else dev
                log_run(client, exp, model=model, dataset="ncbi_disease", scheme="vanilla", lr=lr, batch_size=bs, seed=1,
                        dev_strict_f1=dev, test_strict_f1=test, test_strict_precision=test, test_strict_recall=test,
                        train_seconds=100.0 if model == "bert" else 300.0, peak_rss_mb=1000.0 if model == "bert" else 2000.0)
    df = report.load_runs(uri, ["grid"])
    t = report.foundation_table(df)
    assert t.header == ["Model", "batch 8", "batch 16"]
    assert {r[0].text: [c.text for c in r[1:]] for r in t.rows} == {"BERT": ["80.00 (lr 0.0001, n=1)", "82.00 (lr 0.0001, n=1)"],
                                                                    "GPT-2": ["80.00 (lr 1e-05, n=1)", "82.00 (lr 1e-05, n=1)"]}
    assert "chosen on dev" in t.title and "Choosing on test would have picked: BERT batch 8: lr 0.001 (85.00) instead of 0.0001 (80.00)." in t.note
    best = runtable.best_lr(df)
    assert set(best["chosen_on"]) == {"dev"} and best.loc[(best["model"] == "bert") & (best["batch_size"] == 8), "split_lr"].item() == 1e-3
    out = tmp_path / "report"
    report.write(df, out)
    assert {p.name for p in out.glob("*.png")} == {"lr_bert.png", "lr_gpt2.png", "memory_vs_time.png"}
    assert "per model and batch size at the learning rate chosen on dev" in (out / "report.md").read_text()


def test_cells_are_configurations_seeds_averaged_only_within_one(store, caplog):
    """CRF and softmax runs of one (model, dataset, scheme), two epoch settings and a user's own
    scheme in one store: every configuration keeps its own row, with its number of seeds."""
    uri, client, exp = store

    def logged(scheme, f1, seed, head="softmax", epochs=5, label=None):
        tags = {"model": "minilm", "dataset": "ncbi_disease", "scheme": scheme, "lr": "0.0001", "batch_size": "32",
                "seed": str(seed), "cell_key": f"{head}-{epochs}-{scheme}"}
        run = client.create_run(exp, tags=tags)
        params = {"model.head": head, "train.epochs": str(epochs), "train.seed": str(seed), "scheme.name": scheme,
                  "scheme.kind": scheme,  # differs between schemes by definition: no variant of the model
                  "tracking.uri": f"sqlite:///store{seed}.db", "train.eval_batch_size": str(8 * seed)}  # the last two define nothing
        for k, v in {**params, **({"scheme.label": label} if label else {})}.items():
            client.log_param(run.info.run_id, k, v)
        for m in ("f1", "precision", "recall"):
            client.log_metric(run.info.run_id, f"test_strict_{m}", f1)
        client.set_terminated(run.info.run_id, "FINISHED")

    for seed, f1 in ((1, 0.80), (2, 0.82), (3, 0.84)):
        logged("vanilla", f1, seed)
        logged("welt", f1 + 0.01, seed)
    logged("vanilla", 0.90, 1, head="crf")
    logged("vanilla", 0.92, 2, head="crf")
    logged("vanilla", 0.70, 1, epochs=3)
    logged("focal", 0.75, 1, label="Focal (γ=2)")
    df = report.load_runs(uri, ["grid"])
    t = report.welt_table(df, "ncbi_disease")
    assert t.header == ["Model", "", "Vanilla", "WeLT", "Focal (γ=2)"]  # known schemes in the paper's order, then the new one
    f_rows = {r[0].text: [c.text for c in r[2:]] for r in t.rows if r[1].text == "F"}
    assert f_rows == {
        "MiniLM (head=crf, epochs=5)": ["91.00 ± 1.41 (n=2)", "—", "—"],
        "MiniLM (head=softmax, epochs=3)": ["70.00", "—", "—"],
        "MiniLM (head=softmax, epochs=5)": ["82.00 ± 2.00 (n=3)", "83.00 ± 2.00 (n=3)", "75.00"],
    }
    assert set(df["cell_key"]) == {"softmax-5-vanilla", "softmax-5-welt", "crf-5-vanilla", "softmax-3-vanilla", "softmax-5-focal"}
    assert "cell_key" not in caplog.text
    tables, _ = report.build(df)  # every table and figure of the report renders from the mixed store
    assert any(t.title.startswith("Wins") and [r[0].text for r in t.rows] == ["Vanilla", "WeLT", "Focal (γ=2)"] for t in tables)


def test_runs_recorded_before_cell_keys_fall_back_with_a_warning(store, caplog):
    uri, client, exp = store
    for seed in (1, 2):
        f1_run(client, exp, "biobert", "ncbi_disease", "vanilla", 0.8 + seed / 100, seed=seed)
    df = report.load_runs(uri, ["grid"])
    assert "2 run(s) carry no cell_key tag" in caplog.text
    assert report.welt_table(df, "ncbi_disease").rows[2][2].text == "81.50 ± 0.71 (n=2)"


def test_without_dev_scores_the_caption_says_test_chose(store):
    uri, client, exp = store
    for lr, f1 in ((1e-5, 0.7), (1e-4, 0.8)):
        log_run(client, exp, model="bert", dataset="ncbi_disease", scheme="vanilla", lr=lr, batch_size=8, seed=1, test_strict_f1=f1)
    t = report.foundation_table(report.load_runs(uri, ["grid"]))
    assert "chosen on test" in t.title and "flatters" in t.note


def test_dev_chooses_the_marked_and_best_scheme(store):
    uri, client, exp = store
    for scheme, dev, test in (("vanilla", 0.80, 0.85), ("welt", 0.82, 0.81), ("ins", 0.79, 0.83)):
        log_run(client, exp, model="biobert", dataset="ncbi_disease", scheme=scheme, lr=5e-5, batch_size=32, seed=1,
                dev_strict_f1=dev, test_strict_f1=test, test_strict_precision=test, test_strict_recall=test,
                dev_strict_precision=dev, dev_strict_recall=dev)
    df = report.load_runs(uri, ["grid"])
    t = report.welt_table(df, "ncbi_disease")
    f_row = next(r for r in t.rows if r[1].text == "F")
    assert f_row[t.header.index("WeLT")].mark == "best" and f_row[t.header.index("WeLT")].text == "81.00"
    assert "bold: best on dev F1" in t.note and "n = 1 seed(s) per cell" in t.note
    dev_row = next(r for r in t.rows if r[1].text == "F (dev)")  # the values the choice was made on
    assert dev_row[t.header.index("WeLT")].text == "82.00" and dev_row[t.header.index("Vanilla")].text == "80.00"
    (row,) = report.best_scheme_table(df).rows
    assert [c.text for c in row] == ["NCBI-disease", "BioBERT", "WeLT", "82.00", "81.00", "1", "85.00", "-4.00", "Vanilla"]
    assert "| 81.00 | 1 | 85.00 | \u22124.00 | Vanilla |" in report.to_markdown(report.best_scheme_table(df))
    wins = {r[0].text: r[1].text for r in report.wins_table(df).rows}
    assert wins["WeLT"] == "1" and wins["Vanilla"] == "0"


def test_wilcoxon_says_what_few_pairs_can_reach(store):
    uri, client, exp = store
    for seed in range(1, 5):
        f1_run(client, exp, "biobert", "ncbi_disease", "vanilla", 0.80, seed=seed)
        f1_run(client, exp, "biobert", "ncbi_disease", "welt", 0.81, seed=seed)
    t = report.wilcoxon_table(report.load_runs(uri, ["grid"]))
    (row,) = t.rows
    assert t.header[2] == "median ΔF1 (points)" and row[6].text == "0.1250" and row[7].text == "0.125"
    assert report.min_wilcoxon_p(4) == 0.125 and "with 4 pair(s) here no p can reach 0.05" in t.note


def test_bootstrap_and_error_profile_tables_from_logged_artifacts(store, tmp_path):
    from bioner_grid.data import read_conll
    from bioner_grid.scoring import mismatch_examples, score
    from conftest import NCBI
    from test_significance import drop_entities, write

    uri, client, exp = store
    sents = read_conll(NCBI / "test.tsv", "Disease").sentences
    tokens, gold = [s.tokens for s in sents], [s.tags for s in sents]
    systems = {"vanilla": drop_entities(gold, 0.30, 1), "welt": drop_entities(gold, 0.10, 2), "ins": drop_entities(gold, 0.30, 1)}
    for scheme, pred in systems.items():
        s = score(gold, pred)["strict"]
        run = client.create_run(exp, tags={"model": "biobert", "dataset": "ncbi_disease", "scheme": scheme, "lr": "5e-05",
                                           "batch_size": "32", "seed": "1"})
        rid = run.info.run_id
        for k in ("precision", "recall", "f1"):
            client.log_metric(rid, f"test_strict_{k}", s[k])
        client.log_metric(rid, "test_fair_LE", 0)
        client.log_metric(rid, "test_fair_BE", {"vanilla": 4, "welt": 1, "ins": 4}[scheme])
        client.log_artifact(rid, str(write(tmp_path / "predictions_test.conll", tokens, gold, pred)))
        (tmp_path / "error_analysis_test.json").write_text(json.dumps(mismatch_examples(tokens, gold, pred, 2)))
        client.log_artifact(rid, str(tmp_path / "error_analysis_test.json"))
        client.set_terminated(rid, "FINISHED")
    df = report.load_runs(uri, ["grid"])
    files = report.RunFiles(tmp_path / "cache", uri)  # the store is explicit (load_runs leaves it in df.attrs)
    boot = report.bootstrap_vs_vanilla(df, files)
    t = report.significance_table(boot, "ncbi_disease")
    rows = {r[1].text: [c.text for c in r] for r in t.rows}
    assert rows["INS"][5:] == ["+0.00", "[+0.00, +0.00]", "1.0000", "within noise"]  # the same predictions as Vanilla
    welt = boot[boot["scheme"] == "welt"].iloc[0]
    assert welt["delta"] > 5 and welt["low"] > 0 and rows["WeLT"][8] == "better"
    assert welt["delta"] == pytest.approx(100 * (score(gold, systems["welt"])["strict"]["f1"] - score(gold, systems["vanilla"])["strict"]["f1"]))
    assert "ΔF1 (points)" in t.header and "940 test sentences" in t.note
    assert sorted(p.name for p in (tmp_path / "cache").rglob("*.npz")) == ["predictions_test.npz"] * 3  # counts kept, text dropped

    profile = report.error_profile(df, files)
    t = report.error_profile_table(profile, "ncbi_disease")
    rows = {r[1].text: [c.text for c in r] for r in t.rows}
    missed = {k: mismatch_examples(tokens, gold, v, 0)["type2"]["count"] for k, v in systems.items()}
    assert rows["Vanilla"][t.header.index("Type-2 (missed)")] == str(missed["vanilla"])
    assert rows["WeLT"][t.header.index("Type-2 (missed)")] == f"{missed['welt']} ({missed['welt'] - missed['vanilla']:+d})"
    assert rows["WeLT"][t.header.index("BE")] == "1 (-3)" and rows["Vanilla"][t.header.index("LE")] == "0"

    out = tmp_path / "report"
    report.write(df, out, cache=tmp_path / "cache")
    md = (out / "report.md").read_text()
    assert "paired bootstrap 95% intervals" in md and "error profile per model and scheme" in md
    # a second build reads the cached counts: the store's artifacts are not needed any more
    shutil.rmtree(tmp_path / "art")
    report.write(df, tmp_path / "again", cache=tmp_path / "cache")
    assert (tmp_path / "again" / "report.md").read_text() == md


def test_delta_colour_scale_does_not_stretch_noise():
    from bioner_grid.report_figures import delta_limit

    assert delta_limit(np.array([[0.0, 0.002, -0.001]])) == 1.0  # sub-noise differences stay pale
    assert delta_limit(np.array([[0.0, 2.5, -0.4]])) == 2.5
    assert delta_limit(np.array([[0.0, 0.3]]), np.array([1.2, 1.6, 1.4])) == pytest.approx(1.4)


# --- Output folders written safely; non-finite scores never ranked (issue 20) ---


def two_scheme_grid(client, exp, model="bert", dataset="ncbi_disease", f1=(0.70, 0.75)):
    for scheme, value in zip(("vanilla", "welt"), f1):
        f1_run(client, exp, model, dataset, scheme, value)


def test_report_replaces_a_symlink_in_its_way_and_uploads_only_what_it_wrote(store, tmp_path):
    """A symlink named like an output (pointing at a file of the user's) is replaced, never followed;
    a stray file in report.out (a .env with a secret) is not uploaded with the report."""
    uri, client, exp = store
    two_scheme_grid(client, exp)
    out = tmp_path / "out"
    out.mkdir()
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me\n")
    for name in ("table01.csv", "report.html", "report.md", "runs.csv"):
        (out / name).symlink_to(victim)
    (out / ".env").write_text("TOKEN=hunter2\n")
    argv = [f"tracking.uri={uri}", "report.experiment=grid", f"report.out={out}", f"data.cache={tmp_path}/cache",
            f"tracking.artifact_location={tmp_path}/artifacts"]
    assert report.main(argv) == 0
    assert victim.read_text() == "keep me\n"
    assert not any(p.is_symlink() for p in out.iterdir()) and (out / "table01.csv").read_text().startswith("Dataset,Model,")
    reports = client.get_experiment_by_name("grid-reports")
    (run,) = client.search_runs([reports.experiment_id])
    uploaded = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert ".env" not in uploaded and {"table01.csv", "report.html", "report.md", "runs.csv"} <= uploaded
    assert uploaded == {p.name for p in out.iterdir() if p.name != ".env"}  # everything it wrote, nothing else
    assert not any(p.name.endswith(".part") for p in out.iterdir())


def test_formulas_in_csv_and_newlines_in_markdown_are_escaped(store, tmp_path):
    """A dataset named like a spreadsheet formula starts no CSV cell as a formula (OWASP: a leading
    apostrophe), and a model label with a newline starts no Markdown heading."""
    import csv

    uri, client, exp = store
    evil = '=HYPERLINK("http://evil.example/x","click")'
    two_scheme_grid(client, exp, model="bert\n# pwned", dataset=evil)
    out = tmp_path / "out"
    report.write(report.load_runs(uri, ["grid"]), out)
    cells = [c for p in out.glob("*.csv") for row in csv.reader(p.open(encoding="utf-8")) for c in row]
    assert "'" + evil in cells and evil not in cells
    formulas = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r") and not c.replace(".", "").lstrip("+-").isdigit()]
    assert formulas == []
    assert report.csv_cell("-0.42") == "-0.42" and report.csv_cell("+3.60") == "+3.60" and report.csv_cell("@x") == "'@x"
    assert "bert # pwned" in (out / "report.md").read_text(encoding="utf-8")  # the label kept, on one line
    for md in out.glob("*.md"):
        lines = md.read_text(encoding="utf-8").splitlines()
        assert not [line for line in lines if line.lstrip().startswith("# pwned")], md


def test_non_finite_scores_are_never_ranked_and_a_note_names_the_runs(store):
    """A run with an inf F1 is not crowned best, a NaN one is not silently dropped from a mean:
    both are left out of every table and ranking, and a note names them with their values."""
    uri, client, exp = store
    f1_run(client, exp, "bert", "ncbi_disease", "vanilla", 0.70)
    f1_run(client, exp, "bert", "ncbi_disease", "welt", float("inf"))
    f1_run(client, exp, "gpt2", "ncbi_disease", "vanilla", 0.60)
    f1_run(client, exp, "gpt2", "ncbi_disease", "welt", 0.65)
    f1_run(client, exp, "gpt2", "ncbi_disease", "welt", float("nan"), seed=2)
    df = report.load_runs(uri, ["grid"])
    ids = {(m, s, seed): r for m, s, seed, r in df[["model", "scheme", "seed", "run_id"]].itertuples(index=False)}
    tables, notes = report.build(df)
    note = next(n for n in notes if "non-finite" in n)
    assert f"{ids[('bert', 'welt', 1)]} (bert/ncbi_disease/welt seed 1: test_strict_f1=inf" in note
    assert f"{ids[('gpt2', 'welt', 2)]} (gpt2/ncbi_disease/welt seed 2: test_strict_f1=nan" in note
    t = report.welt_table(df, "ncbi_disease")
    rows = {(r[0].text, r[1].text): r for r in t.rows}
    bert = [(c.text, c.mark) for c in rows[("BERT", "F")][2:]]
    assert ("70.00", "best") in bert and ("—", None) in bert  # inf is no best: shown missing, the note says why
    gpt2 = [(c.text, c.mark) for c in rows[("GPT-2", "F")][2:]]
    assert ("65.00", "best") in gpt2  # the NaN seed is out (n=1), not averaged in
    for table in tables:
        for row in table.rows:
            assert not any("inf" in c.text.lower() or "nan" in c.text.lower() for c in row), (table.title, row)


def test_sweep_summary_ranks_no_non_finite_score_and_names_those_jobs(store):
    from bioner_grid import sweep
    from bioner_grid.store import RunStore, run_metrics

    uri, client, exp = store
    parent = client.create_run(exp, tags={"kind": "sweep"}).info.run_id
    ids = {}
    for name, f1 in (("good", 0.7), ("inf", float("inf")), ("nan", float("nan")), ("worse", 0.6)):
        run = client.create_run(exp, run_name=name, tags={"mlflow.parentRunId": parent})
        client.log_metric(run.info.run_id, "test/strict_f1", f1)
        client.set_terminated(run.info.run_id, "FINISHED")
        ids[name] = run.info.run_id
    s = RunStore(uri, "grid")
    rows = sweep.children(s, exp, parent)
    assert [r["run_name"] for r in rows][:2] == ["good", "worse"]  # ranked: finite scores only, best first
    table = sweep.summary_table(rows, "sweep-1")
    note = table.splitlines()[-1]
    assert note.startswith("  not ranked: 2 job(s) with a non-finite test strict F1: ")
    assert f"inf ({ids['inf']}, inf)" in note and f"nan ({ids['nan']}, nan)" in note
    assert "not ranked: 2 job(s)" in sweep.summary_markdown(rows, "sweep-1")
    sweep.close(s, parent, "sweep-1", {"jobs_launched": 4}, rows)
    assert run_metrics(client.get_run(parent))["best_test_strict_f1"] == 0.7  # not inf


# --- Marks that respect noise, statistics that agree, a table for every store, publication-ready output (issue 24) ---


def logged_predictions(client, exp, tmp_path, scheme, tokens, gold, pred, dev_f1, seed=1, model="minilm", params=None):
    """A finished run with the metrics of ``pred`` on ``gold``, its predictions as an artifact and a
    given dev F1 (the score the choice is made on)."""
    from bioner_grid.scoring import score
    from test_significance import write

    s = score(gold, pred)["strict"]
    run = client.create_run(exp, tags={"model": model, "dataset": "ncbi_disease", "scheme": scheme, "lr": "0.0002",
                                       "batch_size": "16", "seed": str(seed)})
    rid = run.info.run_id
    for k in ("precision", "recall", "f1"):
        client.log_metric(rid, f"test_strict_{k}", s[k])
        client.log_metric(rid, f"dev_strict_{k}", dev_f1)
    for k, v in (params or {}).items():
        client.log_param(rid, k, v)
    folder = tmp_path / "upload" / rid
    folder.mkdir(parents=True)
    client.log_artifact(rid, str(write(folder / "predictions_test.conll", tokens, gold, pred)))
    client.set_terminated(rid, "FINISHED")
    return rid


@pytest.fixture()
def real_store(store, tmp_path):
    """Three configurations on 250 real NCBI-disease test sentences: MiniLM's real predictions
    (vanilla, best on dev), the same with two sentences changed (ISNS: within noise of it), and
    with 60% of the entities dropped (INS: clearly worse); WeLT's real predictions too."""
    from test_significance import drop_entities, real_predictions

    uri, client, exp = store
    real = real_predictions(tmp_path)
    tokens, gold, vanilla = real["vanilla"]
    near = [list(s) for s in vanilla]
    changed = [i for i, s in enumerate(gold) if any(t != "O" for t in s)][:2]
    for i in changed:
        near[i] = list(gold[i])
    ids = {"vanilla": logged_predictions(client, exp, tmp_path, "vanilla", tokens, gold, vanilla, 0.80),
           "isns": logged_predictions(client, exp, tmp_path, "isns", tokens, gold, near, 0.79),
           "ins": logged_predictions(client, exp, tmp_path, "ins", tokens, gold, drop_entities(vanilla, 0.6, 3), 0.70),
           "welt": logged_predictions(client, exp, tmp_path, "welt", tokens, gold, real["welt"][2], 0.78)}
    return uri, ids


def test_ties_are_the_configurations_within_the_paired_bootstrap_noise_of_the_best(real_store, tmp_path):
    uri, ids = real_store
    df = report.load_runs(uri, ["grid"])
    files = report.RunFiles(tmp_path / "cache", uri)
    ranker = report.Ranker(files, "test", "strict", resamples=2000, seed=0)
    t = report.welt_table(df, "ncbi_disease", ranker=ranker)
    f_row = {h: c for h, c in zip(t.header, next(r for r in t.rows if r[1].text == "F"))}
    dev_row = {h: c.text for h, c in zip(t.header, next(r for r in t.rows if r[1].text == "F (dev)"))}
    assert f_row["Vanilla"].mark == "best" and dev_row["Vanilla"] == "80.00"  # chosen on dev, shown beside test
    assert f_row["ISNS"].mark == "tied" and f_row["INS"].mark is None
    ranking = report.ranking_table(df, "ncbi_disease", ranker=ranker)
    rows = {r[1].text: {h: c for h, c in zip(ranking.header, r)} for r in ranking.rows}
    assert [r[1].text for r in ranking.rows] == ["Vanilla", "ISNS", "WeLT", "INS"]  # ranked on dev
    assert rows["Vanilla"]["dev F1"].text == "80.00" and rows["Vanilla"]["test F1"].mark == "best"
    for scheme, row in rows.items():  # every mark agrees with the interval and p printed beside it
        if scheme == "Vanilla":
            continue
        interval = row["ΔF1 vs chosen (95% interval)"].text
        low, high = (float(x) for x in interval[interval.index("[") + 1 : -1].split(", "))
        p = float(row["p"].text.lstrip("< "))
        assert (row["test F1"].mark == "tied") == (low <= 0 <= high) == (p >= 0.05), (scheme, interval, p)
    assert rows["INS"]["p"].text.startswith("<") or float(rows["INS"]["p"].text) < 0.05
    assert "underlined: the paired bootstrap 95% interval" in t.note and "2000 resamples" in t.note
    wins = {r[0].text: (r[1].text, r[2].text) for r in report.wins_table(df, ranker=ranker).rows}
    assert wins["Vanilla"] == ("1", "0") and wins["ISNS"] == ("0", "1") and wins["INS"] == ("0", "0")


def test_report_and_command_print_the_same_numbers_for_one_pair(real_store, tmp_path, capsys):
    """One resample count (report.resamples) and seed: the report's bootstrap row and
    ``python -m bioner_grid.significance A B --uri`` agree to the last printed digit."""
    from bioner_grid import significance
    from bioner_grid.spec import ReportSchema

    uri, ids = real_store
    df = report.load_runs(uri, ["grid"])
    out = tmp_path / "report"
    report.write(df, out, cache=tmp_path / "cache")  # the defaults: ReportSchema.resamples, .seed
    import csv

    tables = [list(csv.reader(p.open(encoding="utf-8"))) for p in sorted(out.glob("table*.csv"))]
    (boot,) = [t for t in tables if t[0][:4] == ["Model", "Scheme", "seed", "Vanilla F1"]]  # the report's bootstrap table
    (cells,) = [row for row in boot[1:] if row[1] == "WeLT"]
    capsys.readouterr()
    assert significance.main([ids["vanilla"], ids["welt"], "--uri", uri]) == 0
    printed = capsys.readouterr().out
    assert f"{ReportSchema.resamples} paired bootstrap resamples" in printed
    delta, interval, p = cells[5:8]
    assert f"ΔF1 (B − A) {delta} points, 95% CI {interval}, p {'= ' if not p.startswith('<') else ''}{p}" in printed
    assert f"F1 A {cells[3]}, B {cells[4]};" in printed
    # the heatmap's "~" tests the value it is drawn on: ISNS (two sentences changed) only is within noise of Vanilla
    svg = (out / "schemes_ncbi_disease.svg").read_text(encoding="utf-8")
    assert svg.count("~") == 1


def test_a_store_of_one_scheme_and_one_lr_still_gets_an_f1_table(store, tmp_path):
    """CRF against softmax heads, and two models, all with one scheme and one learning rate: the
    report ranks the configurations (it used to give only the corpus statistics)."""
    uri, client, exp = store
    for head, f1, seed in (("crf", 0.81, 1), ("crf", 0.83, 2), ("softmax", 0.80, 1), ("softmax", 0.78, 2)):
        run = client.create_run(exp, tags={"model": "minilm", "dataset": "ncbi_disease", "scheme": "vanilla", "lr": "0.0001",
                                           "batch_size": "32", "seed": str(seed), "cell_key": f"k-{head}"})
        client.log_param(run.info.run_id, "model.head", head)
        client.log_param(run.info.run_id, "model.display_name", "MiniLM-L6")
        for m in ("f1", "precision", "recall"):
            client.log_metric(run.info.run_id, f"test_strict_{m}", f1)
        client.log_metric(run.info.run_id, "dev_strict_f1", f1 - 0.01)
        client.set_terminated(run.info.run_id, "FINISHED")
    for model in ("bert", "tiny_bert"):
        f1_run(client, exp, model, "bc5cdr_chem", "vanilla", 0.7 if model == "bert" else 0.2)
    df = report.load_runs(uri, ["grid"])
    tables, _ = report.build(df)
    ncbi = next(t for t in tables if t.title.startswith("NCBI-disease: every configuration"))
    assert [[c.text for c in r[:2]] + [r[ncbi.header.index("test F1")].text] for r in ncbi.rows] == [
        ["MiniLM-L6 (head=crf)", "Vanilla", "82.00 ± 1.41 (n=2)"], ["MiniLM-L6 (head=softmax)", "Vanilla", "79.00 ± 1.41 (n=2)"]]
    assert ncbi.rows[0][ncbi.header.index("dev F1")].text == "81.00" and ncbi.rows[0][ncbi.header.index("test F1")].mark == "best"
    chem = next(t for t in tables if t.title.startswith("BC5CDR-chem: every configuration"))
    assert [r[0].text for r in chem.rows] == ["BERT", "TinyBERT"] and "No dev scores logged" in chem.note
    report.write(df, tmp_path / "out")
    assert "every configuration, chosen on dev" in (tmp_path / "out" / "report.md").read_text()


def test_publication_output_minus_signs_pdf_svg_and_no_line_through_two_points(store, tmp_path):
    import re
    import xml.etree.ElementTree as ET

    from bioner_grid import report_figures

    uri, client, exp = store
    for model, seconds, rss in (("bert", 100.0, 1000.0), ("gpt2", 300.0, 2000.0)):
        for scheme, f1 in (("vanilla", 0.80), ("welt", 0.76)):
            for seed in (1, 2):
                log_run(client, exp, model=model, dataset="ncbi_disease", scheme=scheme, lr=5e-5, batch_size=32, seed=seed,
                        test_strict_f1=f1 + seed / 100, test_strict_precision=f1, test_strict_recall=f1, dev_strict_f1=f1,
                        train_seconds=seconds, peak_rss_mb=rss)
    df = report.load_runs(uri, ["grid"])
    out = tmp_path / "out"
    report.write(df, out)
    for stem in ("schemes_ncbi_disease", "memory_vs_time"):
        assert {f"{stem}.{x}" for x in ("png", "pdf", "svg")} <= {p.name for p in out.iterdir()}
        assert (out / f"{stem}.pdf").read_bytes().startswith(b"%PDF")
    images = report_figures.memory_vs_time(df, tmp_path / "fig")
    assert "no line fitted through fewer than 3 points" in images[0][1]
    assert "least squares" not in (tmp_path / "fig" / "memory_vs_time.svg").read_text()
    # heatmap text: value and n in every cell, at least 9 pt in the saved figure (SVG user unit = 1 pt)
    svg = ET.parse(out / "schemes_ncbi_disease.svg").getroot()
    texts = [(e.get("style") or "", "".join(e.itertext())) for e in svg.iter() if e.tag.endswith("text")]
    counts = [(style, text) for style, text in texts if text.strip() == "n=2"]
    values = [(style, text) for style, text in texts if re.fullmatch(r"[\u2212+]?\d+(\.\d)?~?", text.strip())]
    assert len(counts) == 8 and len(values) >= 8  # 2 models x 2 schemes x (F1, ΔF1), each with its n
    assert all(float(re.search(r"font-size: ?([\d.]+)px", style).group(1)) >= 9 for style, _ in counts + values)
    assert "\u22124.0" in [text.strip() for _, text in values]  # ΔF1 with a real minus
    md, tex, csv_text = ((out / "report.md").read_text(), "".join(p.read_text() for p in out.glob("*.tex")),
                         "".join(p.read_text() for p in out.glob("*.csv")))
    assert "\u22124.00" in md and "$-$4.00" in tex and "-4.00" in csv_text  # CSV keeps numbers numbers
    assert not re.search(r"(?<![\w.$])-\d", tex)  # no hyphen as a minus in LaTeX
    assert "GPT-2" in md and "gpt2" not in md.replace("GPT-2", "")
    assert r"\label{tab:table01}" in tex and r"\footnotesize" in tex


def test_a_setting_left_at_its_default_reads_as_that_default_and_every_point_is_named_in_the_figure(store, tmp_path):
    """``dataset.merge`` is logged only when it is not ``tags`` (``tracking.NEW_PARAM_DEFAULTS``):
    a run without the param is a ``merge=tags`` run, never ``merge=nan``. The memory figure names each point in a legend below the axes (long variant labels
    ran past the frame as annotations), and the same runs give the same SVG bytes."""
    import xml.etree.ElementTree as ET

    from bioner_grid import report_figures

    uri, client, exp = store
    for merge, seconds, rss in (("plain", 100.0, 1000.0), (None, 200.0, 1500.0), ("mtl", 300.0, 2100.0)):
        for seed in (1, 2):
            run = client.create_run(exp, tags={"model": "minilm", "dataset": "aio", "scheme": "vanilla", "lr": "5e-05",
                                                "batch_size": "32", "seed": str(seed)})
            if merge:
                client.log_param(run.info.run_id, "dataset.merge", merge)
            for k, v in {"test_strict_f1": 0.7, "train_seconds": seconds, "peak_rss_mb": rss}.items():
                client.log_metric(run.info.run_id, k, v)
            client.set_terminated(run.info.run_id, "FINISHED")
    df = report.load_runs(uri, ["grid"])
    assert sorted(df["model"].unique()) == ["minilm (merge=mtl)", "minilm (merge=plain)", "minilm (merge=tags)"]
    report_figures.memory_vs_time(df, tmp_path / "a")
    report_figures.memory_vs_time(df, tmp_path / "b")
    svg = (tmp_path / "a" / "memory_vs_time.svg").read_bytes()
    assert svg == (tmp_path / "b" / "memory_vs_time.svg").read_bytes()
    texts = ["".join(e.itertext()) for e in ET.fromstring(svg).iter() if e.tag.endswith("text")]
    assert {"MiniLM (merge=plain) (n=2)", "MiniLM (merge=tags) (n=2)", "MiniLM (merge=mtl) (n=2)"} <= set(texts)
    assert not any("nan" in t for t in texts)


def test_the_sweep_parent_shows_the_reports_bootstrap_interval_and_p_for_each_configuration(real_store, tmp_path):
    """The parent's description (what its MLflow page opens on) gives each configuration's test
    F1 difference from the one chosen on dev with the paired bootstrap interval and p: the very
    numbers of the report's ranking table (one resample count and seed, ``report.resamples``)."""
    from mlflow import MlflowClient

    from bioner_grid import sweep
    from bioner_grid.spec import ReportSchema
    from bioner_grid.store import RunStore

    uri, ids = real_store
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("grid").experiment_id
    parent = client.create_run(exp, tags={"kind": "sweep", "sweep": "s-1"}).info.run_id
    for rid in ids.values():
        client.set_tag(rid, "mlflow.parentRunId", parent)
    store = RunStore(uri, "grid")
    assert sweep.close(store, parent, "s-1", {"jobs_launched": 4}, sweep.children(store, exp, parent)) == "FINISHED"
    text = client.get_run(parent).data.tags["mlflow.note.content"]
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    header = [h.replace("&nbsp;", "").strip() for h in lines[0].strip("| ").split(" | ")]
    table = {cells[header.index("scheme")].strip("*"): cells
             for cells in ([c.replace("&nbsp;", "").strip() for c in line.strip("| ").split(" | ")] for line in lines[1:])}
    assert table["vanilla"][header.index("Δ test vs chosen (95% interval)")] == "chosen"
    df = report.load_runs(uri, ["grid"])
    ranker = report.Ranker(report.RunFiles(tmp_path / "cache", uri), "test", "strict", resamples=ReportSchema.resamples,
                           seed=ReportSchema.seed)
    ranking = report.ranking_table(df, "ncbi_disease", ranker=ranker)
    shown = {r[1].text: {h: c.text for h, c in zip(ranking.header, r)} for r in ranking.rows}
    for scheme, name in (("isns", "ISNS"), ("ins", "INS"), ("welt", "WeLT")):
        interval = shown[name]["ΔF1 vs chosen (95% interval)"]
        assert table[scheme][header.index("Δ test vs chosen (95% interval)")] == interval.replace("-", "\u2212")  # real minus
        assert table[scheme][header.index("p")] == shown[name]["p"].replace(" ", ""), scheme  # "<&nbsp;0.0002" read as "<0.0002"
    assert f"from the same {ReportSchema.resamples} resamples" in text
