"""model.init: fine-tuning a saved bioner-grid model on a corpus with another label set (issue 22,
AIONER-Pretrained's new entity types), and its refusal when the model config does not fit it."""

import pytest
import torch
from omegaconf import OmegaConf
from transformers import BertTokenizerFast

from bioner_grid import bundle, errors
from bioner_grid.config import compose
from bioner_grid.identity import identity, run_key
from bioner_grid.modeling import build_from_saved, check_saved
from conftest import ROOT, SLICE, run_inproc, runs

CAPS = ["data.max_train_sentences=32", "data.max_eval_sentences=16", "train.epochs=1"]
TINY = OmegaConf.load(ROOT / "conf" / "model" / "tiny_bert.yaml")


@pytest.fixture(scope="module")
def disease_model(tmp_path_factory, data_root):
    """A tiny_bert run on a slice of NCBI-disease (Disease only), its saved model's folder."""
    tmp = tmp_path_factory.mktemp("disease")
    run_inproc(tmp, data_root, *SLICE, *CAPS, "dataset=ncbi_disease", f"data.cache={tmp}/cache",
               out=tmp / "disease")
    return tmp / "disease" / "model"


def test_a_saved_encoder_under_a_new_output_layer(disease_model):
    meta, tokenizer = check_saved(TINY, disease_model, "model.init")
    assert meta["labels"] == ["O", "B-Disease", "I-Disease"]
    labels = ["O", "B-Chemical", "I-Chemical", "B-Gene", "I-Gene"]
    model = build_from_saved(TINY, disease_model, meta, labels, tokenizer)
    saved = bundle.load_model(disease_model, meta)
    for name, weight in saved.base_model.state_dict().items():  # every encoder weight is the saved one
        assert torch.equal(model.base_model.state_dict()[name], weight), name
    assert model.classifier.out_features == 5 and model.config.id2label[3] == "B-Gene"
    assert saved.classifier.out_features == 3  # the saved model itself is untouched


def test_a_run_fine_tunes_the_saved_model_on_a_new_type(tmp_path, data_root, disease_model):
    result = run_inproc(tmp_path, data_root, *SLICE, *CAPS, "dataset=bc5cdr_chem", f"model.init={disease_model}",
                        f"data.cache={tmp_path}/cache", out=tmp_path / "chem")
    meta = bundle.read_meta(tmp_path / "chem" / "model")
    assert meta["labels"] == ["O", "B-Chemical", "I-Chemical"] and meta["config"]["model"]["init"] == str(disease_model)
    tagger = bundle.Tagger(tmp_path / "chem" / "model")
    assert tagger.types == ["Chemical"]
    tags = tagger.tag_sentences([["Cocaine", "induced", "seizures", "in", "rats", "."]])
    assert len(tags[0]) == 6 and set(tags[0]) <= {"O", "B-Chemical", "I-Chemical"}
    # model.init is in the run key when set; unset, the key is the one runs recorded before it had
    plain = compose([f"data.root={data_root}", *SLICE, *CAPS, "dataset=bc5cdr_chem"])
    assert "init" not in identity(plain)["model"]
    assert run_key(plain) != result["run_key"]
    assert run_key(compose([f"data.root={data_root}", *SLICE, *CAPS, "dataset=bc5cdr_chem", f"model.init={disease_model}"])) == result["run_key"]


def test_a_saved_model_of_another_family_or_tokenizer_is_refused(tmp_path, data_root, disease_model, capsys):
    with pytest.raises(errors.JobFailed) as e:
        run_inproc(tmp_path, data_root, *SLICE, *CAPS, "dataset=bc5cdr_chem", f"model.init={disease_model}",
                   "model.family=roberta", out=tmp_path / "family")
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.init=" in err[0] and "a bert model, not model.family=roberta" in err[0]
    vocab = tmp_path / "vocab.txt"  # a BERT tokenizer with another (tiny) vocabulary
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "cocaine", "rats"]) + "\n")
    BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(tmp_path / "other_tokenizer")
    with pytest.raises(errors.JobFailed) as e:
        run_inproc(tmp_path, data_root, *SLICE, *CAPS, "dataset=bc5cdr_chem", f"model.init={disease_model}",
                   "model.tokenizer.source=path", f"model.tokenizer.name_or_path={tmp_path / 'other_tokenizer'}",
                   out=tmp_path / "tokenizer")
    assert e.value.code == 2 and "its tokenizer" in capsys.readouterr().err
    assert not (tmp_path / "mlflow.db").exists() or runs(tmp_path).empty  # nothing recorded
