"""The saved model (a bundle): its folder format, saving, loading, and tagging sentences with it.

A bundle folder holds
- the weights as safetensors, saved by the head (``heads``): a softmax-head folder is transformers'
  own and loads in plain transformers (``AutoModelForTokenClassification.from_pretrained``); a CRF
  folder holds one state dict and the encoder's config;
- the tokenizer (with an all-in-one model's task tags as special tokens);
- ``bioner_grid.json`` (``META``): the label list, the head, the precision the run was scored in,
  the task tags and tasks (all-in-one models), the window settings (``max_seq_length``), the
  model/dataset/scheme names and the resolved run config, secrets masked.

Every folder written since saving began loads: a key added later (``precision``) has the value the
folders written before it had (fp32); the folder layout itself has not changed.
Weights are read from safetensors only (a pickle can run code when loaded).

``Tagger`` tags pre-split sentences (and ``documents.Document``s) with a bundle on a device and in
a precision its caller chose (``runtime.for_inference``): ``tag`` and ``export``'s MLflow model use it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from omegaconf import OmegaConf
from tqdm.auto import tqdm
from transformers import AutoTokenizer, DataCollatorForTokenClassification

from bioner_grid import redact, tagmodes
from bioner_grid.aio import AllInOne, MultiTask
from bioner_grid.align import by_length, make_windows, predictions_to_tags
from bioner_grid.corpus import Adapter, DataError, Sentence, entity_spans
from bioner_grid.heads import SAVED_HEADS, head_of

META = "bioner_grid.json"  # label list, head, task tags, window settings and run config of a saved model


def save(cfg, folder: Path, model, tokenizer, corpus, precision: str = "fp32") -> Path:
    """Model (as its head saves it), tokenizer and ``META`` into ``folder``; returns ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    head = head_of(model)
    head.save(model, folder)
    tokenizer.save_pretrained(folder)
    meta = {
        "labels": list(corpus.labels),
        "special_tokens": list(corpus.adapter.special_tokens),  # AIONER's task tags
        "tasks": corpus.adapter.tasks(),  # task -> entity types it tags (all-in-one models only)
        "max_seq_length": int(cfg.train.max_seq_length),
        "head": head.name,
        "precision": precision,  # what the run was trained and scored in: the tagger predicts in it too
        "model": cfg.model.name, "dataset": cfg.dataset.name, "scheme": cfg.scheme.name,
        "config": redact.container(OmegaConf.to_container(cfg, resolve=True)),  # no secret in a shared model
    }
    (folder / META).write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
    return folder


def read_meta(folder: Path) -> dict:
    """``META`` of a bundle folder; ``DataError`` (``file:line: problem``) when it is not one."""
    path = Path(folder) / META
    if not path.is_file():
        raise DataError(f"{path}:0: no label list: not a model folder saved by bioner_grid (train.save_model=true)")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise DataError(f"{path}:{getattr(e, 'lineno', 0)}: not JSON ({e})") from None
    for key in ("labels", "max_seq_length"):
        if key not in meta:
            raise DataError(f"{path}:1: no {key!r}")
    return meta


def adapter(meta: dict) -> Adapter:
    """The corpus adapter a saved model was trained with: all-in-one when it has tasks, multi-task
    when its head is one layer per member."""
    tasks = meta.get("tasks") or {}
    if meta.get("head") == MultiTask.head:  # one output layer per member: its tasks are the members
        return MultiTask(saved_tasks=tasks)
    return AllInOne(tuple(meta.get("special_tokens") or ()), saved_tasks=tasks) if tasks else Adapter()


def load_model(folder: Path, meta: dict):
    """The saved model, on the CPU, as its head loads it."""
    return SAVED_HEADS[meta.get("head") or "softmax"].load(Path(folder), meta["labels"])


