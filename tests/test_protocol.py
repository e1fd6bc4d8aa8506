"""The WeLT authors' protocol as a preset: welt_grid composes it; train+dev training with the class
weights counted on train alone."""

import pytest

from bioner_grid.config import compose
from bioner_grid.errors import ConfigError
from bioner_grid.pipeline import prepare
from bioner_grid.weights import count_classes, scheme_weights


def test_welt_grid_job_trains_as_the_authors_did():
    cfg = compose(["experiment=welt_grid", "model=pubmedbert", "dataset=bc5cdr_chem", "scheme=welt"])
    t = cfg.train
    assert (float(t.lr), t.warmup_ratio, t.weight_decay, t.patience, t.select, t.seed) == (5e-5, 0.0, 0.0, None, "last", 1)
    assert (t.epochs, t.batch_size, t.max_seq_length) == (75, 5, 512)  # the authors' PubMedBERT x BC5CDR-chem row
    assert cfg.data.train_on == "train+dev" and cfg.model.name == "pubmedbert"
    dev = compose(["experiment=welt_grid_dev", "model=pubmedbert", "dataset=bc5cdr_chem"])
    assert (dev.train.select, dev.train.patience, dev.data.train_on, dev.grid.name) == ("best_dev", 2, "train", "welt_grid_dev")
    assert (float(dev.train.lr), dev.train.warmup_ratio, dev.train.epochs, dev.train.batch_size) == (5e-5, 0.0, 75, 5)
    anyrun = compose(["train=welt_authors"])  # the preset alone, for any run
    assert (anyrun.train.select, anyrun.train.warmup_ratio, anyrun.train.batch_size) == ("last", 0.0, 32)


def test_train_plus_dev_trains_on_both_and_counts_weights_on_train(tmp_path, data_root):
    caps = [f"data.root={data_root}", "model=tiny_bert", "data.max_train_sentences=50", "data.max_eval_sentences=30",
            "scheme=welt", "train.device=cpu"]
    plain = prepare(compose(caps), tmp_path)
    both = prepare(compose(caps + ["train=welt_authors", "data.train_on=train+dev"]), tmp_path)
    train, dev = plain.corpus.splits["train"].sentences, plain.corpus.splits["dev"].sentences
    assert len(train) == 50 and len(both.corpus.splits["train"].sentences) == 80
    assert both.corpus.splits["train"].sentences == train + dev
    assert both.corpus.splits["dev"].sentences == dev  # still scored, chooses nothing
    assert both.counts == plain.counts == count_classes(train, plain.corpus.labels, False)
    assert both.counts != count_classes(train + dev, plain.corpus.labels, False)
    assert both.weights == scheme_weights("welt", plain.counts, None) == plain.weights
    assert both.args.load_best_model_at_end is False


def test_train_plus_dev_refuses_to_choose_on_dev(tmp_path, data_root):
    with pytest.raises(ConfigError, match="data.train_on=train\\+dev: trains on dev, so nothing may be chosen or stopped on it: "
                                         "set train.select=last and train.patience=null"):
        prepare(compose([f"data.root={data_root}", "model=tiny_bert", "data.max_train_sentences=20",
                         "data.max_eval_sentences=10", "data.train_on=train+dev"]), tmp_path)
    with pytest.raises(ConfigError, match="^data.train_on=dev: must be one of train, train\\+dev$"):
        prepare(compose([f"data.root={data_root}", "model=tiny_bert", "data.max_train_sentences=20",
                         "data.max_eval_sentences=10", "data.train_on=dev"]), tmp_path)
