"""One fine-tuning run, end to end: data -> weights -> tokenisation -> training -> scoring -> the store.

Everything that can fail on bad input (data, scheme, precision/device) is checked before the
MLflow run is opened, so a bad configuration records nothing.
"""

from __future__ import annotations

import json
import logging
import resource
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import TrainingArguments, set_seed

from bioner_grid import collapse, cross, export, heads, identity, preempt, pruning, redact, runtime, scoring, search, spec, sweep, tracking
from bioner_grid.store import OpenRun, RunStore, cross_metric, job_tags
from bioner_grid.align import cached_windows
from bioner_grid.corpus import SPLITS, Corpus, Split, subsample_of
from bioner_grid.data import ExtraTest, check_extra_labels, check_root, load_corpus, load_extra_tests, split_stats
from bioner_grid.scoring import mismatch_examples
from bioner_grid.modeling import build_from_saved, build_model, check_saved, load_tokenizer
from bioner_grid.train import clock, predict, train, training_arguments
from bioner_grid.weights import count_classes, is_degenerate, label_weights, scheme_weights

log = logging.getLogger(__name__)


def write_conll(path: Path, sentences, predicted, header: bool = False) -> None:
    """Predictions as CoNLL columns ``token<TAB>gold<TAB>pred``, a blank line between sentences
    (``header``: a ``token gold pred`` first line, for the ``.tsv`` copy MLflow's UI shows as a table)."""
    with open(path, "w", encoding="utf-8") as f:
        if header:
            f.write("token\tgold\tpred\n")
        for sent, pred in zip(sentences, predicted, strict=True):
            for token, gold, p in zip(sent.tokens, sent.tags, pred, strict=True):
                f.write(f"{token}\t{gold}\t{p}\n")
            f.write("\n")


@dataclass
class Prepared:
    """What a run is made of once its inputs have been checked."""

    corpus: Corpus
    counts: dict[str, int]
    weights: dict[str, float] | None
    label_weights: list[float] | None  # indexed like corpus.labels
    degenerate: bool
    device: str
    args: TrainingArguments
    extra: list = field(default_factory=list)  # data.ExtraTest: other datasets' test splits scored too
    init: tuple | None = None  # model.init: (folder, META, tokenizer) of the saved model to start from

    @property
    def precision(self) -> str:
        """As ``training_arguments`` resolved it on this machine (``auto``: bf16 where native, else fp32)."""
        return "bf16" if self.args.bf16 else "fp16" if self.args.fp16 else "fp32"

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.corpus.labels))


def train_on(cfg, corpus: Corpus) -> None:
    """``data.train_on=train+dev``: the training split becomes train followed by dev (as BioBERT's
    ``train_dev`` file the WeLT authors trained on); dev is then no fair judge, so nothing may be
    chosen or stopped on it (``spec.data_problems`` refuses that before the data is read)."""
    if cfg.data.train_on == "train":
        return
    train, dev = corpus.splits["train"], corpus.splits["dev"]
    corpus.splits["train"] = Split(train.sentences + dev.sentences, f"{train.source}+{dev.source}", train.iob_slips)


def prepare(cfg, out: Path) -> Prepared:
    """Data, weights, head and precision: every input check, before anything is trained or recorded.
    The config's rules are ``spec``'s (here with this machine's facts), the data's too
    (``spec.check_training_data``)."""
    spec.check(cfg, spec.Machine(cuda=torch.cuda.is_available()))
    tracking.check_store(cfg.tracking)  # seconds, before the data is read
    check_root(cfg.data.root)
    init = saved_model(cfg)  # a saved model that does not fit the model config stops here, before the data is read
    # evaluation.extra_tests, in this model's types (cross.plan); compared with training as its own test is
    extra = load_extra_tests(cross.plan(cfg), cfg.dataset.format, cfg.data.cache, cfg.data.max_eval_sentences)
    corpus = load_corpus(cfg.dataset, cfg.data.max_train_sentences, cfg.data.max_eval_sentences, cfg.data.cache,
                         cfg.data.overlap, [e.evaluation for e in extra],
                         subsample_of(cfg.data.train_fraction, cfg.data.train_documents, cfg.train.seed))
    # data.overlap=fail stops above: DataError, nothing recorded
    check_extra_labels(extra, corpus.labels)
    for split in corpus.splits.values():
        if split.iob_slips:
            log.warning("%s: %d I-X tags after O or another type (first at line %d); kept as annotated",
                        split.source, len(split.iob_slips), split.iob_slips[0])
    labels = corpus.labels
    counts = count_classes(corpus.splits["train"].sentences, labels, cfg.scheme.per_label)  # on train alone, always
    spec.check_training_data(cfg, corpus.splits["train"], counts)
    train_on(cfg, corpus)
    weights = scheme_weights(cfg.scheme.kind, counts, cfg.scheme.beta)
    degenerate = is_degenerate(weights)
    if degenerate:
        log.warning("scheme %s gives uniform weights %s on %s: this run is vanilla cross-entropy",
                    cfg.scheme.name, weights, cfg.dataset.name)
    device = runtime.pick_device(cfg.train.device)
    return Prepared(corpus, counts, weights, label_weights(weights, labels, cfg.scheme.per_label) if weights else None,
                    degenerate, device, training_arguments(cfg.train, str(out / "checkpoints"), device), extra,
                    init)


