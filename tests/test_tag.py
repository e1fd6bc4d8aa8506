"""Saving a run's model and tagging new text with it (bioner_grid.export, bioner_grid.tag).

The proof: tiny_bert trained through the command line on NCBI-disease PubTator, saved, then used to
tag the test documents from the raw PubTator file: the tagged output scores exactly as the run's own
test predictions, and every offset reproduces its mention.
"""

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest

from bioner_grid import bundle, tag
from bioner_grid.corpus import read_rows
from bioner_grid.scoring import score
from bioner_grid.pubtator import read_pubtator
from bioner_grid.store import run_metrics
from conftest import inproc

NCBI_TYPES = {"Disease": ["DiseaseClass", "SpecificDisease", "CompositeMention", "Modifier"]}
N_DOCS = 12  # first NCBI test documents: ~110 sentences


def cli(tmp: Path, module: str, *args):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=tmp, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, data_root):
    """A tiny_bert run on NCBI PubTator whose test split is the first documents of the test file;
    max_seq_length=24 cuts long sentences into windows, in training and in tagging."""
    tmp = tmp_path_factory.mktemp("tag")
    blocks = (data_root / "pubtator" / "NCBIdisease_Test.PubTator").read_text(encoding="utf-8").split("\n\n")
    (tmp / "test.PubTator").write_text("\n\n".join(blocks[:N_DOCS]) + "\n", encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:  # in this process, as the command line runs it (conftest.inproc)
        mp.chdir(tmp)
        inproc(tmp / "run", [
            "model=tiny_bert", "dataset=pubtator_files", f"data.root={data_root}",
            f"dataset.train={data_root}/pubtator/NCBIdisease_TrainDev.PubTator", f"dataset.test={tmp}/test.PubTator",
            "dataset.types=" + json.dumps(NCBI_TYPES).replace('"', ""), "dataset.dev_documents=20",
            "data.max_train_sentences=320", "data.max_eval_sentences=300", "train.epochs=3", "train.batch_size=16",
            "train.lr=1e-3", "train.max_seq_length=24", f"tracking.uri=sqlite:///{tmp}/mlflow.db",
            f"tracking.artifact_location={tmp}/artifacts"])
    result = json.loads((tmp / "run" / "result.json").read_text())
    mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
    return tmp, result, mlflow.get_run(result["run_id"])


def test_saved_folder_holds_weights_tokenizer_and_labels_and_loads_in_plain_transformers(trained):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    tmp, result, run = trained
    folder = tmp / "run" / "model"
    meta = json.loads((folder / bundle.META).read_text())
    assert meta["labels"] == ["O", "B-Disease", "I-Disease"] and meta["max_seq_length"] == 24
    assert meta["special_tokens"] == [] and meta["config"]["model"]["name"] == "tiny_bert"
    assert (folder / "model.safetensors").is_file()
    model = AutoModelForTokenClassification.from_pretrained(folder)
    assert model.config.id2label == {0: "O", 1: "B-Disease", 2: "I-Disease"}
    assert AutoTokenizer.from_pretrained(folder).is_fast
    assert 0 < float(run.data.tags["model_size_mb"]) < 20
    assert run.data.tags["model_uri"].startswith("models:/")


def test_tagging_the_raw_documents_reproduces_the_runs_test_scores_and_offsets(trained):
    tmp, result, run = trained
    # By run id: found through the tracking store (the run's own folder on this machine).
    common = [f"model={result['run_id']}", f"tracking.uri=sqlite:///{tmp}/mlflow.db", "input=test.PubTator", "tag.progress=false"]
    r = cli(tmp, "bioner_grid.tag", *common, "out=tagged.pubtator")
    assert r.returncode == 0, r.stderr[-3000:]
    assert tag.main([*common[:2], f"input={tmp}/test.PubTator", f"out={tmp}/tagged.conll", "out_format=conll"]) == 0

    # Sentence for sentence and word for word the run's own test predictions, windows included.
    run_rows = [[fields for _, fields in rows] for rows in read_rows(tmp / "run" / "predictions_test.conll", 3)]
    our_rows = [[fields for _, fields in rows] for rows in read_rows(tmp / "tagged.conll", 2)]
    assert [[r[0] for r in s] for s in our_rows] == [[r[0] for r in s] for s in run_rows]
    gold, pred = [[r[1] for r in s] for s in run_rows], [[r[1] for r in s] for s in our_rows]
    assert pred == [[r[2] for r in s] for s in run_rows]
    scores = score(gold, pred)
    m = run_metrics(run)
    assert m["test_f1"] > 0.1  # the model finds entities: the equalities below are not 0 = 0
    assert scores["default"]["f1"] == pytest.approx(m["test_f1"])
    assert scores["strict"]["f1"] == pytest.approx(m["test_strict_f1"])

    # The PubTator output against the gold annotations, as character spans.
    tagged, skipped = read_pubtator(tmp / "tagged.pubtator")
    assert skipped == []  # read_pubtator skips an annotation whose mention differs from the text at its offsets
    source, _ = read_pubtator(tmp / "test.PubTator")
    assert [(d.pmid, d.text) for d in tagged] == [(d.pmid, d.text) for d in source]
    found = {(d.pmid, a.start, a.end, a.type) for d in tagged for a in d.annotations}
    assert all(d.text[a.start:a.end] == a.mention for d in tagged for a in d.annotations)
    wanted = {t for types in NCBI_TYPES.values() for t in types}
    truth = {(d.pmid, a.start, a.end, "Disease") for d in source for a in d.annotations if a.type in wanted}
    tp = len(found & truth)
    assert tp / len(found) == pytest.approx(m["test_precision"])
    assert tp / len(truth) == pytest.approx(m["test_recall"])
    assert 2 * tp / (len(found) + len(truth)) == pytest.approx(m["test_f1"])


def test_registered_model_tags_the_same_and_serves_through_pyfunc(trained):
    tmp, result, run = trained
    version = mlflow.register_model(run.data.tags["model_uri"], "ncbi-tiny")
    uri = f"models:/ncbi-tiny/{version.version}"
    out = {}
    for name, model in (("folder", str(tmp / "run" / "model")), ("registry", uri)):
        assert tag.main([f"model={model}", f"tracking.uri=sqlite:///{tmp}/mlflow.db", f"input={tmp}/test.PubTator",
                         f"out={tmp}/{name}.pubtator", "tag.progress=false"]) == 0
        out[name] = (tmp / f"{name}.pubtator").read_text()
    assert out["folder"] == out["registry"]

    pyfunc = mlflow.pyfunc.load_model(uri)
    assert [c.name for c in pyfunc.metadata.get_input_schema().inputs] == ["text", "id"]
    docs, _ = read_pubtator(tmp / "test.PubTator")
    table = pyfunc.predict(pd.DataFrame({"id": [d.pmid for d in docs], "text": [d.text for d in docs]}))
    assert list(table.columns) == ["id", "start", "end", "mention", "type"] and len(table) > 0
    tagged, _ = read_pubtator(tmp / "folder.pubtator")
    expected = {(d.pmid, a.start, a.end, a.mention) for d in tagged for a in d.annotations}
    # plain text has no title boundary: the sentence split may differ around it, the rest agrees
    got = set(zip(table["id"], table["start"], table["end"], table["mention"]))
    assert len(got & expected) >= 0.9 * len(expected)


def test_a_folder_in_the_first_saved_format_tags_the_same(trained, tmp_path):
    """A model folder as the first saving code wrote it (bioner_grid.json without ``precision``,
    its config unmasked) loads through ``bundle`` and tags in fp32, as today's folder does in fp32."""
    import shutil

    tmp, _, _ = trained
    shutil.copytree(tmp / "run" / "model", tmp_path / "old")
    meta = json.loads((tmp_path / "old" / bundle.META).read_text())
    first = {k: meta[k] for k in ("labels", "special_tokens", "tasks", "max_seq_length", "head", "model", "dataset",
                                  "scheme", "config")}
    (tmp_path / "old" / bundle.META).write_text(json.dumps(first))
    old, new = tag.open_tagger(tmp_path / "old"), bundle.Tagger(tmp / "run" / "model", "cpu", "fp32")
    assert old.precision == "fp32"
    entities = []
    for tagger in (old, new):
        docs = tag.read_shard(tmp / "test.PubTator", "pubtator").documents
        tagger.tag_documents(docs)
        entities.append([p.entities for d in docs for p in d.passages])
    assert entities[0] == entities[1] and sum(map(len, entities[0])) > 0


def test_bioc_text_and_conll_inputs(trained, tmp_path):
    tmp, result, run = trained
    model = f"model={tmp / 'run' / 'model'}"
    assert tag.main([model, f"input={tmp}/test.PubTator", f"out={tmp_path}/a.xml", "out_format=bioc", "tag.progress=false"]) == 0
    assert tag.main([model, f"input={tmp_path}/a.xml", "format=bioc", f"out={tmp_path}/b.pubtator",
                     "out_format=pubtator", "tag.progress=false"]) == 0
    docs, skipped = read_pubtator(tmp_path / "b.pubtator")
    assert skipped == [] and len(docs) == N_DOCS
    # BioC in: our annotations were in the input already, and are there twice now (input's kept, ours added)
    import bioc

    with open(tmp_path / "a.xml", "rb") as f:
        collection = bioc.biocxml.load(f)
    for d in collection.documents:
        for p in d.passages:
            for a in p.annotations:
                loc = a.locations[0]
                assert p.text[loc.offset - p.offset:loc.end - p.offset] == a.text

    (tmp_path / "t.txt").write_text("Cystic fibrosis is a recessive disease.\nIt affects the lungs.\n\nA second block.\n")
    assert tag.main([model, f"input={tmp_path}/t.txt", "format=text", f"out={tmp_path}/t.pubtator", "tag.progress=false"]) == 0
    assert [d.pmid for d in read_pubtator(tmp_path / "t.pubtator")[0]] == ["t-1", "t-2"]

    assert tag.main([model, f"input={tmp}/run/predictions_test.conll", "format=conll", f"out={tmp_path}/c.conll"]) == 2
    (tmp_path / "two.tsv").write_text("Cystic\tB-Disease\nfibrosis\tI-Disease\n\nHello\tO\n")
    assert tag.main([model, f"input={tmp_path}/two.tsv", "format=conll", f"out={tmp_path}/two.conll", "tag.progress=false"]) == 0
    rows = [r.split("\t") for r in (tmp_path / "two.conll").read_text().split("\n") if r]
    assert [r[:2] for r in rows] == [["Cystic", "B-Disease"], ["fibrosis", "I-Disease"], ["Hello", "O"]]
    assert all(len(r) == 3 for r in rows)


def test_a_folder_of_shards_skips_those_written(trained, tmp_path):
    tmp, result, run = trained
    blocks = (tmp / "test.PubTator").read_text().split("\n\n")
    (tmp_path / "in").mkdir()
    for i in range(3):
        (tmp_path / "in" / f"part{i}.PubTator").write_text("\n\n".join(blocks[4 * i:4 * i + 4]) + "\n")
    args = [f"model={tmp / 'run' / 'model'}", f"input={tmp_path}/in", f"out={tmp_path}/out", "tag.progress=false"]
    assert tag.main([*args, "tag.part=1/2"]) == 0  # job 1 of an array of 2: every second shard from the second
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["part1.pubtator"]
    (tmp_path / "out" / "part1.pubtator").write_text("done before\n")
    assert tag.main(args) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["part0.pubtator", "part1.pubtator", "part2.pubtator"]
    assert (tmp_path / "out" / "part1.pubtator").read_text() == "done before\n"  # skipped: its output existed
    assert len(read_pubtator(tmp_path / "out" / "part2.pubtator")[0]) == 4


def test_shards_sweep_over_hydra_launcher_jobs(trained, tmp_path):
    """``-m tag.part=0/2,1/2`` on hydra-submitit's local launcher: two jobs (separate processes, as
    SLURM array tasks are) share a folder's shards, and a second sweep skips them all."""
    tmp, result, run = trained
    blocks = (tmp / "test.PubTator").read_text().split("\n\n")
    (tmp_path / "in").mkdir()
    for i in range(3):
        (tmp_path / "in" / f"part{i}.PubTator").write_text("\n\n".join(blocks[4 * i:4 * i + 4]) + "\n")
    args = ["-m", f"model={tmp / 'run' / 'model'}", f"input={tmp_path}/in", f"out={tmp_path}/out", "tag.progress=false",
            "tag.part=0/2,1/2", "hydra/launcher=submitit_local", f"hydra.sweep.dir={tmp_path}/sweep",
            "hydra.launcher.timeout_min=10"]
    r = cli(tmp_path, "bioner_grid.tag", *args)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["part0.pubtator", "part1.pubtator", "part2.pubtator"]
    jobs = [" ".join(p.read_text() for p in folder.glob("*_log.*")) for folder in (tmp_path / "sweep" / ".submitit").iterdir()]
    assert sum("documents" in text for text in jobs) == 2  # each of the two jobs tagged its own shards
    written = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()}
    r = cli(tmp_path, "bioner_grid.tag", *args[:-2], f"hydra.sweep.dir={tmp_path}/sweep2", "hydra.launcher.timeout_min=10")
    assert r.returncode == 0, r.stderr[-3000:]
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").iterdir()} == written


