"""Length-grouped training batches that a resumed run draws exactly as an uninterrupted one."""

import torch
from omegaconf import OmegaConf
from transformers import DataCollatorForTokenClassification, TrainingArguments

from bioner_grid.align import make_windows
from bioner_grid.data import read_conll
from bioner_grid.modeling import build_model
from bioner_grid.train import EpochSeededLengthGroupedSampler, WeightedLossTrainer
from conftest import NCBI, ROOT

LABELS = ["O", "B-Disease", "I-Disease"]


def test_shuffle_depends_on_seed_and_epoch_only():
    lengths = [(i * 37) % 50 + 1 for i in range(200)]
    a = EpochSeededLengthGroupedSampler(lengths, batch_size=16, seed=42)
    b = EpochSeededLengthGroupedSampler(lengths, batch_size=16, seed=42)
    orders = []
    for epoch in range(3):
        a.set_epoch(epoch)
        torch.manual_seed(epoch * 1000)  # the global RNG, in whatever state, plays no part
        first = list(a)
        b.set_epoch(epoch)
        assert list(b) == first and sorted(first) == list(range(200))
        orders.append(first)
    assert orders[0] != orders[1] != orders[2]  # a new shuffle every epoch
    # length-grouped: the lengths within a batch are far closer than in batches of a plain shuffle
    def median_spread(order):
        spread = sorted(max(lengths[i] for i in order[k:k + 16]) - min(lengths[i] for i in order[k:k + 16])
                        for k in range(0, 192, 16))
        return spread[len(spread) // 2]
    shuffled = torch.randperm(200, generator=torch.Generator().manual_seed(0)).tolist()
    assert median_spread(orders[0]) * 2 < median_spread(shuffled)

def test_trainer_uses_it_and_moves_it_to_each_new_epoch(tmp_path, minilm_tokenizer, monkeypatch):
    seen = []
    iterate = EpochSeededLengthGroupedSampler.__iter__
    monkeypatch.setattr(EpochSeededLengthGroupedSampler, "__iter__", lambda self: seen.append(self.epoch) or iterate(self))
    cfg = OmegaConf.load(ROOT / "conf" / "model" / "tiny_bert.yaml")
    windows = make_windows(minilm_tokenizer, read_conll(NCBI / "train.tsv", "Disease").sentences[:48],
                           {label: i for i, label in enumerate(LABELS)}, 64)
    args = TrainingArguments(str(tmp_path), num_train_epochs=3, per_device_train_batch_size=16, use_cpu=True,
                             report_to="none", save_strategy="no", disable_tqdm=True, seed=7,
                             train_sampling_strategy="group_by_length")
    trainer = WeightedLossTrainer(model=build_model(cfg, LABELS, minilm_tokenizer), args=args,
                                  train_dataset=[w.features() for w in windows],
                                  data_collator=DataCollatorForTokenClassification(minilm_tokenizer))
    trainer.train()
    assert trainer.state.global_step == 9 and seen == [0, 1, 2]


def test_select_last_keeps_the_final_epochs_model_and_best_dev_the_best(tmp_path, minilm_tokenizer):
    import pytest
    from safetensors.torch import load_file

    from bioner_grid.config import compose
    from bioner_grid.scoring import score
    from bioner_grid.train import train, training_arguments

    label2id = {label: i for i, label in enumerate(LABELS)}
    sents = read_conll(NCBI / "train.tsv", "Disease").sentences
    train_w = make_windows(minilm_tokenizer, sents[:64], label2id, 64)
    dev_sents = read_conll(NCBI / "devel.tsv", "Disease").sentences[:24]
    dev_w = make_windows(minilm_tokenizer, dev_sents, label2id, 64)
    model_cfg = OmegaConf.load(ROOT / "conf" / "model" / "tiny_bert.yaml")
    scores = {}
    for select in ("last", "best_dev"):
        t = compose([f"train.select={select}", "train.epochs=3", "train.batch_size=16", "train.lr=3e-3", "train.seed=3", "train.patience=null"]).train
        args = training_arguments(t, str(tmp_path / select), "cpu")
        assert args.load_best_model_at_end == (select == "best_dev")
        torch.manual_seed(0)
        trainer = train(build_model(model_cfg, LABELS, minilm_tokenizer), minilm_tokenizer, args, train_w, dev_w,
                        [s.tags for s in dev_sents], dict(enumerate(LABELS)), None, None, lambda m, step: None, score=score)
        epochs = [(h["eval_strict_f1"], h["eval_loss"]) for h in trainer.state.log_history if "eval_strict_f1" in h]
        assert len(epochs) == 3
        scores[select] = (trainer.evaluate()["eval_loss"], epochs)
        if select == "last":  # the model in hand is the one saved after the final step
            final = load_file(str(tmp_path / "last" / f"checkpoint-{trainer.state.global_step}" / "model.safetensors"))
            state = trainer.model.state_dict()
            assert all(torch.equal(state[k].cpu(), v) for k, v in final.items())
    # dev loss tells the epochs apart (a tiny model's strict F1 may tie); best_dev keeps the first best F1
    last_loss, epochs = scores["last"]
    assert last_loss == pytest.approx(epochs[-1][1])
    best_loss, epochs = scores["best_dev"]
    best = max(range(3), key=lambda i: (epochs[i][0], -i))
    assert best_loss == pytest.approx(epochs[best][1])
    if best != 2:
        assert best_loss != pytest.approx(last_loss)
    with pytest.raises(ValueError, match="train.select must be best_dev or last"):
        training_arguments(OmegaConf.create({**OmegaConf.to_container(t), "select": "best"}), str(tmp_path), "cpu")


def test_precision_auto_is_bf16_only_where_the_hardware_has_it(monkeypatch):
    import pytest

    from bioner_grid import runtime as t
    from bioner_grid.train import training_arguments

    monkeypatch.setattr(t, "bf16_native", lambda device: True)
    assert t.pick_precision("auto", "cpu") == "bf16"
    monkeypatch.setattr(t, "bf16_native", lambda device: False)
    assert t.pick_precision("auto", "cpu") == "fp32"
    assert t.pick_precision("fp32", "cpu") == "fp32" and t.pick_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ValueError, match="fp16 needs CUDA"):
        t.pick_precision("fp16", "cpu")
    with pytest.raises(ValueError, match="must be one of"):
        t.pick_precision("fp8", "cpu")
    args = training_arguments(OmegaConf.merge(OmegaConf.load(ROOT / "conf/train/default.yaml"), {"precision": "bf16"}),
                                "/tmp/unused", "cpu")
    assert args.bf16 and not args.fp16


