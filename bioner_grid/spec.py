"""RunSpec: the one closed, typed specification of a run, and every rule it must satisfy.

Two layers, both here and nowhere else:

1. **Schemas** (dataclasses, stored in Hydra's ConfigStore by ``register`` and named first in each
   group yaml's ``defaults``): every group is *closed* and *typed*. A key no schema lists
   (``train.lrr=1e-4``) or a value of the wrong type (``train.lr=abc``) fails at compose time;
   ``compose_error`` turns Hydra's multi-line report into one line naming the key and the nearest
   valid one: ``train.lrr: no such key (did you mean train.lr?)``. Defaults live in these
   schemas (and the yaml files) only: code reads ``cfg.train.select``, never
   ``cfg.train.get("select", "best_dev")``. A new key goes here first.

2. **Rules** (``problems``): value and cross-field checks on a composed config, each message
   naming its key. The same function runs in the job (``pipeline.prepare``), in ``plan``, in a
   sweep's preflight (every job, before anything is submitted: ``grid.select_jobs``) and in the
   Hydra callback before a single run creates its folder. The rules that need the corpus
   (``check_training_data``) are written here too and called where the data is read.

The schemas add no key that changes a run key: a key a yaml file did not have (``download`` of
``conll_files``) is one ``identity`` leaves out.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from bioner_grid import cross
from bioner_grid.errors import ConfigError, DataError

# ---------------------------------------------------------------------------------------------
# Schemas


@dataclass
class TrainSchema:
    lr: float = 1e-4
    batch_size: int = 32
    eval_batch_size: int = 64
    epochs: int = 5
    max_steps: int = -1
    seed: int = 42
    max_seq_length: int = 128
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    grad_accum: int = 1
    select: str = "best_dev"
    patience: Optional[int] = 2
    precision: str = "auto"
    device: str = "auto"
    length_grouped: bool = True
    checkpoint_steps: Optional[int] = None
    keep_checkpoints: bool = False
    save_model: bool = True
    force: bool = False
    # The collapse sentinel (bioner_grid.collapse): stop a run whose loss is not finite, or that
    # predicted no entity on dev for `collapse_after` evaluations in a row while its loss stopped falling.
    stop_collapsed: bool = True
    collapse_after: int = 2


@dataclass
class GridSchema:
    """How a sweep launches (``conf/config.yaml`` documents each key)."""

    name: str = "adhoc"
    preflight: bool = True
    skip_finished: bool = True
    wait: bool = True
    heartbeat_s: float = 60.0
    on_error: str = "continue"
    on_timeout_below_estimate: str = "warn"  # SLURM: timeout_min below a job's estimated training time: warn | fail


@dataclass
class SearchSchema:
    """What a job of an adaptive search (``hydra/sweeper=optuna``, ``bioner_grid.search``) needs to
    report to its Optuna trial; set by the sweeper on each job's command line, null outside a search.
    Not part of the run key (``identity``): a trial's configuration is the same experiment as a grid's."""

    trial: Optional[int] = None     # the Optuna trial number this job is
    study: Optional[str] = None     # the study's name
    storage: Optional[str] = None   # the study's storage URL (sqlite:///…, postgresql://…, or a journal file)


@dataclass
class PrunerSchema:
    """``hydra.sweeper.pruner``: when a search stops a trial early (``bioner_grid.search.make_pruner``)."""

    kind: str = "median"            # median | halving | none
    n_startup_trials: int = 2       # median: no trial is pruned before this many trials are COMPLETE
    n_warmup_steps: int = 0         # median: evaluations a trial always gets before it can be pruned
    min_resource: int = 1           # halving: evaluations before the first rung
    reduction_factor: int = 3       # halving: 1/reduction_factor of the trials reach each next rung


@dataclass
class SamplerSchema:
    kind: str = "tpe"               # tpe | random
    seed: int = 42


@dataclass
class OptunaSweeperSchema:
    """``hydra/sweeper=optuna`` (``conf/hydra/sweeper/optuna.yaml``): the Hydra Optuna sweeper's
    interface (``n_trials``, ``n_jobs``, ``direction``, ``study_name``, ``storage``, ``sampler.seed``,
    search spaces as overrides) on bioner-grid's own sweeper (``bioner_grid_launcher.optuna_sweeper``)."""

    _target_: str = "hydra_plugins.bioner_grid_launcher.optuna_sweeper.OptunaSweeper"
    n_trials: int = 20              # the study's total: a relaunch runs only the trials still missing
    n_jobs: int = 1                 # trials launched together (one batch), through hydra/launcher
    direction: str = "maximize"
    metric: str = "dev_strict_f1"   # dev_strict_f1 | dev_f1: chosen on dev, never test
    study_name: Optional[str] = None  # null: <grid.name>-<hash of the command's overrides and settings>
    storage: Optional[str] = None   # null: beside the tracking store (bioner_grid.search.default_storage)
    sampler: SamplerSchema = field(default_factory=SamplerSchema)
    pruner: PrunerSchema = field(default_factory=PrunerSchema)
    params: Optional[Dict[str, str]] = None  # the search space as a mapping (the plugin's hydra.sweeper.params)