def saved_model(cfg) -> tuple | None:
    """``model.init``: the saved model's folder (a run id or models:/ URI fetched as ``tag`` does),
    META and tokenizer, checked against the model config (``ConfigError`` before any run is opened)."""
    if cfg.model.init is None:
        return None
    from bioner_grid.tag import resolve_model  # the one resolver of run ids and model URIs

    folder = resolve_model(str(cfg.model.init), cfg.tracking.uri)
    return (folder, *check_saved(cfg.model, folder, f"model.init={cfg.model.init}"))


def build(cfg, p: Prepared):
    """Tokenizer (with the corpus adapter's special tokens: an all-in-one corpus's task tags),
    windows of every split, and the model."""
    set_seed(int(cfg.train.seed))
    runtime.limit_threads()
    corpus, labels = p.corpus, p.corpus.labels
    tokenizer = p.init[2] if p.init else load_tokenizer(cfg.model)
    corpus.adapter.prepare_tokenizer(tokenizer)
    label2id = {label: i for i, label in p.id2label.items()}
    windows = {n: cached_windows(tokenizer, corpus.splits[n].sentences, label2id, cfg.train.max_seq_length,
                                 cfg.data.cache) for n in SPLITS}
    if p.init:
        model = build_from_saved(cfg.model, p.init[0], p.init[1], labels, tokenizer)
        log.info("starting from the saved model %s (%d labels) with a new output layer", p.init[0], len(p.init[1]["labels"]))
    else:
        model = build_model(cfg.model, labels, tokenizer)
    model = heads.wrap(model, labels, corpus.adapter.head)  # a multi-task merge: one output layer per member
    log.info("%s on %s (%s): %d labels, windows %s, device %s, %s", cfg.model.name, cfg.dataset.name, cfg.scheme.name,
             len(labels), {n: len(w) for n, w in windows.items()}, p.device, p.precision)
    return tokenizer, windows, model