@pytest.mark.parametrize("name, content, fmt, problem", [
    ("bad.PubTator", "1|t|A title\n1|a|An abstract.\n1\tx\t5\tabc\tDisease\n", "pubtator", "bad.PubTator:3: not a title"),
    ("bad.xml", "<collection><document>\n<id>1</passage></collection>\n", "bioc", "bad.xml:2: XML parse error"),
])
def test_bad_input_stops_with_file_and_line_and_writes_nothing(trained, tmp_path, capsys, name, content, fmt, problem):
    tmp, result, run = trained
    (tmp_path / "in").mkdir()
    if fmt == "pubtator":  # a good shard beside the bad one is not written either
        (tmp_path / "in" / "good.PubTator").write_text((tmp / "test.PubTator").read_text())
    (tmp_path / "in" / name).write_text(content)
    code = tag.main([f"model={tmp / 'run' / 'model'}", f"input={tmp_path}/in", f"format={fmt}", f"out={tmp_path}/out"])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and problem in err[0]
    assert not (tmp_path / "out").exists()


def test_model_folder_without_its_label_list(tmp_path, capsys):
    (tmp_path / "m").mkdir()
    (tmp_path / "x.txt").write_text("Some text.\n")
    assert tag.main([f"model={tmp_path}/m", f"input={tmp_path}/x.txt", "format=text", f"out={tmp_path}/o"]) == 2
    assert "bioner_grid.json:0: no label list" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_help_prints_usage(capsys):
    assert tag.main(["--help"]) == 0
    assert capsys.readouterr().out.startswith("usage: bioner-grid-tag model=")