@dataclass
class DataSchema:
    root: str = MISSING
    max_train_sentences: Optional[int] = None
    max_eval_sentences: Optional[int] = None
    train_on: str = "train"
    # Training documents (BIO: sentences) also in an evaluation split: drop | warn | fail
    # (bioner_grid.overlap). Its default is the dataset's: ``overlap_default``.
    overlap: str = "${overlap_default:${dataset.format}}"
    cache: str = "outputs/cache"
    # A learning curve's training size (bioner_grid.corpus.nested_subsample): a fraction in (0, 1] or a
    # number of training documents (PubTator; sentences for BIO), nested for one train.seed; null = all.
    train_fraction: Optional[float] = None
    train_documents: Optional[int] = None
    upstream_pubtator: str = MISSING
    upstream: str = MISSING


@dataclass
class EvaluationSchema:
    faireval_focus: str = "target"
    error_examples: int = 20
    # Other datasets' test splits the model is scored on too (bioner_grid.cross): cross/<dataset>/strict_f1, ...
    extra_tests: List[str] = field(default_factory=list)
    # An extra test set's type -> the model's (same name by default). Untyped and null, as PubtatorDataset.types
    # is ???: a mapping there (typed or not, even empty) would refuse a whole one given on the command line
    # ("evaluation.type_map={DISO: Disease}") key by key.
    type_map: Any = None


@dataclass
class ReportSchema:
    experiment: str = MISSING
    filter: str = ""
    out: str = "outputs/report"
    split: str = "test"
    mode: str = "strict"
    # Paired bootstrap (bioner_grid.significance): one count and seed for every interval, p-value and
    # tie mark of the report, and the default of the significance command, so both give the same numbers.
    resamples: int = 10000
    seed: int = 0


@dataclass
class TrackingSchema:
    uri: str = MISSING
    artifact_location: Optional[str] = None
    experiment: str = "bioner-grid"
    system_metrics: bool = True
    retry_s: float = 300.0  # how long a busy or away store is retried before the job stops (store.RunStore)


@dataclass
class SchemeSchema:
    name: str = MISSING
    label: str = MISSING
    kind: str = MISSING
    beta: Optional[float] = None
    per_label: bool = False


@dataclass
class ModelSchema:
    """A pretrained model (``source``: hub, package or path)."""

    name: str = MISSING
    display_name: Optional[str] = None  # how reports name it (MiniLM); None: the name. Not in the run key
    family: str = "bert"
    source: str = MISSING
    name_or_path: Optional[str] = MISSING
    revision: Optional[str] = None
    add_prefix_space: bool = False
    head: str = "softmax"
    resources: Dict[str, Any] = field(default_factory=dict)
    # A saved bioner-grid model to start from (run id, models:/name/version or folder): its encoder
    # and tokenizer, a new output layer for this corpus's labels (modeling.build_from_saved).
    init: Optional[str] = None


@dataclass
class TokenizerSchema:
    source: str = MISSING
    name_or_path: str = MISSING


@dataclass
class RandomModelSchema(ModelSchema):
    """A randomly initialised model (``source: random``) built from ``architecture``, with the
    tokenizer of another model."""

    tokenizer: TokenizerSchema = field(default_factory=TokenizerSchema)
    architecture: Dict[str, Any] = field(default_factory=dict)


@dataclass
class Download:
    url: str = MISSING
    sha256: Optional[str] = None


