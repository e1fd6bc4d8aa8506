"""The all-in-one corpus's other merges (issue 22): ``dataset.merge=plain`` (AIONER's "w/o AIONER"
naive concatenation) and members restricted to some of their types (``types_only``: BioRED's
diseases, AIONER's BL2), on the real corpora with small caps."""

import json

import pytest

from bioner_grid import spec
from bioner_grid.aio import plain
from bioner_grid.config import compose
from bioner_grid.data import load_corpus
from bioner_grid.errors import ConfigError
from bioner_grid.identity import identity, run_key
from bioner_grid.tracking import run_params

TWO = ["dataset=aio", "dataset.only=[BioRED,NCBIdisease]"]


def corpus(data_root, tmp_path, *overrides):
    cfg = compose([f"data.root={data_root}", f"data.cache={tmp_path}/cache", *TWO, *overrides])
    spec.check(cfg)
    return cfg, load_corpus(cfg.dataset, 40, 20, cfg.data.cache, cfg.data.overlap)


def test_plain_merge_is_the_tagged_one_without_task_tags(tmp_path, data_root):
    cfg_tags, tagged = corpus(data_root, tmp_path)
    cfg_plain, merged = corpus(data_root, tmp_path, "dataset.merge=plain")
    assert merged.adapter.special_tokens == () and merged.adapter.tasks() == {}
    assert not any(t.startswith("O-") for t in merged.labels) and "O-ALL" in tagged.labels
    for name in ("train", "dev", "test"):
        a, b = tagged.splits[name].sentences, merged.splits[name].sentences
        assert len(a) == len(b) == (80 if name == "train" else 40)  # 40 / 20 sentences per member
        assert all(not s.tokens[0].startswith("<") and "O-ALL" not in s.tags for s in b)
        assert [plain(s.tokens, s.tags) for s in a] == [(s.tokens, s.tags) for s in b]
    # each member scored on its own sentences and types, exactly as in the tagged merge
    # a prediction that is the gold but for a gene in the middle of every sentence, which
    # NCBIdisease must count as O: in the tagged merge, inside the sentence's task tags
    gold = [s.tags for s in merged.splits["test"].sentences]
    pred = [[("B-Gene" if k == len(g) // 2 else t) for k, t in enumerate(g)] for g in gold]
    tagged_test = tagged.splits["test"].sentences
    tagged_pred = [s.tags[:1] + p + s.tags[-1:] for s, p in zip(tagged_test, pred)]
    tagged.views = tagged.adapter.member_views("test", [s.tokens for s in tagged_test], [s.tags for s in tagged_test], tagged_pred)
    merged.views = merged.adapter.member_views("test", [s.tokens for s in merged.splits["test"].sentences], gold, pred)
    assert tagged.views.keys() == merged.views.keys() == {"BioRED", "NCBIdisease"}
    for member in tagged.views:
        assert tagged.views[member] == merged.views[member]
    assert any(t == "B-Gene" for p in merged.views["BioRED"][2] for t in p)
    assert not any(t == "B-Gene" for p in merged.views["NCBIdisease"][2] for t in p)
    tags = merged.adapter.run_tags()
    assert {k: tags[k] for k in ("aio_members", "aio_merge")} == {"aio_members": "BioRED,NCBIdisease", "aio_merge": "plain"}
    assert "aio_types_only" not in tags and tags["aio_slices"] == tagged.adapter.run_tags()["aio_slices"]
    assert json.loads(tags["aio_slices"])["NCBIdisease"] == {"types": ["Disease"], "dev": [20, 40], "test": [20, 40]}
    assert run_key(cfg_tags) != run_key(cfg_plain) and "merge" not in identity(cfg_tags)["dataset"]
    # a param where set, none at the default (runs recorded before the key have none either)
    assert run_params(cfg_plain)["dataset.merge"] == "plain" and "dataset.merge" not in run_params(cfg_tags)


def test_a_member_restricted_to_one_type(tmp_path, data_root):
    cfg, bl2 = corpus(data_root, tmp_path, "dataset.merge=plain", "dataset.members.0.types_only=[Disease]")
    _, full = corpus(data_root, tmp_path, "dataset.merge=plain")
    biored = bl2.adapter.members["BioRED"]
    assert biored["types"] == ["Disease"]
    types = {t[2:] for i in biored["train"] for t in bl2.splits["train"].sentences[i].tags if t != "O"}
    assert types == {"Disease"}
    assert {t[2:] for i in biored["train"] for t in full.splits["train"].sentences[i].tags if t != "O"} > {"Disease", "Gene"}
    assert bl2.labels == ["O", "B-Disease", "I-Disease"]
    assert bl2.adapter.run_tags()["aio_types_only"] == "BioRED:Disease"
    assert "types_only" in identity(cfg)["dataset"]["members"][0] and "types_only" not in identity(cfg)["dataset"]["members"][1]
    bad = compose([f"data.root={data_root}", *TWO, "dataset.members.0.types_only=[Protein]"])
    with pytest.raises(ConfigError, match=r"dataset.members.0.types_only=\['Protein'\]: BioRED has the types"):
        spec.check(bad)


def test_the_multi_task_head_is_one_output_layer_per_member(minilm_tokenizer):
    """``heads.MultiTaskTagger``: the rows of each member's labels act as that member's own linear
    layer. Its loss is the sum over members of the cross-entropy that separate layers (the same
    rows, as ``nn.Linear``s over the encoder's output) give their member's words, and its
    predictions are each layer's argmax, never a label of another member."""
    import torch
    import torch.nn.functional as F
    from omegaconf import OmegaConf

    from bioner_grid.align import make_windows
    from bioner_grid.corpus import Sentence
    from bioner_grid.heads import MultiTaskTagger, head_of
    from bioner_grid.modeling import build_model
    from conftest import ROOT
    from transformers import DataCollatorForTokenClassification

    labels = ["O@A", "O@B", "B-Disease@A", "I-Disease@A", "B-Chemical@B", "I-Chemical@B", "B-Disease@B", "I-Disease@B"]
    torch.manual_seed(0)
    model = MultiTaskTagger(build_model(OmegaConf.load(ROOT / "conf/model/tiny_bert.yaml"), labels, minilm_tokenizer), labels)
    model.eval()
    assert head_of(model) is MultiTaskTagger
    sentences = [Sentence("lithium toxicity in rats".split(), ["O@A", "B-Disease@A", "I-Disease@A", "O@A"]),
                 Sentence("lithium toxicity".split(), ["B-Chemical@B", "O@B"]),
                 Sentence("renal failure after cisplatin".split(), ["B-Disease@B", "I-Disease@B", "O@B", "B-Chemical@B"])]
    label2id = {label: i for i, label in enumerate(labels)}
    windows = make_windows(minilm_tokenizer, sentences, label2id, 32)
    inputs = DataCollatorForTokenClassification(minilm_tokenizer)([w.features() for w in windows])
    with torch.no_grad():
        loss, outputs = MultiTaskTagger.loss(model, dict(inputs), None)
        hidden = model.inner.base_model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).last_hidden_state
    classifier = model.inner.classifier
    expected, predicted = 0.0, {}
    for member in ("A", "B"):
        rows = [i for i, label in enumerate(labels) if label.endswith("@" + member)]
        layer = torch.nn.Linear(hidden.size(-1), len(rows))
        layer.weight.data, layer.bias.data = classifier.weight.data[rows], classifier.bias.data[rows]
        at = torch.isin(inputs["labels"], torch.tensor(rows))
        local = torch.tensor([rows.index(int(y)) for y in inputs["labels"][at]])
        with torch.no_grad():
            scores = layer(hidden[at])
        expected += F.cross_entropy(scores, local)
        predicted[member] = torch.tensor(rows)[scores.argmax(-1)]
    assert torch.allclose(loss, expected, atol=1e-5)
    at_a = torch.isin(inputs["labels"], torch.tensor([0, 2, 3]))
    assert torch.equal(outputs.logits.argmax(-1)[at_a], predicted["A"])
    assert torch.equal(outputs.logits.argmax(-1)[~at_a & (inputs["labels"] != -100)], predicted["B"])


def test_multi_task_merge_labels_each_member_in_its_own_layer_and_scores_as_the_plain_one(tmp_path, data_root):
    cfg_plain, merged = corpus(data_root, tmp_path, "dataset.merge=plain")
    cfg_mtl, mtl = corpus(data_root, tmp_path, "dataset.merge=mtl")
    assert mtl.adapter.head == "mtl" and merged.adapter.head is None and mtl.adapter.special_tokens == ()
    assert "O@BioRED" in mtl.labels and "O@NCBIdisease" in mtl.labels and "B-Disease@NCBIdisease" in mtl.labels
    assert "B-Gene@NCBIdisease" not in mtl.labels and "B-Gene@BioRED" in mtl.labels
    assert mtl.adapter.types(mtl.labels) == merged.adapter.types(merged.labels)
    assert mtl.adapter.tasks() == {"BioRED": mtl.adapter.members["BioRED"]["types"], "NCBIdisease": ["Disease"]}
    for name in ("train", "dev", "test"):
        a, b = merged.splits[name].sentences, mtl.splits[name].sentences
        assert [s.tokens for s in a] == [s.tokens for s in b]
        assert [[t.partition("@")[0] for t in s.tags] for s in b] == [s.tags for s in a]
    biored = mtl.adapter.members["BioRED"]["test"]
    assert all(t.endswith("@BioRED") for i in biored for t in mtl.splits["test"].sentences[i].tags)
    # scored exactly as the plain merge: the same views of the same predictions (labels without the member)
    test = mtl.splits["test"].sentences
    gold = [s.tags for s in test]
    pred = [[("B-Gene" + t[t.index("@"):] if k == len(g) // 2 else t) for k, t in enumerate(g)] for g in gold]
    plain_pred = [[t.partition("@")[0] for t in p] for p in pred]
    tokens = [s.tokens for s in test]
    assert mtl.adapter.member_views("test", tokens, gold, pred) == merged.adapter.member_views(
        "test", tokens, [s.tags for s in merged.splits["test"].sentences], plain_pred)
    assert mtl.adapter.scored_view(tokens, gold, pred) == (tokens, [s.tags for s in merged.splits["test"].sentences], plain_pred)
    tags = mtl.adapter.run_tags()
    assert tags["aio_merge"] == "mtl" and tags["aio_slices"] == merged.adapter.run_tags()["aio_slices"]
    assert run_key(cfg_mtl) != run_key(cfg_plain) and run_params(cfg_mtl)["dataset.merge"] == "mtl"
    # the tagger's passes: each type in the member with the fewest types that has it
    assert mtl.adapter.passes({"Disease", "Gene"}, every=False) == [("BioRED", {"Gene"}), ("NCBIdisease", {"Disease"})]
    with pytest.raises(ValueError, match="tag.mode=all needs an all-in-one model"):
        mtl.adapter.passes({"Disease"}, every=False, mode="all")
    for bad, message in ((["model.head=crf", "scheme=vanilla"], "dataset.merge=mtl with model.head=crf: the multi-task head"),
                         (["evaluation.extra_tests=[bc5cdr_disease]"], "dataset.merge=mtl with evaluation.extra_tests")):
        with pytest.raises(ConfigError, match=message):
            spec.check(compose([f"data.root={data_root}", *TWO, "dataset.merge=mtl", *bad]))


def test_a_tiny_multi_task_run_scores_each_member_and_its_saved_model_tags_and_fine_tunes(tmp_path, data_root, monkeypatch):
    """End to end through the command line (in this process): an MTL run of two members records
    per-member scores and ``aio_merge=mtl``; the report counts it as the MTL setting; its saved model
    tags new text in plain IOB2, each type by its member's layer, and starts a run on another corpus
    (``model.init``) with a new output layer."""
    from bioner_grid import report
    from bioner_grid.bundle import Tagger
    from bioner_grid.report_aio import classify
    from conftest import run_inproc, runs

    monkeypatch.chdir(tmp_path)
    common = ["model=tiny_bert", "data.max_train_sentences=24", "data.max_eval_sentences=12", "train.epochs=1",
              "train.batch_size=16", f"data.cache={tmp_path}/cache"]
    run_inproc(tmp_path, data_root, *TWO, "dataset.merge=mtl", *common, out=tmp_path / "mtl")
    row = runs(tmp_path).iloc[0]
    assert row["status"] == "FINISHED" and row["tags.aio_merge"] == "mtl"
    for member in ("BioRED", "NCBIdisease"):
        assert 0 <= row[f"metrics.test_{member}_strict_f1"] <= 1
    predictions = (tmp_path / "mtl" / "predictions_test.conll").read_text().split("\n")
    assert all(len(line.split("\t")) == 3 and line.split("\t")[1].endswith("@BioRED") for line in predictions[:5])
    df = report.load_runs(f"sqlite:///{tmp_path}/mlflow.db", ["bioner-grid"])
    assert list(classify(df)["setting"]) == ["MTL"]

    tagger = Tagger(tmp_path / "mtl" / "model")
    assert tagger.types == sorted(set(tagger.adapter.tasks()["BioRED"]) | {"Disease"})
    assert tagger.plan(["Disease", "Chemical"]) == [("BioRED", {"Chemical"}), ("NCBIdisease", {"Disease"})]
    tags = tagger.tag_sentences([["Lithium", "toxicity", "in", "rats"], ["BRCA1", "mutations"]])
    assert [len(t) for t in tags] == [4, 2] and all(t == "O" or t[:2] in ("B-", "I-") and "@" not in t for s in tags for t in s)

    run_inproc(tmp_path, data_root, "dataset=ncbi_disease", f"model.init={tmp_path / 'mtl' / 'model'}", *common,
               "data.max_train_sentences=32", out=tmp_path / "init")
    init = runs(tmp_path).set_index("tags.dataset").loc["ncbi_disease"]
    assert init["status"] == "FINISHED" and Tagger(tmp_path / "init" / "model").types == ["Disease"]
