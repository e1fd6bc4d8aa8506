"""Expected training time of a sweep's jobs, from the finished runs of the tracking store.

Each FINISHED run records how long it trained (``time/train_seconds``), what it trained on
(``corpus.train_tokens``, a param; a ``data/train_tokens`` metric in older runs: words of the
training split as trained, dev included under ``data.train_on=train+dev``; ``train/epochs``: epochs done, fractional under ``max_steps``), its
``train.max_seq_length`` (param), its precision (tag ``precision``, as resolved) and its device
class (tag ``device``: ``cpu`` or ``cuda``; runs recorded before that tag count as unknown). A
model's throughput is the median over its runs of words trained per second, each brought to the
job's ``max_seq_length`` and precision (``expected_seconds``); a job then takes its corpus's
training words × epochs at the rate of the optimiser steps, plus per dev evaluation what the
run spent between steps (the evaluation, the checkpoint after it, the setup; runs record
``time/train_step_seconds``, ``time/train_eval_seconds`` and ``train/evaluations`` since the
learning-curve measurements, older runs' rate includes it all): that part costs the same whatever
the training size, and a 5% subsample's job is mostly that. A resumed run is left out (its time is
the last attempt's). Runs on another device class are never used (no factor turns a CPU's speed
into a GPU's): such a job has "no data to estimate from".
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path


from bioner_grid.identity import defines_result
from bioner_grid.store import run_metrics
from bioner_grid.tracking import ABSENT_PARAMS, flatten_params

# bf16/fp16 autocast against fp32, training minilm on NCBI-disease on this project's CPU (AVX512-BF16):
# 246 s against 467 s (README, "bf16 against fp32"); used only where no run of the model has the
# job's precision. Relative cost per word, fp32 = 1.
PRECISION_COST = {"fp32": 1.0, "bf16": 246 / 467, "fp16": 246 / 467}
HIDDEN = 768  # d_model of a BERT-base model, the size of every model the grids train but tiny_bert


def expected_seconds(words: float, epochs: float, rate: float, rate_seq_len: int, seq_len: int,
                     rate_precision: str = "fp32", precision: str = "fp32", d_model: int = HIDDEN) -> float:
    """Training seconds of ``words`` × ``epochs`` words at a throughput ``rate`` (words/s) measured
    with ``rate_seq_len`` and ``rate_precision``, for a job with ``seq_len`` and ``precision``:

        T = W · E / r · (12·d + L) / (12·d + L_r) · c(p) / c(p_r)

    W words of the training split, E epochs, r the measured words per second, L and L_r the jobs'
    ``max_seq_length``, d the model width, c the cost per word of a precision (``PRECISION_COST``).
    The length factor is the forward compute per token of a transformer, C ≈ 2N + 2·n_layer·L·d
    with N ≈ 12·n_layer·d² parameters (Kaplan et al. 2020, Scaling Laws for Neural Language
    Models, eq. 2.2), so C ∝ 12·d + L: windows longer by 256 tokens cost a bert-base model 3% more
    per token. ``rate`` must be positive."""
    length = (12 * d_model + seq_len) / (12 * d_model + rate_seq_len)
    prec = PRECISION_COST.get(precision, 1.0) / PRECISION_COST.get(rate_precision, 1.0)
    return words * epochs / rate * length * prec


@dataclass(frozen=True)
class Sample:
    """One finished run's throughput."""

    model: str
    dataset: str
    rate: float  # words trained per second
    seq_len: int
    precision: str
    device: str | None
    words: float  # its training split's words
    sentences: float | None  # and sentences
    train_on: str
    max_train: str  # data.max_train_sentences as recorded ("None" when the whole split)
    fraction: str = "None"  # data.train_fraction (a learning curve's size) as recorded, "None" when unset
    documents: str = "None"  # data.train_documents, likewise
    # of its training time, apart from the optimiser steps (runs since these metrics; None before):
    evaluations: float | None = None  # its dev evaluations
    eval_seconds: float = 0.0  # their time
    other_seconds: float = 0.0  # the rest: checkpoints written after each, the Trainer's setup
    dev_words: float | None = None  # words of its dev split
    max_eval: str = "None"  # data.max_eval_sentences as recorded
    corpus: tuple = ()  # its result-defining dataset.* params (``dataset_settings``) as sorted items


def _metric(run, name: str):
    """A run's metric by its flat name (``store.run_metrics``: the corpus figures, params since the
    UI work, read back as ``data_*`` whichever way the run logged them)."""
    return run_metrics(run).get(name)


