"""The CRF head: IOB2-constrained Viterbi and training through the Trainer."""

import itertools

import pytest
import torch
from omegaconf import OmegaConf
from torchcrf import CRF
from transformers import DataCollatorForTokenClassification, TrainingArguments

from bioner_grid.align import make_windows
from bioner_grid.data import read_conll
from bioner_grid.heads import iob2_allowed, viterbi
from bioner_grid.modeling import build_model, load_tokenizer
from bioner_grid.train import WeightedLossTrainer, predict
from conftest import NCBI, ROOT

LABELS = ["O", "B-Chem", "I-Chem", "B-Dis", "I-Dis"]


def legal(path):
    prev = "O"
    for tag in (LABELS[i] for i in path):
        if tag.startswith("I-") and prev[2:] != tag[2:]:
            return False
        prev = tag
    return True


def path_score(path, em, start, trans, end):
    s = start[path[0]] + em[0, path[0]] + end[path[-1]]
    return float(s + sum(trans[a, b] + em[i + 1, b] for i, (a, b) in enumerate(zip(path, path[1:]))))


@torch.no_grad()
def test_viterbi_is_the_best_legal_path_and_never_illegal():
    torch.manual_seed(0)
    allowed, allowed_start = iob2_allowed(LABELS)
    n_illegal_unconstrained = 0
    for trial in range(30):
        crf = CRF(len(LABELS), batch_first=True)
        torch.nn.init.normal_(crf.transitions, std=3)
        torch.nn.init.normal_(crf.start_transitions, std=3)
        emissions = torch.randn(3, 5, len(LABELS)) * 3
        mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
        paths = viterbi(emissions, mask, crf.start_transitions, crf.transitions, crf.end_transitions, allowed, allowed_start)
        n_illegal_unconstrained += sum(not legal(p) for p in crf.decode(emissions, mask))
        for b, path in enumerate(paths):
            n = int(mask[b].sum())
            assert len(path) == n and legal(path)
            best = max((p for p in itertools.product(range(len(LABELS)), repeat=n) if legal(p)),
                       key=lambda p: path_score(p, emissions[b], crf.start_transitions, crf.transitions, crf.end_transitions))
            assert path_score(path, emissions[b], crf.start_transitions, crf.transitions, crf.end_transitions) == pytest.approx(
                path_score(best, emissions[b], crf.start_transitions, crf.transitions, crf.end_transitions))
    assert n_illegal_unconstrained > 0  # the unconstrained decoder does emit illegal paths here


def test_iob2_allowed_transitions():
    allowed, start = iob2_allowed(["O", "B-A", "I-A", "B-B", "I-B"])
    assert start.tolist() == [True, True, False, True, False]
    assert allowed[1, 2] and allowed[2, 2] and not allowed[0, 2] and not allowed[3, 2] and not allowed[4, 2]
    assert allowed[4, 1] and allowed[0, 3]


@pytest.fixture(scope="module")
def trained_crf(tmp_path_factory, data_root):
    """A tiny CRF model trained 3 steps on 32 NCBI sentences (windows of 24 sub-tokens), and its
    predictions of those sentences."""
    tmp_path = tmp_path_factory.mktemp("crf")
    real = OmegaConf.load(ROOT / "conf" / "model" / "tiny_bert.yaml")
    cfg = OmegaConf.merge(real, {"head": "crf"})
    tokenizer = load_tokenizer(cfg)
    labels = ["O", "B-Disease", "I-Disease"]
    sents = read_conll(NCBI / "train.tsv", "Disease").sentences[:32]
    windows = make_windows(tokenizer, sents, {label: i for i, label in enumerate(labels)}, 24)  # windows too
    torch.manual_seed(0)
    model = build_model(cfg, labels, tokenizer)
    assert type(model).__name__ == "CRFTagger"
    args = TrainingArguments(str(tmp_path), max_steps=3, per_device_train_batch_size=8, per_device_eval_batch_size=8,
                             learning_rate=5e-3, use_cpu=True, report_to="none", save_strategy="no", disable_tqdm=True)
    trainer = WeightedLossTrainer(model=model, args=args, train_dataset=[w.features() for w in windows],
                                  data_collator=DataCollatorForTokenClassification(tokenizer))
    out = trainer.train()
    predicted = predict(trainer, windows, dict(enumerate(labels)), len(sents))
    return tokenizer, labels, sents, model, predicted, out.training_loss


def test_crf_head_trains_and_predicts_legal_tags(trained_crf):
    _, _, sents, _, predicted, loss = trained_crf
    assert loss > 0
    assert [len(p) for p in predicted] == [len(s.tokens) for s in sents]
    for tags in predicted:
        assert all(not (t.startswith("I-") and (i == 0 or tags[i - 1] == "O")) for i, t in enumerate(tags))


def test_a_crf_bundle_loads_and_tags_as_the_trained_model_predicted(trained_crf, tmp_path):
    """The CRF head saves and loads itself (``CRFTagger.save``/``load``, through ``bundle``): the
    folder holds one state dict and the encoder's config, and the tagger reproduces the trainer's
    predictions, also from a folder whose bioner_grid.json predates ``precision`` (the first
    saved format: fp32 assumed)."""
    import json

    from bioner_grid import bundle
    from bioner_grid.config import compose
    from bioner_grid.corpus import Corpus, Split
    from bioner_grid.heads import CRFTagger

    tokenizer, labels, sents, model, predicted, _ = trained_crf
    cfg = compose(["debug=quick", "model.head=crf", "scheme=vanilla", "train.max_seq_length=24"])
    folder = bundle.save(cfg, tmp_path / "model", model, tokenizer, Corpus("ncbi", {"train": Split(sents, "train.tsv")}))
    meta = json.loads((folder / bundle.META).read_text())
    assert (meta["head"], meta["labels"], meta["tasks"], meta["special_tokens"]) == ("crf", labels, {}, [])
    tagger = bundle.Tagger(folder)
    assert isinstance(tagger.model, CRFTagger)
    state = model.state_dict()
    assert all(torch.equal(state[k].cpu(), v) for k, v in tagger.model.state_dict().items())
    assert tagger.tag_sentences([s.tokens for s in sents]) == predicted
    del meta["precision"]
    (folder / bundle.META).write_text(json.dumps(meta))
    assert bundle.Tagger(folder).tag_sentences([s.tokens for s in sents]) == predicted