def test_all_in_one_model_is_asked_per_task():
    tagger = object.__new__(bundle.Tagger)  # plan() needs only the labels and the adapter (from the saved tasks)
    tagger.labels = ["O-ALL", "O-Chemical", "O-Disease", "B-Chemical", "I-Chemical", "B-Disease", "I-Disease", "B-Gene", "I-Gene"]
    tasks = {"ALL": ["Chemical", "Disease", "Gene"], "Chemical": ["Chemical"], "Disease": ["Disease"]}
    tagger.adapter = bundle.adapter({"tasks": tasks, "special_tokens": ["<ALL>", "</ALL>"]})
    assert tagger.plan(None) == [("ALL", {"Chemical", "Disease", "Gene"})]
    assert tagger.plan(["Chemical", "Gene"]) == [("Chemical", {"Chemical"}), ("ALL", {"Gene"})]
    with pytest.raises(tag.DataError, match="not \\['Species'\\]"):
        tagger.plan(["Species"])
    tagger.adapter = bundle.adapter({"tasks": {}})
    assert tagger.plan(["Disease"]) == [(None, {"Disease"})]


def test_register_picks_the_best_dev_configuration_or_says_how_to_save_it(trained, capsys):
    from mlflow import MlflowClient

    from bioner_grid import register

    tmp, result, run = trained
    args = [f"tracking.uri=sqlite:///{tmp}/mlflow.db", "report.experiment=bioner-grid", "name=best"]
    assert register.main(args) == 0
    out = capsys.readouterr().out
    assert "pubtator_files: tiny_bert welt lr 0.001 bs 16" in out and "registered models:/best-pubtator_files/1" in out
    version = MlflowClient().get_model_version("best-pubtator_files", "1")
    assert version.tags["run_id"] == result["run_id"]
    assert float(version.tags["dev_strict_f1"]) == pytest.approx(run.data.metrics["dev/strict_f1"], abs=1e-4)
    assert float(version.tags["test_strict_f1"]) == pytest.approx(run.data.metrics["test/strict_f1"], abs=1e-4)

    MlflowClient().delete_tag(result["run_id"], "model_uri")  # as if the grid ran with train.save_model=false
    try:
        assert register.main(args) == 0
    finally:
        MlflowClient().set_tag(result["run_id"], "model_uri", run.data.tags["model_uri"])
    out = capsys.readouterr().out
    assert "no saved model; to save it, run:" in out
    command = out.strip().splitlines()[-1].strip()
    assert command.startswith("python -m bioner_grid model=tiny_bert dataset=pubtator_files ")
    assert "train.lr=1e-3 train.max_seq_length=24" in command and command.endswith("train.save_model=true train.force=true")
    assert "'dataset.types={Disease: [DiseaseClass, SpecificDisease, CompositeMention, Modifier]}'" in command