def samples(runs) -> list[Sample]:
    """The throughput of every FINISHED run that recorded what it needs (others are left out)."""
    out = []
    for r in runs:
        if r.info.status != "FINISHED":
            continue
        secs, words, epochs = _metric(r, "train_seconds"), _metric(r, "data_train_tokens"), _metric(r, "train_epochs")
        tags, params = r.data.tags, r.data.params
        if not secs or not words or not epochs or secs <= 0 or "train.max_seq_length" not in params:
            continue
        if _metric(r, "resumed"):  # its train_seconds are the last attempt's, its epochs the whole run's
            continue
        steps, evals, eval_secs = (_metric(r, k) for k in ("train_step_seconds", "train_evaluations", "train_eval_seconds"))
        apart = bool(steps and evals and 0 < steps < secs)  # recorded: the steps' time apart from the rest
        out.append(Sample(tags.get("model", "?"), tags.get("dataset", "?"), words * epochs / (steps if apart else secs),
                          int(params["train.max_seq_length"]), tags.get("precision", "fp32"), tags.get("device"),
                          words, _metric(r, "data_train_sentences"), params.get("data.train_on", "train"),
                          params.get("data.max_train_sentences", "None"), params.get("data.train_fraction", "None"),
                          params.get("data.train_documents", "None"),
                          evals if apart else None, (eval_secs or 0.0) if apart else 0.0,
                          max(0.0, secs - steps - (eval_secs or 0.0)) if apart else 0.0,
                          _metric(r, "data_dev_tokens"), params.get("data.max_eval_sentences", "None"),
                          tuple(sorted(dataset_settings(params).items()))))
    return out


def dataset_settings(params: dict[str, str]) -> dict[str, str]:
    """The settings that make a corpus what it is, among a run's (or a job's, flattened as a run logs them)
    params: the result-defining ``dataset.*`` keys, one left unlogged at its default given that
    default. Runs of one dataset name can differ there: an all-in-one corpus of one member (``only``)
    has a third of the words of all three."""
    out = {k: v for k, v in params.items() if k.startswith("dataset.") and defines_result(k)}
    for key, value in ABSENT_PARAMS.items():
        if key.startswith("dataset."):
            out.setdefault(key, value)
    return out


def _same_corpus(job: dict[str, str], s: Sample) -> bool:
    """The run's dataset settings agree with the job's on every key both have (a run recorded
    before a key existed, or a test's run without params, is not told apart by it)."""
    run = dict(s.corpus)
    return all(job[k] == run[k] for k in job.keys() & run.keys())


def _target(value: str, found: list[str]) -> str | None:
    """The job's precision or device: as configured, or (``auto``: chosen on the job's machine) the
    one most of the model's runs had."""
    if value != "auto":
        return value
    return max(set(found), key=found.count) if found else None


def _same_split(cfg, s: Sample, fraction=None, documents=None) -> bool:
    """Whether run ``s`` trained on the job's training split: same corpus, ``train_on``, cap and
    learning-curve size (``fraction`` / ``documents``: the job's, or None for the whole split)."""
    return (s.dataset == cfg.dataset.name and s.train_on == cfg.data.train_on
            and s.max_train == str(cfg.data.max_train_sentences)
            and s.fraction == str(fraction) and s.documents == str(documents))


def corpus_words(cfg, known: list[Sample]) -> float | None:
    """Words in the job's training split: as a finished run on the same corpus, caps and size
    recorded; else, for a learning curve's ``data.train_fraction``, that fraction of the whole
    split's words (the subsample is by document or sentence, so words scale with it on average);
    else counted in a CoNLL training file read whole (one token a line); None when none of these."""
    fraction, documents = cfg.data.get("train_fraction"), cfg.data.get("train_documents")
    same = [s.words for s in known if _same_split(cfg, s, fraction, documents)]
    if same:
        return statistics.median(same)
    if documents is not None:
        return None  # documents differ in length: no count of them without a run that trained on them
    if fraction is not None:
        whole = [s.words for s in known if _same_split(cfg, s)]
        words = statistics.median(whole) if whole else _counted_words(cfg)
        return None if words is None else words * float(fraction)
    return _counted_words(cfg)


def _counted_words(cfg) -> float | None:
    """Words of a CoNLL training split read whole (one token a line; None for other formats or caps)."""
    if cfg.dataset.format != "conll" or cfg.data.max_train_sentences is not None:
        return None
    files = [cfg.dataset.train] + ([cfg.dataset.dev] if cfg.data.train_on == "train+dev" and cfg.dataset.get("dev") else [])
    try:
        return float(sum(_count_tokens(f) for f in files))
    except OSError:
        return None


_TOKENS: dict[str, int] = {}


def _count_tokens(path: str) -> int:
    if path not in _TOKENS:
        with Path(path).open("rb") as f:
            _TOKENS[path] = sum(1 for line in f if line.strip() and not line.startswith(b"-DOCSTART-"))
    return _TOKENS[path]


@dataclass(frozen=True)
class Estimate:
    seconds: float | None  # None: no data
    device: str | None = None
    runs: int = 0
    why: str = ""

    def text(self) -> str:
        if self.seconds is None:
            return f"no data to estimate from ({self.why})"
        return f"~{hours(self.seconds)} ({self.device or 'device ?'}, from {self.runs} run{'s' * (self.runs != 1)})"