@dataclass
class ConllDataset:
    """A BIO TSV corpus (``format: conll``)."""

    name: str = MISSING
    display_name: Optional[str] = None  # how reports name it (NCBI-disease); None: the name. Not in the run key
    format: str = "conll"
    train: str = MISSING
    dev: Optional[str] = None
    test: Optional[str] = None
    entity_type: str = "Entity"
    split: Optional[float] = None
    dev_fraction: float = 0.1
    split_seed: int = 42
    download: Optional[Dict[str, Download]] = None


@dataclass
class PubtatorDataset(ConllDataset):
    """A PubTator corpus (``format: pubtator``), its source types mapped to output types."""

    format: str = "pubtator"
    dev_documents: Optional[int] = None
    # {output type: [source types]}. Untyped (Any): a typed mapping left at ??? would refuse a whole
    # mapping given on the command line ("dataset.types={Disease: [Disease]}") key by key.
    types: Any = MISSING


@dataclass
class AioMember:
    name: str = MISSING
    task: str = MISSING
    train: str = MISSING
    test: str = MISSING
    types: Any = MISSING  # as PubtatorDataset.types
    # Endings cut off this member's entity spans before conversion (AIONER: " cell", " cells" of
    # BioID's cell lines); counted in the conversion report, in the run key when not empty.
    strip_suffixes: List[str] = field(default_factory=list)
    types_only: Optional[List[str]] = None  # keep only these output types (BioRED's Disease: AIONER's BL2)


@dataclass
class AioDataset:
    """AIONER's all-in-one corpus (``format: aio``): member PubTator corpora merged."""

    name: str = MISSING
    display_name: Optional[str] = None  # as ConllDataset.display_name
    format: str = "aio"
    entity_type: str = "Entity"
    dev_fraction: float = 0.1
    split_seed: int = 42
    only: Optional[List[str]] = None
    merge: str = "tags"  # tags: task tags and O-Task labels (AIONER) | plain: naive concatenation, plain O | mtl: one output layer per member
    members: List[AioMember] = field(default_factory=list)


# (group, name) -> schema, stored as ``schema/<group>/<name>`` (apart from the groups a user chooses
# from, so that ``model=<a folder>`` in ``tag`` or a new option never meets them); each group yaml
# names its schema first in ``defaults`` (``- /schema/model/schema@_here_``), conf/config.yaml the
# blocks' (``- schema/grid@grid: schema``).
SCHEMAS = {
    ("train", "schema"): TrainSchema,
    ("grid", "schema"): GridSchema,
    ("data", "schema"): DataSchema,
    ("evaluation", "schema"): EvaluationSchema,
    ("report", "schema"): ReportSchema,
    ("search", "schema"): SearchSchema,
    ("sweeper", "optuna_schema"): OptunaSweeperSchema,
    ("tracking", "schema"): TrackingSchema,
    ("scheme", "schema"): SchemeSchema,
    ("model", "schema"): ModelSchema,
    ("model", "schema_random"): RandomModelSchema,
    ("dataset", "schema_conll"): ConllDataset,
    ("dataset", "schema_pubtator"): PubtatorDataset,
    ("dataset", "schema_aio"): AioDataset,
}
SCHEMA_OPTIONS = {name for _, name in SCHEMAS}  # not choices a user makes (``model=schema``)
# The top level: config groups and blocks (``welt_hparams`` comes with the WeLT experiments).
ROOT_KEYS = ("model", "dataset", "scheme", "train", "tracking", "grid", "data", "evaluation", "report", "search", "hydra")


def register() -> None:
    """Store every schema in Hydra's ConfigStore, and the ``${safe_name:}`` resolver of the run folders."""
    store = ConfigStore.instance()
    for (group, name), schema in SCHEMAS.items():
        store.store(group=f"schema/{group}", name=name, node=schema)
    OmegaConf.register_new_resolver("safe_name", safe_name, replace=True)
    OmegaConf.register_new_resolver("overlap_default", overlap_default, replace=True)


def overlap_default(dataset_format: str) -> str:
    """``data.overlap``'s default, the one place it is decided: ``drop`` for the all-in-one corpus
    (AIONER's protocol: "we filtered those overlapped documents in the training set if the
    documents also exist in the test set"; its members share many abstracts), ``warn`` elsewhere,
    so that the standard splits of the BIO and PubTator corpora train as published."""
    return "drop" if dataset_format == "aio" else "warn"


# ---------------------------------------------------------------------------------------------
# Compose errors: Hydra's report as one line naming the key