def test_types_asked_must_be_the_models(trained, tmp_path, capsys):
    tmp, result, run = trained
    args = [f"model={tmp / 'run' / 'model'}", f"input={tmp}/test.PubTator", "tag.progress=false"]
    assert tag.main([*args, f"out={tmp_path}/a.pubtator", "tag.types=[Chemical,Disease]"]) == 2
    assert "tag.types:0: the model knows ['Disease'], not ['Chemical']" in capsys.readouterr().err
    assert tag.main([*args, f"out={tmp_path}/b.pubtator", "tag.types=[Disease]"]) == 0
    assert tag.main([*args, f"out={tmp_path}/c.pubtator"]) == 0
    assert (tmp_path / "b.pubtator").read_text() == (tmp_path / "c.pubtator").read_text()


def test_crf_head_is_saved_and_tags_as_the_run_predicted(tmp_path, data_root, monkeypatch):
    """The CRF head is our own module (no transformers class): saved as one state dict, rebuilt by the tagger."""
    monkeypatch.chdir(tmp_path)  # in this process, as the command line runs it (conftest.inproc)
    inproc(tmp_path / "run", [
        "model=tiny_bert", "model.head=crf", "scheme=vanilla", f"data.root={data_root}",
        "data.max_train_sentences=64", "data.max_eval_sentences=40", "train.max_steps=8", "train.batch_size=16",
        "train.lr=1e-3", "train.max_seq_length=24", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
        f"tracking.artifact_location={tmp_path}/artifacts"])
    assert json.loads((tmp_path / "run" / "model" / bundle.META).read_text())["head"] == "crf"
    run_rows = [fields for rows in read_rows(tmp_path / "run" / "predictions_test.conll", 3) for _, fields in rows]
    (tmp_path / "test.tsv").write_text("\n\n".join("\n".join(f"{t}\t{g}" for t, g, _ in s) for s in
                                                  [[f for _, f in rows] for rows in read_rows(tmp_path / "run" / "predictions_test.conll", 3)]) + "\n")
    assert tag.main([f"model={tmp_path}/run/model", f"input={tmp_path}/test.tsv", "format=conll",
                     f"out={tmp_path}/tagged.conll", "tag.progress=false"]) == 0
    ours = [fields for rows in read_rows(tmp_path / "tagged.conll", 3) for _, fields in rows]
    assert ours == run_rows