class Tagger:
    """A bundle ready to tag: its model on ``device``, predicting in ``precision`` (both as
    ``runtime.for_inference`` chose them), with its labels, tasks and window settings."""

    def __init__(self, folder: str | Path, device: str = "cpu", precision: str = "fp32", batch_size: int = 32):
        folder = Path(folder)
        self.meta = read_meta(folder)
        self.labels: list[str] = self.meta["labels"]
        self.adapter = adapter(self.meta)
        self.max_seq_length = int(self.meta["max_seq_length"])
        self.batch_size = int(batch_size)
        self.device, self.precision = device, precision
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = load_model(folder, self.meta).to(device).eval()
        self.head = head_of(self.model)

    @property
    def types(self) -> list[str]:
        return self.adapter.types(self.labels)

    def plan(self, types: list[str] | None, mode: str = "auto") -> list[tuple[str | None, set[str]]]:
        """(task, types kept) per pass over the text: one pass for a single-corpus model; an
        all-in-one model's passes are its adapter's for ``tag.mode`` (``tagmodes.passes``)."""
        known = set(self.types)
        asked = set(types) if types else known
        unknown = asked - known
        if unknown:
            raise DataError(f"tag.types:0: the model knows {sorted(known)}, not {sorted(unknown)}")
        try:
            return self.adapter.passes(asked, every=not types, mode=mode)
        except ValueError as e:  # a mode the model cannot do (tagmodes.passes)
            raise DataError(f"tag.mode:0: {e}") from None

    def tag_sentences(self, sentences: list[list[str]], types: list[str] | None = None, progress: bool = False,
                      mode: str = "auto") -> list[list[str]]:
        """Predicted tags of every word of every sentence, types not asked set to ``O``. With several
        passes (an all-in-one model in ``tag.mode`` individual or combined, asked for types of
        different tasks) overlapping entities are resolved by AIONER's rule, the longest kept
        (``tagmodes.merge``; ties: earliest start, then the model's type order)."""
        outputs = [tagmodes.only(self.predict_pass(sentences, task, progress), keep)
                   for task, keep in self.plan(types, mode)]
        return outputs[0] if len(outputs) == 1 else tagmodes.merge(outputs, self.types)

    def predict_pass(self, sentences: list[list[str]], task: str | None, progress: bool = False) -> list[list[str]]:
        """One pass over the sentences, read under ``task`` (an all-in-one model's task tags; None: none)."""
        batch = [self.adapter.wrap(Sentence(words, ["O"] * len(words)), task) for words in sentences]
        return [self.adapter.unwrap(s.tokens, p) for s, p in zip(batch, self._predict(batch, progress))]

    def _predict(self, sentences: list[Sentence], progress: bool) -> list[list[str]]:
        label2id = {label: i for i, label in enumerate(self.labels)}
        sentences = [Sentence(s.tokens, [t if t in label2id else self.labels[0] for t in s.tags]) for s in sentences]
        windows = by_length(make_windows(self.tokenizer, sentences, label2id, self.max_seq_length))
        collate = DataCollatorForTokenClassification(self.tokenizer)
        rows = []
        autocast = torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.precision == "bf16")
        with torch.inference_mode(), autocast, \
                tqdm(total=len(windows), unit="window", disable=not progress, file=sys.stderr) as bar:
            for i in range(0, len(windows), self.batch_size):
                chunk = windows[i:i + self.batch_size]
                inputs = {k: v.to(self.device) for k, v in collate([w.features() for w in chunk]).items()}
                rows.extend(self.model(**self.head.inference_inputs(inputs)).logits.argmax(dim=-1).cpu())
                bar.update(len(chunk))
        return predictions_to_tags(windows, rows, dict(enumerate(self.labels)), len(sentences))

    def tag_documents(self, docs, types: list[str] | None = None, progress: bool = False, mode: str = "auto") -> None:
        """Fill every passage's sentences (token spans, tags) and entities (start, end, type) of
        ``documents.Document``s."""
        spans = [(p, s) for d in docs for p in d.passages for s in p.sentence_spans()]
        tags = self.tag_sentences([[p.text[a:b] for a, b in s] for p, s in spans], types, progress, mode)
        for p in {id(p): p for d in docs for p in d.passages}.values():
            p.sentences, p.entities = [], []
        for (p, s), t in zip(spans, tags):
            p.sentences.append((s, t))
            p.entities += [(s[start][0], s[end - 1][1], etype) for etype, start, end in entity_spans(t)]