def run(cfg, output_dir: str | Path) -> dict:
    """Run one configuration; returns the content of ``result.json``.

    prepare (every input check) -> has it run before? -> tokenise and build -> open the MLflow run
    -> train -> score dev and test -> record. What happens to a configuration recorded before is
    ``identity.decide``'s rule: a FINISHED run key is skipped (unless ``train.force``), a live
    job's run is never taken over, an unfinished one is continued from its last checkpoint.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    p = prepare(cfg, out)
    tags = {**tracking.run_tags(cfg), "weights_degenerate": str(p.degenerate).lower(), "precision": p.precision,
            "device": p.device,  # the device class it trained on: plan's time estimates (bioner_grid.estimate)
            **p.corpus.adapter.run_tags(),
            identity.OPS + "output_dir": str(out.resolve()), **search.run_tags(cfg)}
    store = RunStore.from_config(cfg.tracking)
    store.experiment_id()
    runs = store.runs_with_key(tags["run_key"])
    decision = decide(cfg, store, runs, tags["run_key"])
    if decision.action in ("finished", "in_flight"):
        return {"skipped": True, "status": decision.status, "run_key": tags["run_key"], "run_id": decision.run_id}

    trial = pruning.callback(cfg)  # a trial of an adaptive search: reports dev F1, stops when pruned (else None)
    tokenizer, windows, model = build(cfg, p)
    active, twin = open_run(cfg, store, runs, decision, tags, p.args.output_dir)
    if twin:  # the same configuration started at the same moment: the older run trains it
        return {"skipped": True, "status": "IN FLIGHT", "run_key": tags["run_key"], "run_id": twin}
    try:
        with store.heartbeat(active.run_id, float(cfg.grid.heartbeat_s)):
            record_inputs(cfg, active, p)
            trainer, metrics = fit(cfg, p, tokenizer, windows, model, decision.checkpoint, active.log_metrics,
                                   (trial,) if trial else ())
            stopped = trial.tags() if trial else {}
            if trial:
                active.set_tags(stopped)  # pruned=true: FINISHED, never resumed, ranked apart (search.py)
            collapsed = collapse.outcome(trainer)  # train.stop_collapsed stopped it: still scored, FINISHED, tagged
            if collapsed:
                active.set_tags(collapsed)
                stopped = {**stopped, **collapsed}
            for split in ("dev", "test"):
                metrics.update(score_split(cfg, out, p.corpus, trainer, windows[split], split, active))
            for extra in p.extra:
                metrics.update(score_extra(cfg, out, p, trainer, tokenizer, extra, active))
            result = record(cfg, out, p, trainer, tokenizer, metrics, tags, decision.checkpoint, active, stopped)
    except (KeyboardInterrupt, SystemExit) as e:
        active.close("KILLED", retry=False)  # preempted or requeued: the next attempt resumes this run
        if isinstance(e, KeyboardInterrupt):  # SIGTERM/SIGINT (preempt.stop_on_signals): say how to resume
            raise KeyboardInterrupt(stopped_line(active.run_id, p.args.output_dir), preempt.exit_code()) from None
        raise
    except BaseException as e:
        # after a StoreError the store has had its budget: one try to mark the run FAILED
        active.close("FAILED", retry=not isinstance(e, tracking.TrackingError))
        raise
    active.close("FINISHED")  # waits for the buffered metrics; StoreError if they cannot be sent
    if not cfg.train.keep_checkpoints:
        for folder in tags[identity.OPS + "checkpoint_dirs"].split("\n"):
            shutil.rmtree(folder, ignore_errors=True)
    # in percent, as every line a person reads (MLflow keeps the fractions)
    log.info("test strict F1 %.2f%% (default %.2f%%), train %.0f s, run %s", 100 * result["metrics"]["test_strict_f1"],
             100 * result["metrics"]["test_f1"], result["metrics"]["train_seconds"], result["run_id"])
    if collapsed:
        log.warning("COLLAPSED at epoch %s: %s. MLflow run %s is FINISHED with tag collapsed=true (its scores are "
                    "those of a model that learnt nothing; the report shows it as collapsed)",
                    collapsed["collapsed_at_epoch"], collapsed["collapse_reason"], result["run_id"])
        result["collapsed"] = collapsed["collapse_reason"]
    return result


def stopped_line(run_id: str, checkpoints: str) -> str:
    """What a run stopped by SIGTERM or SIGINT tells its user: it is KILLED, and the same command
    continues it from its newest complete checkpoint (``grid.skip_finished``'s resume)."""
    checkpoint = tracking.last_complete_checkpoint(checkpoints)
    where = f"from {Path(checkpoint).name}" if checkpoint else "from the start (no checkpoint yet)"
    return (f"stopped by {preempt.stopped_by() or 'SIGINT'}: MLflow run {run_id} is KILLED; "
            f"run the same command again to resume it {where}")


def decide(cfg, store: RunStore, runs, key: str) -> identity.Decision:
    """Has this configuration run before, or is it running now? (``identity.decide``, and a claim
    on a stopped run before it is continued.)"""
    decision = tracking.decide(cfg, runs)
    if decision.action == "continue" and not store.claim(decision.run_id):
        decision = identity.Decision("in_flight", decision.run_id)  # another job claimed it at the same moment
    if decision.action == "finished":
        log.info("run key %s is FINISHED as MLflow run %s; skipping (train.force=true reruns it)", key, decision.run_id)
    elif decision.action == "in_flight":
        log.info("run key %s is in flight as MLflow run %s (a live job trains it); skipping", key, decision.run_id)
    elif decision.checkpoint:
        log.info("resuming MLflow run %s from %s", decision.run_id, decision.checkpoint)
    elif decision.run_id:
        log.info("continuing MLflow run %s from the start: it was stopped before its first checkpoint", decision.run_id)
    return decision


def open_run(cfg, store: RunStore, runs, decision: identity.Decision, tags: dict, checkpoint_dir: str):
    """Start (or continue) the MLflow run, under the sweep's parent when a sweep launched this job;
    adds the checkpoint folders of every attempt and the job's tags to ``tags``. Returns (the active
    run, None), or (None, the twin's run id), having deleted its own run, when a twin started the
    same configuration first."""
    resume_id = decision.run_id
    # Every attempt's checkpoints stay findable: a later attempt may need an earlier one's.
    earlier = tracking.checkpoint_dirs(next(r for r in runs if r.info.run_id == resume_id)) if resume_id else []
    tags[identity.OPS + "checkpoint_dirs"] = "\n".join(dict.fromkeys([*earlier, checkpoint_dir]))
    tags.update(job_tags())
    tags.update(sweep.child_tags())
    values = identity.grid_values(cfg)
    active = store.open_run(resume_id, None if resume_id else sweep.run_name(values), tags,
                            system_metrics=cfg.tracking.system_metrics, description=tracking.run_description(values))
    if not resume_id:
        twin = store.live_twin(active.get(), time.time(), float(cfg.grid.heartbeat_s))
        if twin:
            active.close("KILLED")
            store.delete_run(active.run_id)
            log.info("run key %s is in flight as MLflow run %s (started at the same moment); skipping", tags["run_key"], twin)
            return None, twin
    return active, None


def record_inputs(cfg, run: OpenRun, p: Prepared) -> None:
    """The run's params (only what defines its result), class weights, corpora (MLflow dataset
    inputs) and its whole config, secrets masked. A continued run has its params already."""
    if not run.get().data.params:
        run.log_params(tracking.run_params(cfg))
        if p.weights:
            run.log_params({f"weight.{k}": f"{v:.6g}" for k, v in p.weights.items()})
        run.log_corpora(cfg)
    run.log_text(redact.config_yaml(cfg), "config.yaml")
    # the corpus figures are params (constant per corpus: as metrics they filled the UI's charts);
    # logged on every attempt, the same values again, so a run resumed from an older store gets them too
    run.log_params(tracking.corpus_params({name: split_stats(split) for name, split in p.corpus.splits.items()}))
    p.corpus.overlap.record(run)  # tags overlap.* and overlap.json: training documents also in dev/test, removed or kept
    run.log_dict({"classes": list(p.counts), "counts": p.counts, "weights": p.weights, "labels": p.corpus.labels,
                     "label_weights": p.label_weights, "degenerate": p.degenerate}, "class_weights.json")


def fit(cfg, p: Prepared, tokenizer, windows, model, resume_from: str | None, log_metrics, callbacks=()):
    """Fine-tune (train loss and dev scores logged per epoch); returns the Trainer holding the model
    ``train.select`` chose, and the training metrics (the corpus sizes, WeLT Tables 1 and 11, are
    params: ``record_inputs``)."""
    if p.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    dev_gold = [s.tags for s in p.corpus.splits["dev"].sentences]
    trainer = train(model, tokenizer, p.args, windows["train"], windows["dev"], dev_gold, p.id2label, p.label_weights,
                    cfg.train.patience, log_metrics, resume_from, tuple(callbacks) + tuple(collapse.sentinels(cfg.train)),
                    score=scoring.score)
    spent = clock(trainer)
    metrics = {"train_seconds": time.perf_counter() - started, "train_steps": trainer.state.global_step,
               "train_epochs": float(trainer.state.epoch or 0), "resumed": float(bool(resume_from)),
               # of train_seconds, the optimiser steps and the dev evaluations of this attempt: plan's
               # estimates keep them apart (bioner_grid.estimate): an evaluation and its checkpoint cost
               # the same whatever the training size
               "train_step_seconds": spent.step_seconds, "train_eval_seconds": spent.eval_seconds,
               "train_evaluations": float(spent.evaluations)}
    return trainer, metrics


def score_split(cfg, out: Path, corpus: Corpus, trainer, windows, name: str, run: OpenRun) -> dict[str, float]:
    """Predict one split with the selected model, keep the predictions (``.conll``, and ``.tsv``
    that MLflow's UI shows as a table) and its error analysis, and score it (``scoring.score_split``;
    an all-in-one corpus: each member on its task, then all without the task tags)."""
    sents = corpus.splits[name].sentences
    t0 = time.perf_counter()
    predicted = predict(trainer, windows, dict(enumerate(corpus.labels)), len(sents))
    seconds = time.perf_counter() - t0
    metrics = {f"{name}_seconds": seconds, f"{name}_seconds_per_1000_sentences": 1000 * seconds / len(sents)}
    for suffix, header in ((".conll", False), (".tsv", True)):
        write_conll(out / f"predictions_{name}{suffix}", sents, predicted, header=header)
        run.log_artifact(out / f"predictions_{name}{suffix}")
    tokens, gold = [s.tokens for s in sents], [s.tags for s in sents]
    for member, (_, member_gold, member_pred) in corpus.adapter.member_views(name, tokens, gold, predicted).items():
        strict = scoring.score(member_gold, member_pred)["strict"]  # AIONER's per-corpus results
        metrics.update({f"{name}_{member}_strict_{k}": strict[k] for k in ("precision", "recall", "f1")})
    tokens, gold, predicted = corpus.adapter.scored_view(tokens, gold, predicted)
    metrics.update(scoring.score_split(name, gold, predicted, cfg.evaluation.faireval_focus))
    run.log_dict(mismatch_examples(tokens, gold, predicted, cfg.evaluation.error_examples), f"error_analysis_{name}.json")
    return metrics


def score_extra(cfg, out: Path, p: Prepared, trainer, tokenizer, extra: ExtraTest, run: OpenRun) -> dict[str, float]:
    """Score the selected model on another dataset's test split (``evaluation.extra_tests``): its
    predictions of types that corpus does not annotate count as O; metrics ``cross/<dataset>/...``,
    predictions ``predictions_cross_<dataset>.conll``."""
    sents = extra.split.sentences
    label2id = {label: i for i, label in p.id2label.items()}
    windows = cached_windows(tokenizer, sents, label2id, cfg.train.max_seq_length, cfg.data.cache)
    predicted = [extra.restrict(tags) for tags in predict(trainer, windows, p.id2label, len(sents))]
    path = out / f"predictions_cross_{spec.safe_name(extra.name)}.conll"
    write_conll(path, sents, predicted)
    run.log_artifact(path)
    scores = scoring.score_split("test", [s.tags for s in sents], predicted, cfg.evaluation.faireval_focus)
    log.info("%s test strict F1 %.2f%%", extra.name, 100 * scores["test_strict_f1"])
    return {cross_metric(extra.name, k): v for k, v in scores.items()}


def record(cfg, out: Path, p: Prepared, trainer, tokenizer, metrics: dict, tags: dict, resume_from, run: OpenRun,
           stopped: dict | None = None) -> dict:
    """Log the metrics (with peak memory), save and log the model (``train.save_model``), and
    write ``result.json``; returns its content. ``stopped``: the tags of a run pruned or collapsed
    (its description says so)."""
    metrics["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if p.device == "cuda":
        metrics["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    run.log_metrics(metrics)
    run.describe(tracking.run_description(identity.grid_values(cfg), metrics, stopped))  # now with its dev and test F1
    if cfg.train.save_model:  # the scored model: weights, tokenizer, labels, window settings
        # a sweep's job keeps its model in MLflow only: one copy, not two per job
        export.save_and_log(cfg, out / "model", trainer.model, tokenizer, p.corpus, p.precision, run,
                            keep_folder=not sweep.child_tags())
    result = {
        "run_id": run.run_id,
        "experiment_id": run.experiment_id,
        "tracking_uri": run.store.shown,
        "run_key": tags["run_key"],
        "cell_key": tags["cell_key"],
        **{k: tags[k] for k in identity.GRID_KEYS},
        "weights_degenerate": p.degenerate,
        "resumed_from": resume_from,
        "metrics": {k: v for k, v in metrics.items() if k.startswith(("test_", "cross/")) or k.endswith("_seconds")},
    }
    (out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    run.log_artifact(out / "result.json")
    return result
