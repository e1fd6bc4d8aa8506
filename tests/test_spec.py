"""The run specification (``bioner_grid.spec``): every group closed and typed, every rule in one
function, the same for the job, ``plan`` and a sweep's preflight.

Each failure is reproduced through the real command line (the case is the command's exit code and
its one line), with a check that nothing was recorded: no run in the temporary MLflow store, no
job folder, no ``.submitit``. What does not need a process (the rules themselves, a bug keeping its
traceback) is tested in-process.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from test_faults import ENV, TINY, cli, last_line, recorded_runs, write  # noqa: F401 (ENV: the subprocesses' PYTHONPATH)

from bioner_grid import errors, spec
from bioner_grid.config import compose

NO_ENTITIES = "Aspirin\tO\ninduced\tO\nasthma\tO\n\nFever\tO\nreturned\tO\n"


def assert_refused(r, tmp: Path, message: str, before_job: bool = True) -> None:
    """Exit 2, ``message`` as the last (and only error) line, no traceback, nothing recorded (and,
    ``before_job``, no job folder: refused before Hydra creates one)."""
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert last_line(r) == message, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and r.stderr.count("error: ") == 1, r.stderr[-2000:]
    assert recorded_runs(tmp / "mlflow.db") == []
    assert not (tmp / "sweep" / ".submitit").exists()
    assert not before_job or not (tmp / "run").exists()


# --- Closed groups: a misspelt key fails at compose time, naming the nearest valid key ---

MISSPELT = [
    (["train.lrr=1e-4"], "train.lrr: no such key (did you mean train.lr?)"),
    (["model.haed=crf"], "model.haed: no such key (did you mean model.head?)"),
    (["dataset.trian=x.tsv"], "dataset.trian: no such key (did you mean dataset.train?)"),
    (["scheme.bta=0.5"], "scheme.bta: no such key (did you mean scheme.beta?)"),
    (["tracking.experment=x"], "tracking.experment: no such key (did you mean tracking.experiment?)"),
    (["data.max_train_sentence=5"], "data.max_train_sentence: no such key (did you mean data.max_train_sentences?)"),
    (["evaluation.faireval_fokus=system"], "evaluation.faireval_fokus: no such key (did you mean evaluation.faireval_focus?)"),
    (["dataset=aio", "dataset.membres=[]"], "dataset.membres: no such key (did you mean dataset.members?)"),
    (["scheme=welts"], "scheme=welts: no such option (did you mean scheme=welt?)"),
    (["train.lr=abc"], "train.lr: Value 'abc' of type 'str' could not be converted to Float"),
]


@pytest.mark.parametrize("overrides,message", MISSPELT, ids=[" ".join(o) for o, _ in MISSPELT])
def test_misspelt_key_fails_at_compose_time_in_one_line(tmp_path, overrides, message):
    started = time.perf_counter()
    r = cli(tmp_path, *TINY, *overrides)
    assert_refused(r, tmp_path, f"error: {message}")
    assert not (tmp_path / "mlflow.db").exists()  # refused before the store is even opened
    assert time.perf_counter() - started < 30


def test_misspelt_key_fails_the_same_way_in_plan_data_and_report(tmp_path):
    for module in ("bioner_grid.plan", "bioner_grid.data", "bioner_grid.report"):
        r = cli(tmp_path, "train.lrr=1e-4", module=module)
        assert_refused(r, tmp_path, "error: train.lrr: no such key (did you mean train.lr?)")


def test_misspelt_key_in_a_swept_value_stops_the_sweep_before_any_job(tmp_path):
    r = cli(tmp_path, *TINY, "train.lrr=1e-4,3e-4", "-m")
    assert_refused(r, tmp_path, "error: train.lrr: no such key (did you mean train.lr?)")  # Hydra's sweeper composes each job first
    assert not (tmp_path / "mlflow.db").exists()


# --- Cross-field rules, before anything runs ---


@pytest.mark.parametrize("launcher", ["local", "submitit_local"])
def test_crf_head_with_a_weighted_scheme_is_refused_before_any_job(tmp_path, launcher):
    r = cli(tmp_path, *TINY, "scheme=vanilla,welt", "model.head=crf", f"hydra/launcher={launcher}", "-m")
    assert_refused(r, tmp_path, "error: preflight: 1 problem(s), nothing launched: model.head=crf with scheme=welt: "
                                "class-weighted schemes are defined for the softmax head only; use scheme=vanilla with the CRF head")
    assert not (tmp_path / "sweep").exists() or [p.name for p in (tmp_path / "sweep").iterdir()] == ["multirun.yaml"]


def test_plan_applies_the_same_rules(tmp_path):
    r = cli(tmp_path, *TINY, "scheme=vanilla,welt", "model.head=crf", module="bioner_grid.plan")
    assert_refused(r, tmp_path, "error: model.head=crf with scheme=welt: class-weighted schemes are defined for the "
                                "softmax head only; use scheme=vanilla with the CRF head")


def test_dataset_without_its_mandatory_paths_names_the_key_in_seconds(tmp_path):
    started = time.perf_counter()
    r = cli(tmp_path, *TINY, "dataset=conll_files")
    assert_refused(r, tmp_path, "error: dataset.train: no value given (pass dataset.train=...)")
    assert time.perf_counter() - started < 15  # was MissingMandatoryValue after 20 s (exit 1)


def test_train_plus_dev_needs_last_and_no_patience(tmp_path):
    r = cli(tmp_path, *TINY, "data.train_on=train+dev")
    assert_refused(r, tmp_path, "error: data.train_on=train+dev: trains on dev, so nothing may be chosen or stopped on "
                                "it: set train.select=last and train.patience=null (or train=welt_authors)")


def test_fp16_on_cpu_is_refused_everywhere(tmp_path):
    cfg = compose(["train.precision=fp16", "train.device=cpu"])
    assert spec.problems(cfg) == ["train.precision=fp16: needs CUDA (train.device=cpu); use bf16 or fp32"]
    auto = compose(["train.precision=fp16"])
    assert spec.problems(auto) == []  # device=auto: only the job's machine can tell
    assert spec.problems(auto, spec.Machine(cuda=False)) == [
        "train.precision=fp16: needs CUDA (train.device=auto, no CUDA device on this machine); use bf16 or fp32"]
    assert spec.problems(auto, spec.Machine(cuda=True)) == []
    assert spec.problems(compose(["train.precision=bf16"]), spec.Machine(cuda=False)) == []  # emulated, never refused


# --- A training split with no entities: refused for every scheme alike, naming the file ---


@pytest.mark.parametrize("scheme", ["vanilla", "welt", "ins"])
def test_training_split_without_entities_is_refused_for_every_scheme(tmp_path, scheme):
    empty = write(tmp_path / "noent.tsv", NO_ENTITIES)
    r = cli(tmp_path, *TINY, "dataset=conll_files", f"dataset.train={empty}", f"dataset.dev={empty}",
            f"dataset.test={empty}", f"scheme={scheme}")
    assert_refused(r, tmp_path, f"error: {empty}:0: the training split has no entities (every tag is O): nothing to learn",
                   before_job=False)  # the data is read in the job, before the store is opened


# --- Errors: bad input is one line, a bug keeps its traceback ---


def test_an_internal_bug_keeps_its_traceback(tmp_path, monkeypatch, data_root):
    """A plain exception inside a stage is not user input: the command does not turn it into a line."""
    from bioner_grid import pipeline

    def broken(*args, **kwargs):
        raise RuntimeError("invariant broken")

    monkeypatch.setattr(pipeline, "load_corpus", broken)
    cfg = compose([f"data.root={data_root}", *TINY, f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
                   f"data.cache={tmp_path}/cache"])
    with pytest.raises(RuntimeError, match="invariant broken"):
        errors.guarded(pipeline.prepare, cfg, tmp_path)
    assert errors.classify(ValueError("x")) is None  # a ValueError is no longer bad input by default


def test_old_names_are_aliases_of_the_one_hierarchy():
    from bioner_grid import corpus, grid, guard, schema

    assert schema.ConfigError is errors.ConfigError and corpus.DataError is errors.DataError
    assert grid.PreflightError is errors.InputError and guard.JobFailed is errors.JobFailed
    assert schema.config_problems is spec.problems


def test_every_schema_option_is_stored_and_no_yaml_option_shadows_one():
    from hydra.core.config_store import ConfigStore

    spec.register()
    repo = ConfigStore.instance().repo
    for group, name in spec.SCHEMAS:
        assert f"{name}.yaml" in repo["schema"][group], (group, name)
        assert group not in repo or f"{name}.yaml" not in repo[group]  # not among the options a user picks
    # read sites hold no defaults of their own: the schema's are the only ones
    root = Path(spec.__file__).parent
    for path in set(root.glob("*.py")) - {Path(spec.__file__)}:  # spec's docstring names the pattern
        text = path.read_text()
        for pattern in ('get("head", "softmax")', 'get("select", "best_dev")', 'get("train_on", "train")',
                        'get("system_metrics", True)'):
            assert pattern not in text, (path.name, pattern)


def test_sweep_job_with_a_good_config_still_runs(tmp_path):
    """The closed groups keep a normal run working end to end (exit 0, one FINISHED run)."""
    r = cli(tmp_path, *TINY, "train.max_steps=2")
    assert r.returncode == 0, r.stderr[-3000:]
    assert [status for _, status in recorded_runs(tmp_path / "mlflow.db")] == ["FINISHED"]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