def test_a_slurm_job_uses_at_most_the_cpus_it_was_given(monkeypatch):
    from bioner_grid.runtime import limit_threads

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
        assert limit_threads() == 1
        monkeypatch.setenv("SLURM_CPUS_PER_TASK", "8")  # more than the node has: torch's own choice stays
        torch.set_num_threads(2)
        assert limit_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_a_run_resumed_after_a_non_improving_evaluation_ends_as_the_uninterrupted_one(tmp_path, minilm_tokenizer):
    """Early stopping's patience counter travels in the checkpoint: a run stopped right after a
    checkpoint whose counter is 1 (one evaluation without improvement) and resumed from it stops
    at the same step, with the same dev scores at every evaluation and the same final model, as the
    run that was never stopped. (Without the counter restored the resumed run trains on: it needs
    two more evaluations without improvement instead of one.)"""
    import json
    from pathlib import Path

    import pytest
    from transformers import TrainerCallback

    from bioner_grid.config import compose
    from bioner_grid.scoring import score
    from bioner_grid.train import train, training_arguments

    label2id = {label: i for i, label in enumerate(LABELS)}
    train_w = make_windows(minilm_tokenizer, read_conll(NCBI / "train.tsv", "Disease").sentences[:96], label2id, 64)
    dev_sents = read_conll(NCBI / "devel.tsv", "Disease").sentences[:24]
    dev_w = make_windows(minilm_tokenizer, dev_sents, label2id, 64)
    # 6 steps an epoch, evaluated and checkpointed every 3 steps, early stopping after 2 evaluations
    # without a better dev strict F1 (this tiny random model's F1 peaks at the first evaluation)
    t = compose(["train.epochs=10", "train.batch_size=16", "train.lr=1e-3", "train.seed=3", "train.patience=2",
                 "train.checkpoint_steps=3", "train.precision=fp32"]).train
    model_cfg = OmegaConf.load(ROOT / "conf" / "model" / "tiny_bert.yaml")

    def patience_counted(checkpoint):
        state = json.loads((checkpoint / "trainer_state.json").read_text())
        return state["stateful_callbacks"]["EarlyStoppingCallback"]["attributes"]["early_stopping_patience_counter"]

    class StopAfterPatienceCounted(TrainerCallback):
        """Interrupt the run (as a kill would) right after the first checkpoint written with the
        early-stopping counter above 0."""

        at = None

        def on_save(self, args, state, control, **kwargs):
            if patience_counted(Path(args.output_dir) / f"checkpoint-{state.global_step}") >= 1:
                self.at = state.global_step
                raise KeyboardInterrupt

    def run(out, resume_from=None, callbacks=()):
        torch.manual_seed(0)
        return train(build_model(model_cfg, LABELS, minilm_tokenizer), minilm_tokenizer,
                     training_arguments(t, str(out), "cpu"), train_w, dev_w, [s.tags for s in dev_sents],
                     dict(enumerate(LABELS)), None, t.patience, lambda metrics, step: None, resume_from, callbacks,
                     score=score)

    def evaluations(trainer):
        return [(h["step"], h["eval_strict_f1"], h["eval_loss"]) for h in trainer.state.log_history if "eval_loss" in h]

    straight = run(tmp_path / "straight")
    stopper = StopAfterPatienceCounted()
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "resumed", callbacks=(stopper,))
    assert stopper.at is not None and stopper.at < straight.state.global_step
    checkpoint = tmp_path / "resumed" / f"checkpoint-{stopper.at}"
    resumed = run(tmp_path / "resumed", resume_from=str(checkpoint))

    assert straight.state.global_step < straight.state.max_steps  # early stopping ended it, not the epochs
    assert resumed.state.global_step == straight.state.global_step
    assert evaluations(resumed) == evaluations(straight)
    def final(trainer):  # the selected model's dev scores (timings aside)
        return {k: v for k, v in trainer.evaluate().items() if "runtime" not in k and "per_second" not in k}

    assert final(resumed) == final(straight)