def _keys_of(object_type) -> list[str]:
    if dataclasses.is_dataclass(object_type):
        return [f.name for f in dataclasses.fields(object_type)]
    return []


def _did_you_mean(wrong: str, valid: list[str], prefix: str) -> str:
    close = difflib.get_close_matches(wrong, valid, n=1)
    if close:
        return f" (did you mean {prefix}{close[0]}?)"
    return f" (valid: {', '.join(prefix + k for k in valid)})" if valid else ""


def compose_error(e: Exception) -> ConfigError | None:
    """A Hydra compose failure as one ``ConfigError`` line naming the key (None: not a compose
    failure of the user's making). A misspelt key gets the nearest valid one (``difflib``), a
    missing group option the nearest option."""
    from hydra.errors import HydraException, MissingConfigException, OverrideParseException

    if isinstance(e, MissingConfigException) and e.missing_cfg_file:
        group, _, option = e.missing_cfg_file.rpartition("/")
        options = [o for o in (e.options or []) if o not in SCHEMA_OPTIONS]
        if group and options:
            return ConfigError(f"{group}={option}: no such option" + _did_you_mean(option, options, f"{group}="))
        return ConfigError(f"{e.missing_cfg_file}: no such config")
    if isinstance(e, OverrideParseException):
        return ConfigError(f"command line: {str(e).splitlines()[0]}")
    if not isinstance(e, HydraException):
        return None
    cause = e.__cause__
    key = getattr(cause, "full_key", None)
    if not key:
        return ConfigError(" | ".join(line.strip() for line in str(e).splitlines() if line.strip()))
    message = str(cause).splitlines()[0] if cause is not None else str(e)
    if "not in struct" in message or "Could not override" in str(e) or "Key '" in message and "not in" in message:
        parent, _, leaf = key.rpartition(".")
        valid = _keys_of(getattr(cause, "object_type", None)) if parent else list(ROOT_KEYS)
        return ConfigError(f"{key}: no such key" + _did_you_mean(leaf, valid, f"{parent}." if parent else ""))
    return ConfigError(f"{key}: {message}")


# ---------------------------------------------------------------------------------------------
# Rules on a composed config

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]*")
PATH_NAMES = ("model.name", "dataset.name", "scheme.name")  # they name run folders (hydra.run.dir)
CHOICES = {  # key -> the values it may take
    "train.precision": ("auto", "fp32", "bf16", "fp16"),
    "train.device": ("auto", "cpu", "cuda"),
    "train.select": ("best_dev", "last"),
    "data.train_on": ("train", "train+dev"),
    "data.overlap": ("drop", "warn", "fail"),
    "model.head": ("softmax", "crf"),
    "model.source": ("hub", "package", "path", "random"),
    "scheme.kind": ("vanilla", "ins", "isns", "ens", "welt"),
    "dataset.format": ("conll", "pubtator", "aio"),
    "evaluation.faireval_focus": ("target", "system"),
    "report.split": ("test", "dev"),
    "report.mode": ("strict", "default"),
    "grid.on_error": ("continue", "stop"),
    "grid.on_timeout_below_estimate": ("warn", "fail"),
}


@dataclass(frozen=True)
class Machine:
    """What the job's machine offers, for the rules that depend on it; ``None`` where the machine
    is not known yet (``plan``, a sweep's preflight: the job may run on another node)."""

    cuda: bool


def safe_name(name) -> str:
    """``name`` with every character that is not safe in a file name replaced by ``_`` (the
    ``${safe_name:...}`` resolver of ``hydra.run.dir``): no ``/``, no leading ``.``."""
    text = re.sub(r"[^A-Za-z0-9._+=-]", "_", str(name))
    return "_" + text if text.startswith(".") or not text else text


def _missing(cfg) -> list[str]:
    """Mandatory values (``???``) nobody gave: ``dataset=conll_files`` without ``dataset.train``."""
    keys = set()
    for name in cfg:  # not hydra's own node (a sweep job's holds values Hydra fills in later)
        if name != "hydra":
            keys |= OmegaConf.missing_keys(cfg[name]) if OmegaConf.is_config(cfg[name]) else (
                {name} if OmegaConf.is_missing(cfg, name) else set())
    return [f"{key}: no value given (pass {key}=...)" for key in sorted(keys)]


