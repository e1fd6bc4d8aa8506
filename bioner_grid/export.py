"""Save the scored model of a run (``train.save_model=true``) and log it to MLflow.

The run folder gets ``model/``: the weights as safetensors, the tokenizer (with an all-in-one
model's task tags as special tokens), and ``bioner_grid.json`` with the label list, the task tags
and tasks, the window settings (``max_seq_length``) and the resolved run config. A softmax-head
folder loads in plain transformers (``AutoModelForTokenClassification.from_pretrained``).

The same folder is logged to the MLflow run as a pyfunc model wrapping our tagger
(``bioner_grid.tag.Tagger``). MLflow's transformers flavour would log a token-classification
pipeline, which tokenises raw text its own way (no PubTator sentence split, no pre-split words, no
task tags, truncation at the model's length): it would not be the model the run scored. The pyfunc
model takes a table of texts and returns their entities with character offsets, exactly as
``python -m bioner_grid.tag`` does.
"""

from __future__ import annotations

import json
import logging
import warnings
from importlib.metadata import version
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema
from omegaconf import OmegaConf
from safetensors.torch import save_file

from bioner_grid import redact
from bioner_grid.tag import META, Document, Passage, Tagger

log = logging.getLogger(__name__)

PACKAGE = Path(__file__).resolve().parent

SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string", "text"), ColSpec("string", "id", required=False)]),
    outputs=Schema([ColSpec("string", "id"), ColSpec("long", "start"), ColSpec("long", "end"),
                    ColSpec("string", "mention"), ColSpec("string", "type")]),
    params=ParamSchema([ParamSpec("types", "string", "all")]),  # comma-separated, e.g. "Chemical,Disease"
)
INPUT_EXAMPLE = pd.DataFrame({
    "id": ["example"],
    "text": ["Familial breast and ovarian cancer is caused by mutations in BRCA1. Tamoxifen reduced the risk."],
})


def save(cfg, folder: Path, model, tokenizer, corpus, precision: str = "fp32") -> Path:
    """Model, tokenizer and ``bioner_grid.json`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    head = cfg.model.head
    if head == "crf":  # our own module: its state dict (encoder + emissions + transitions) and the encoder config
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / "model.safetensors"))
        model.config.save_pretrained(folder)
    else:
        model.save_pretrained(folder)  # safetensors
    tokenizer.save_pretrained(folder)
    tasks: dict[str, list[str]] = {}
    for member in corpus.members.values():
        tasks[member["task"]] = sorted(set(tasks.get(member["task"], [])) | set(member["types"]))
    meta = {
        "labels": list(corpus.labels),
        "special_tokens": list(corpus.special_tokens),  # AIONER's task tags
        "tasks": tasks,  # task -> entity types it tags (all-in-one models only)
        "max_seq_length": int(cfg.train.max_seq_length),
        "head": head,
        "precision": precision,  # what the run was trained and scored in: the tagger predicts in it too
        "model": cfg.model.name, "dataset": cfg.dataset.name, "scheme": cfg.scheme.name,
        "config": redact.container(OmegaConf.to_container(cfg, resolve=True)),  # no secret in a shared model
    }
    (folder / META).write_text(json.dumps(meta, indent=2, default=str) + "\n", encoding="utf-8")
    return folder


# MLflow warns at class definition that predict has no type hints; the signature above is explicit
# (type hints would replace it with one inferred from them).
warnings.filterwarnings("ignore", message=".*Add type hints to the `predict` method", category=UserWarning)


class TaggerModel(mlflow.pyfunc.PythonModel):
    """The saved folder as an MLflow model: ``predict(DataFrame[id?, text], params={"types": "A,B"})``
    -> one row per entity (id, start, end, mention, type), offsets into each text."""

    def load_context(self, context):
        self.tagger = Tagger(context.artifacts["tagger"])

    def predict(self, context, model_input, params=None):
        df = pd.DataFrame(model_input)
        ids = df["id"].astype(str).tolist() if "id" in df else [str(i) for i in range(len(df))]
        types = (params or {}).get("types", "all")
        types = None if types in (None, "", "all") else [t.strip() for t in types.split(",")]
        docs = [Document(i, [Passage(0, str(text))]) for i, text in zip(ids, df["text"])]
        self.tagger.tag_documents(docs, types)
        rows = [(d.id, s, e, d.passages[0].text[s:e], t) for d in docs for s, e, t in d.passages[0].entities]
        return pd.DataFrame(rows, columns=["id", "start", "end", "mention", "type"]).astype({"start": "int64", "end": "int64"})


def log_model(folder: Path):
    """Log ``folder`` to the active run as a pyfunc model; returns MLflow's ModelInfo."""
    return mlflow.pyfunc.log_model(
        name="model",
        python_model=TaggerModel(),
        artifacts={"tagger": str(folder)},
        code_paths=[str(PACKAGE)],  # bioner_grid travels with the model: loads wherever its requirements are installed
        signature=SIGNATURE,
        input_example=INPUT_EXAMPLE,
        # given, not inferred: inference reloads the model in a subprocess to watch its imports
        pip_requirements=[f"{p}=={version(p)}" for p in ("torch", "transformers", "mlflow", "pandas", "omegaconf", "bioc")],
    )


def folder_size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def save_and_log(cfg, folder: Path, model, tokenizer, corpus, precision: str = "fp32") -> None:
    """``save`` then ``log_model``; the model URI and the folder's size (a tag, not a metric: it is
    no result of the run) are set as tags ``model_uri`` and ``model_size_mb``."""
    save(cfg, folder, model, tokenizer, corpus, precision)
    size = folder_size_mb(folder)
    info = log_model(folder)
    mlflow.set_tags({"model_uri": info.model_uri, "model_size_mb": f"{size:.1f}"})
    log.info("model saved to %s (%.1f MB) and logged as %s", folder, size, info.model_uri)
