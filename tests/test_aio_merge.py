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