def test_a_run_resumed_from_the_checkpoint_of_its_last_step_trains_no_further(tmp_path, minilm_tokenizer):
    """A requeue signal during the schedule's last step (or a time-out after training) leaves a
    checkpoint at max_steps. Taken up from it, the run ends with the uninterrupted run's step count
    and model: 8 steps of 7-step epochs (100 windows), where ``Trainer.train`` resumed from checkpoint-8 would
    run a ninth step in the partial second epoch (the SLURM test saw 241 of 240)."""
    from bioner_grid.config import compose
    from bioner_grid.scoring import score
    from bioner_grid.train import schedule_done, train, training_arguments

    label2id = {label: i for i, label in enumerate(LABELS)}
    train_w = make_windows(minilm_tokenizer, read_conll(NCBI / "train.tsv", "Disease").sentences[:96], label2id, 64)
    dev_sents = read_conll(NCBI / "devel.tsv", "Disease").sentences[:24]
    dev_w = make_windows(minilm_tokenizer, dev_sents, label2id, 64)
    t = compose(["train.max_steps=8", "train.batch_size=16", "train.lr=1e-3", "train.seed=3", "train.patience=null",
                 "train.precision=fp32"]).train
    model_cfg = OmegaConf.load(ROOT / "conf" / "model" / "tiny_bert.yaml")

    def run(out, resume_from=None):
        torch.manual_seed(0)
        return train(build_model(model_cfg, LABELS, minilm_tokenizer), minilm_tokenizer,
                     training_arguments(t, str(out), "cpu"), train_w, dev_w, [s.tags for s in dev_sents],
                     dict(enumerate(LABELS)), None, t.patience, lambda metrics, step: None, resume_from, (),
                     score=score)

    straight = run(tmp_path / "straight")
    assert straight.state.global_step == 8 and 8 % -(-len(train_w) // 16) != 0  # 8 steps end mid-epoch
    last = tmp_path / "straight" / "checkpoint-8"
    assert schedule_done(str(last)) is not None
    resumed = run(tmp_path / "resumed", resume_from=str(last))
    assert resumed.state.global_step == 8
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
