"""Save the scored model of a run (``train.save_model=true``) and log it to MLflow.

The run folder gets ``model/``, a bundle (``bioner_grid.bundle``: the format, its saving and
loading): the weights as safetensors, the tokenizer, and ``bioner_grid.json`` with the label list,
the head, the task tags and tasks, the window settings and the resolved run config.

The same folder is logged to the MLflow run as a pyfunc model wrapping our tagger
(``bioner_grid.bundle.Tagger``). MLflow's transformers flavour would log a token-classification
pipeline, which tokenises raw text its own way (no PubTator sentence split, no pre-split words, no
task tags, truncation at the model's length): it would not be the model the run scored. The pyfunc
model takes a table of texts and returns their entities with character offsets, exactly as
``python -m bioner_grid.tag`` does.

The pyfunc model is logged as code (MLflow's models-from-code, ``bioner_grid/tagger_model.py``),
not cloudpickled: loading it runs this package's code and unpickles nothing. Models logged before
hold a ``python_model.pkl``, which ``mlflow.pyfunc.load_model`` unpickles (MLflow's choice, from
their ``MLmodel``); ``python -m bioner_grid.tag`` loads them, as any, from their saved folder,
never from the pickle.
"""

from __future__ import annotations

import logging
import shutil
from importlib.metadata import version
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

from bioner_grid import bundle, runtime
from bioner_grid.documents import Document, Passage

log = logging.getLogger(__name__)

PACKAGE = Path(__file__).resolve().parent
MODEL_CODE = PACKAGE / "tagger_model.py"  # the pyfunc model as code: mlflow.models.set_model(TaggerModel())

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


class TaggerModel(mlflow.pyfunc.PythonModel):
    """The saved folder as an MLflow model: ``predict(DataFrame[id?, text], params={"types": "A,B"})``
    -> one row per entity (id, start, end, mention, type), offsets into each text."""

    def load_context(self, context):
        folder = context.artifacts["tagger"]
        device, precision = runtime.for_inference("auto", bundle.read_meta(folder).get("precision"))
        self.tagger = bundle.Tagger(folder, device, precision)

    # model_input's hint, a DataFrame: MLflow warns at class definition ("Add type hints to the `predict`
    # method") when there is none, and infers no schema from this one (pandas types are opaque to it), so
    # SIGNATURE above stays the model's schema. (A warnings filter cannot silence that warning: MLflow
    # raises it inside its own catch_warnings block.)
    def predict(self, context, model_input: pd.DataFrame, params=None):
        df = pd.DataFrame(model_input)
        ids = df["id"].astype(str).tolist() if "id" in df else [str(i) for i in range(len(df))]
        types = (params or {}).get("types", "all")
        types = None if types in (None, "", "all") else [t.strip() for t in types.split(",")]
        docs = [Document(i, [Passage(0, str(text))]) for i, text in zip(ids, df["text"])]
        self.tagger.tag_documents(docs, types)
        rows = [(d.id, s, e, d.passages[0].text[s:e], t) for d in docs for s, e, t in d.passages[0].entities]
        return pd.DataFrame(rows, columns=["id", "start", "end", "mention", "type"]).astype({"start": "int64", "end": "int64"})


def set_tagger_model() -> None:
    """The model of a logged model folder, handed to MLflow: what ``tagger_model.py`` runs when
    MLflow loads the model (models-from-code)."""
    mlflow.models.set_model(TaggerModel())


def log_model(folder: Path, run_id: str):
    """Log ``folder`` to run ``run_id`` as a pyfunc model (``mlflow.pyfunc.log_model`` less its
    fluent active run), the model given as code (``MODEL_CODE``), so that no pickle of it is written;
    returns MLflow's ModelInfo."""
    return mlflow.models.Model.log(
        artifact_path=None,
        name="model",
        flavor=mlflow.pyfunc,
        run_id=run_id,
        python_model=str(MODEL_CODE),  # a path: MLflow copies the file and runs it on load
        artifacts={"tagger": str(folder)},
        code_paths=[str(PACKAGE)],  # bioner_grid travels with the model: loads wherever its requirements are installed
        signature=SIGNATURE,
        input_example=INPUT_EXAMPLE,
        # given, not inferred: inference reloads the model in a subprocess to watch its imports
        pip_requirements=[f"{p}=={version(p)}" for p in ("torch", "transformers", "mlflow", "pandas", "omegaconf", "bioc")],
    )


def folder_size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def save_and_log(cfg, folder: Path, model, tokenizer, corpus, precision: str, run, keep_folder: bool = True) -> None:
    """``save`` then ``log_model``; the model URI and the folder's size (a tag, not a metric: it is
    no result of the run) are set as tags ``model_uri`` and ``model_size_mb``. ``keep_folder=False``
    (a sweep's job) removes ``folder`` once MLflow holds the model: one copy per model, not two
    (``tag model=<run id>``, ``register`` and ``mlflow.pyfunc.load_model`` read MLflow's)."""
    bundle.save(cfg, folder, model, tokenizer, corpus, precision)
    size = folder_size_mb(folder)
    info = run.log_model(lambda run_id: log_model(folder, run_id))  # run: a store.OpenRun
    run.set_tags({"model_uri": info.model_uri, "model_size_mb": f"{size:.1f}"})
    if keep_folder:
        log.info("model saved to %s (%.1f MB) and logged as %s", folder, size, info.model_uri)
    else:
        shutil.rmtree(folder)
        log.info("model logged as %s (%.1f MB; a sweep keeps no second copy in its run folder)", info.model_uri, size)