def _unresolvable(cfg) -> list[str]:
    """Interpolations that cannot be resolved (``${welt_hparams.<dataset>.<model>...}`` for a pair
    the table lacks), found now rather than when the job first reads the key."""
    from omegaconf.errors import OmegaConfBaseException

    for key in cfg:
        if key == "hydra":
            continue
        try:
            OmegaConf.to_container(cfg[key], resolve=True)
        except OmegaConfBaseException as e:
            return [f"{e.full_key or key}: {str(e).splitlines()[0]}"]
    return []


def train_problems(t) -> list[str]:
    problems = []
    for key in ("batch_size", "eval_batch_size", "grad_accum", "max_seq_length"):
        if t[key] <= 0:
            problems.append(f"train.{key}={t[key]}: must be a positive integer")
    if t.lr <= 0:
        problems.append(f"train.lr={t.lr}: must be > 0")
    if t.max_steps <= 0 and t.epochs <= 0:
        problems.append(f"train.epochs={t.epochs}: must be > 0 (or set train.max_steps > 0)")
    if t.checkpoint_steps is not None and t.checkpoint_steps < 1:
        problems.append(f"train.checkpoint_steps={t.checkpoint_steps}: must be > 0 or null")
    if t.patience is not None and t.patience < 0:
        problems.append(f"train.patience={t.patience}: must be >= 0 or null")
    if not 0 <= t.warmup_ratio < 1:
        problems.append(f"train.warmup_ratio={t.warmup_ratio}: must be in [0, 1)")
    if t.weight_decay < 0:
        problems.append(f"train.weight_decay={t.weight_decay}: must be >= 0")
    if t.collapse_after < 1:
        problems.append(f"train.collapse_after={t.collapse_after}: must be a positive integer (evaluations)")
    return problems


def data_problems(cfg) -> list[str]:
    problems = []
    for key in ("max_train_sentences", "max_eval_sentences"):
        value = cfg.data[key]
        if value is not None and value < 1:
            problems.append(f"data.{key}={value}: must be a positive integer or null (the whole split)")
    for key in ("dev_fraction", "split"):
        value = cfg.dataset.get(key)  # aio has no split
        if value is not None and not 0 < value < 1:
            problems.append(f"dataset.{key}={value}: must be a fraction in (0, 1)")
    fraction, documents = cfg.data.get("train_fraction"), cfg.data.get("train_documents")
    if fraction is not None and not 0 < fraction <= 1:
        problems.append(f"data.train_fraction={fraction}: must be a fraction in (0, 1]")
    if documents is not None and documents < 1:
        problems.append(f"data.train_documents={documents}: must be a positive integer or null")
    if fraction is not None and documents is not None:
        problems.append("data.train_fraction and data.train_documents: set one of them, not both")
    if documents is not None and cfg.dataset.format == "aio":
        problems.append("data.train_documents with dataset=aio: members differ in size; use data.train_fraction")
    if cfg.dataset.format == "aio":
        problems += aio_problems(cfg.dataset)
    if cfg.data.train_on == "train+dev" and (cfg.train.select != "last" or cfg.train.patience is not None):
        problems.append("data.train_on=train+dev: trains on dev, so nothing may be chosen or stopped on it: set "
                        "train.select=last and train.patience=null (or train=welt_authors)")
    return problems


AIO_MERGES = ("tags", "plain", "mtl")  # dataset.merge of the all-in-one corpus (aio.MERGES)


def aio_problems(ds) -> list[str]:
    """``dataset.merge`` and each member's ``types_only`` (a subset of its output types)."""
    problems = []
    if ds.merge not in AIO_MERGES:
        problems.append(f"dataset.merge={ds.merge}: must be one of {', '.join(AIO_MERGES)}")
    for i, m in enumerate(ds.members):
        unknown = sorted(set(m.types_only or []) - set(m.types))
        if unknown or m.types_only is not None and not m.types_only:
            problems.append(f"dataset.members.{i}.types_only={list(m.types_only)}: {m.name} has the types "
                            f"{sorted(m.types)}, not {unknown or 'none'}")
    return problems