def hours(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def estimate(cfg, known: list[Sample], device: str | None = None) -> Estimate:
    """The job's expected training time from ``known`` (``samples`` of its store). ``device``: the
    device class the job will have where the caller knows it (a SLURM launch asking for GPUs)."""
    mine = [s for s in known if s.model == cfg.model.name]
    if not mine:
        return Estimate(None, why=f"no finished run of model {cfg.model.name}")
    want_device = device or _target(str(cfg.train.device), [s.device or "?" for s in mine])
    on_device = [s for s in mine if s.device in (want_device, None)] if want_device != "?" else mine
    if not on_device:
        return Estimate(None, why=f"no finished run of model {cfg.model.name} on {want_device}")
    want_precision = _target(str(cfg.train.precision), [s.precision for s in on_device])
    exact = [s for s in on_device if s.precision == want_precision]
    settings = dataset_settings({f"dataset.{k}": v for k, v in flatten_params(cfg.dataset).items()})  # as a run logs them
    known = [s for s in known if _same_corpus(settings, s)]  # the corpus's size: from runs on this corpus
    words = corpus_words(cfg, known)
    if words is None:
        return Estimate(None, why=f"no finished run on {cfg.dataset.name} with these data settings")
    t = cfg.train
    epochs = float(t.epochs)
    sentences = _sentences(cfg, known)
    if t.max_steps and t.max_steps > 0 and sentences:  # the Trainer stops at max_steps: epochs as sentences seen
        epochs = t.max_steps * t.batch_size * t.grad_accum / sentences
    evaluations = _evaluations(cfg, epochs, sentences)
    dev = _dev_words(cfg, known)
    secs = statistics.median(
        expected_seconds(words, epochs, s.rate, s.seq_len, int(t.max_seq_length), s.precision, want_precision)
        + evaluation_seconds(s, evaluations, dev, int(t.max_seq_length), want_precision)
        for s in (exact or on_device))
    return Estimate(secs, want_device if want_device != "?" else None, len(exact or on_device))


def evaluation_seconds(s: Sample, evaluations: int, dev_words: float | None, seq_len: int, precision: str) -> float:
    """The job's time between optimiser steps, per dev evaluation as run ``s`` spent it: the
    evaluation itself, scaled by the dev words (the job's where a run on its corpus recorded them,
    else taken as the run's) and ``expected_seconds``' length and precision factors, and the rest
    (the checkpoint written after it, the Trainer's setup) as it was. 0 for a run recorded before
    these times were (its rate then includes them)."""
    if not s.evaluations:
        return 0.0
    ratio = dev_words / s.dev_words if dev_words and s.dev_words else 1.0
    per_eval = s.eval_seconds / s.evaluations
    evaluate = expected_seconds(ratio, 1, 1 / per_eval, s.seq_len, seq_len, s.precision, precision) if per_eval else 0.0
    return evaluations * (evaluate + s.other_seconds / s.evaluations)


def _evaluations(cfg, epochs: float, sentences: float | None) -> int:
    """How many dev evaluations the job makes: one an epoch, or one every ``train.checkpoint_steps``."""
    t = cfg.train
    if t.checkpoint_steps and sentences:
        steps = epochs * math.ceil(sentences / (t.batch_size * t.grad_accum))
        return max(1, int(steps // int(t.checkpoint_steps)))
    return max(1, math.ceil(epochs))


def _dev_words(cfg, known: list[Sample]) -> float | None:
    """Words of the job's dev split, as a run on the same corpus and dev cap recorded."""
    same = [s.dev_words for s in known if s.dataset == cfg.dataset.name and s.dev_words
            and s.max_eval == str(cfg.data.max_eval_sentences)]
    return statistics.median(same) if same else None


def _sentences(cfg, known: list[Sample]) -> float | None:
    """Sentences in the job's training split, as a run on the same corpus and caps recorded."""
    fraction, documents = cfg.data.get("train_fraction"), cfg.data.get("train_documents")
    same = [s.sentences for s in known if _same_split(cfg, s, fraction, documents) and s.sentences]
    return statistics.median(same) if same else None


def sweep_total(estimates: list[Estimate]) -> str:
    """The grid's total, per device class (CPU-hours, GPU-hours), and how many jobs had no data."""
    by: dict[str, float] = {}
    for e in estimates:
        if e.seconds is not None:
            key = "GPU" if e.device == "cuda" else "CPU" if e.device == "cpu" else "device-unknown"
            by[key] = by.get(key, 0.0) + e.seconds
    missing = sum(e.seconds is None for e in estimates)
    parts = [f"{s / 3600:.2f} {k}-hours" for k, s in sorted(by.items())] or ["nothing estimated"]
    return ", ".join(parts) + (f"; {missing} job(s) with no data to estimate from" if missing else "")