def test_reproduce_command_without_the_run_folder_names_the_runs_experiment(tmp_path):
    import mlflow

    from bioner_grid.register import reproduce_command

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path}/mlflow.db")
    tags = {"model": "minilm", "dataset": "bc5cdr_chem", "scheme": "welt", "lr": "0.0001", "batch_size": "32",
            "seed": "2", "output_dir": str(tmp_path / "gone")}
    with mlflow.start_run(tags=tags) as run:
        mlflow.log_text("grid:\n  name: minilm_study\n", "config.yaml")
    from bioner_grid.store import RunStore

    store = RunStore(f"sqlite:///{tmp_path}/mlflow.db", "Default")
    command = reproduce_command(store, store.get_run(run.info.run_id))
    assert command == ("python -m bioner_grid experiment=minilm_study model=minilm dataset=bc5cdr_chem scheme=welt "
                       "train.lr=0.0001 train.batch_size=32 train.seed=2 train.save_model=true train.force=true")


class _Payload:
    """A pickle that, when unpickled, creates ``marker`` (as a planted payload would run a command)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


def test_the_logged_model_is_code_and_a_planted_pickle_never_runs(trained, tmp_path):
    """The pyfunc model is logged as code (MLflow's models-from-code, bioner_grid/tagger_model.py):
    its folder in the artifact store holds no python_model.pkl; a pickle planted there under that
    name does not run when mlflow.pyfunc.load_model loads the model (a model logged as a pickle
    runs it: the test fails on the code before models-from-code); the loaded model tags documents
    exactly as bundle.Tagger does."""
    import pickle
    from urllib.parse import urlparse
    from urllib.request import url2pathname

    import yaml
    from mlflow import MlflowClient

    from bioner_grid.documents import Document, Passage

    tmp, _, run = trained
    uri = run.data.tags["model_uri"]
    mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")  # where load_model looks the models:/ URI up
    stored = MlflowClient(f"sqlite:///{tmp}/mlflow.db").get_logged_model(uri.removeprefix("models:/")).artifact_location
    (mlmodel,) = Path(url2pathname(urlparse(stored).path)).rglob("MLmodel")
    folder = mlmodel.parent
    pyfunc_conf = yaml.safe_load(mlmodel.read_text())["flavors"]["python_function"]
    logged_pickle = (folder / "python_model.pkl").exists()

    marker = tmp_path / "payload-ran"
    (folder / "python_model.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    try:
        model = mlflow.pyfunc.load_model(uri)
    except Exception as e:  # noqa: BLE001 (a payload that ran leaves no model: say first that it ran)
        model = e
    finally:
        (folder / "python_model.pkl").unlink()
    assert not marker.exists(), "loading the model unpickled the planted python_model.pkl"
    assert not isinstance(model, Exception), model
    assert not logged_pickle and "python_model" not in pyfunc_conf
    assert pyfunc_conf["loader_module"] == "mlflow.pyfunc.loaders.code_model"
    assert Path(pyfunc_conf["model_code_path"]).name == "tagger_model.py" and (folder / "tagger_model.py").is_file()

    source, _ = read_pubtator(tmp / "test.PubTator")
    table = model.predict(pd.DataFrame({"id": [d.pmid for d in source], "text": [d.text for d in source]}))
    docs = [Document(d.pmid, [Passage(0, d.text)]) for d in source]
    tag.open_tagger(tmp / "run" / "model").tag_documents(docs)
    expected = [(d.id, s, e, d.passages[0].text[s:e], t) for d in docs for s, e, t in d.passages[0].entities]
    assert len(expected) > 10  # the model finds entities: the equality is not of two empty lists
    assert list(table.itertuples(index=False, name=None)) == expected