def model_problems(cfg, machine: Machine | None) -> list[str]:
    """The head against the scheme, precision and device against the machine.

    What is knowable before the job runs: a CRF head with a weighted scheme, and ``fp16`` with
    ``train.device=cpu``, are refused everywhere (``plan``, preflight, the job). Whether the job's
    machine has CUDA (``train.device=cuda``, ``fp16`` with ``device=auto``) is known only on that
    machine: the job checks it (``machine``) before reading any data. ``bf16`` asked for explicitly
    is never refused: it runs everywhere (emulated, so slower, where the hardware lacks it), as
    ``train.precision=auto`` chooses bf16 only where it is native."""
    problems = []
    if cfg.model.head == "crf" and cfg.scheme.kind != "vanilla":
        problems.append(f"model.head=crf with scheme={cfg.scheme.name}: class-weighted schemes are defined for the "
                        "softmax head only; use scheme=vanilla with the CRF head")
    if cfg.dataset.format == "aio" and cfg.dataset.merge == "mtl":
        if cfg.model.head != "softmax":
            problems.append(f"dataset.merge=mtl with model.head={cfg.model.head}: the multi-task head is one softmax "
                            "layer per member; use model.head=softmax")
        if cfg.evaluation.extra_tests:
            problems.append("dataset.merge=mtl with evaluation.extra_tests: another corpus has no output layer of "
                            "its own in a multi-task model; score it with the tagger (bioner_grid.tag) instead")
    if cfg.scheme.kind == "ens" and (cfg.scheme.beta is None or not 0 <= cfg.scheme.beta < 1):
        problems.append(f"scheme.beta={cfg.scheme.beta}: scheme kind ens needs a beta in [0, 1)")
    device, precision = cfg.train.device, cfg.train.precision
    cuda = None if machine is None else machine.cuda
    if device == "cuda" and cuda is False:
        problems.append("train.device=cuda: no CUDA device on this machine")
    if precision == "fp16" and (device == "cpu" or cuda is False):
        problems.append(f"train.precision=fp16: needs CUDA (train.device={device}"
                        + (", no CUDA device on this machine" if device != "cpu" else "") + "); use bf16 or fp32")
    return problems


def name_problems(cfg) -> list[str]:
    problems = []
    for key in PATH_NAMES:
        value = OmegaConf.select(cfg, key)
        if value is not None and not SAFE_NAME.fullmatch(str(value)):
            problems.append(f"{key}={value!r}: names go into file paths; use letters, digits and . _ + = - "
                            "(not starting with .)")
    return problems


def choice_problems(cfg) -> list[str]:
    problems = []
    for key, allowed in CHOICES.items():
        value = OmegaConf.select(cfg, key)
        if value not in allowed:
            problems.append(f"{key}={value}: must be one of {', '.join(allowed)}")
    return problems


def problems(cfg, machine: Machine | None = None) -> list[str]:
    """Every problem of a composed config, each naming its key (empty: it can run). ``machine``:
    the job's own (``Machine``), for the rules only it can decide; None before the job runs."""
    first = _unresolvable(cfg) or _missing(cfg)  # the other rules would read these values
    if first:
        return first
    return (choice_problems(cfg) + train_problems(cfg.train) + data_problems(cfg) + name_problems(cfg)
            + model_problems(cfg, machine) + (["grid.heartbeat_s: must be > 0"] if cfg.grid.heartbeat_s <= 0 else [])
            + cross.problems(cfg)
            + ([f"report.resamples={cfg.report.resamples}: must be at least 1000"] if cfg.report.resamples < 1000 else []))


def check(cfg, machine: Machine | None = None) -> None:
    """Raise ``ConfigError`` naming every problem (``; ``-separated, one line)."""
    found = problems(cfg, machine)
    if found:
        raise ConfigError("; ".join(found))


# ---------------------------------------------------------------------------------------------
# Rules on the training data (they need the corpus: called where it is read, pipeline.prepare)


def check_training_data(cfg, split, counts: dict[str, int]) -> None:
    """The training split must have entities, for every scheme alike (a model trained on O alone
    scores F1 0, and the inverse-count schemes cannot weigh an empty class); and a scheme that
    divides by the class counts (ins, isns, ens) needs every class it weighs. ``DataError`` naming
    the file."""
    if not any(tag != "O" and not tag.startswith("O-") for s in split.sentences for tag in s.tags):
        raise DataError(f"{split.source}:0: the training split has no entities (every tag is O): nothing to learn")
    empty = sorted(k for k, n in counts.items() if n <= 0)
    if empty and cfg.scheme.kind in ("ins", "isns", "ens"):
        raise DataError(f"{split.source}:0: scheme={cfg.scheme.name} weighs each class by its training count, "
                        f"but these have none: {', '.join(empty)}")
