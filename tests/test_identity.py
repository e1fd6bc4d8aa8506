"""What counts as the same experiment: run and cell keys, liveness, and the skip/resume rule."""

import shutil
import time
from types import SimpleNamespace

import pytest

from bioner_grid.config import compose
from bioner_grid.identity import Decision, GRID_KEYS, cell_key, corpus_digests, decide, grid_values, is_live, run_key

# Settings that change where or how a run executes, or how it is shown, never what it computes.
OPERATIONAL = [
    "data.cache=/tmp/cache", "data.upstream=http://mirror", "data.upstream_pubtator=http://mirror",
    "tracking.uri=http://server:5000", "tracking.experiment=other", "report.out=/tmp/r", "evaluation.error_examples=3",
    "train.force=true", "train.checkpoint_steps=10", "train.keep_checkpoints=true", "train.device=cpu",
    "train.eval_batch_size=7", "+model.resources.mem_gb=64", "grid.name=x", "grid.heartbeat_s=5", "scheme.label=Mine",
    "model.display_name=Mine", "dataset.display_name=Mine", "report.resamples=2000", "report.seed=3",
]
# Settings that change the result.
RESULT = [
    "train.lr=3e-5", "train.seed=2", "train.epochs=3", "train.warmup_ratio=0", "train.batch_size=8",
    "train.max_seq_length=64", "scheme=vanilla", "scheme.per_label=true", "model.head=crf", "model=tiny_bert",
    "data.max_train_sentences=10", "data.max_eval_sentences=10", "dataset=bc5cdr_chem", "evaluation.faireval_focus=system",
]


@pytest.fixture(scope="module")
def base(data_root):
    return compose([f"data.root={data_root}"])


@pytest.mark.parametrize("override", OPERATIONAL)
def test_operational_settings_keep_the_key(base, data_root, override):
    cfg = compose([f"data.root={data_root}", override])
    assert run_key(cfg) == run_key(base) and cell_key(cfg) == cell_key(base)


@pytest.mark.parametrize("override", RESULT)
def test_result_settings_change_the_key(base, data_root, override):
    cfg = compose([f"data.root={data_root}", override])
    assert run_key(cfg) != run_key(base)
    assert (cell_key(cfg) == cell_key(base)) == (override == "train.seed=2")  # the seed alone stays in the cell


def test_a_copied_corpus_keeps_the_key_and_a_one_byte_edit_changes_it(tmp_path, data_root):
    src = data_root / "conll" / "NCBI-disease"
    for name in ("train.tsv", "devel.tsv", "test.tsv"):
        shutil.copy(src / name, tmp_path / name)
    files = [f"dataset.train={tmp_path}/train.tsv", f"dataset.dev={tmp_path}/devel.tsv", f"dataset.test={tmp_path}/test.tsv"]
    original = compose([f"data.root={data_root}"])
    copied = compose([f"data.root={data_root}", *files])
    assert run_key(copied) == run_key(original)
    assert corpus_digests(copied)["train"] == "58379baf4614b8d757d93dd7a21b202849ca99f9b9d71b49185523ff5443300c"
    text = (tmp_path / "test.tsv").read_text()
    (tmp_path / "test.tsv").write_text(text.replace("\tO\n", "\tB-Disease\n", 1))
    edited = compose([f"data.root={data_root}", *files])
    assert run_key(edited) != run_key(original) and corpus_digests(edited)["test"] != corpus_digests(original)["test"]


def test_a_corpus_not_fetched_yet_is_keyed_by_its_pinned_checksum(tmp_path):
    cfg = compose([f"data.root={tmp_path}"])
    assert corpus_digests(cfg)["dev"] == "b4e1e7efcc2a35047bf2f3d281648357470e674f555d4a26a0049ac37d59cc61"


def test_all_in_one_members_are_keyed_by_their_files(data_root):
    digests = corpus_digests(compose([f"data.root={data_root}", "dataset=aio"]))
    assert {"BioRED.train", "BioRED.test", "NCBIdisease.train", "BioID.test"} <= set(digests)


def test_grid_values_name_the_six_keys(base):
    assert tuple(grid_values(base)) == GRID_KEYS and grid_values(base)["lr"] == "0.0001"


def run(status, tags=None, start=0, run_id="r"):
    return SimpleNamespace(info=SimpleNamespace(status=status, start_time=start, run_id=run_id),
                           data=SimpleNamespace(tags=tags or {}))


ME = {"host": "node1", "pid": "1", "slurm_job_id": "77_3"}


def test_liveness_from_heartbeat_host_pid_and_slurm_job():
    now = time.time()
    other_node = {"heartbeat": str(now - 10), "host": "node2", "pid": "5", "slurm_job_id": "12_1"}
    assert is_live(other_node, now, 60, ME)
    assert not is_live({**other_node, "heartbeat": str(now - 181)}, now, 60, ME)  # silent for 3 periods
    assert not is_live({**other_node, "slurm_job_id": "77_3"}, now, 60, ME)  # this job's own earlier attempt
    assert not is_live({**other_node, "host": "node1", "pid": "999999999"}, now, 60, ME)  # gone from this host
    assert not is_live({}, now, 60, ME)  # recorded before heartbeats


def test_liveness_reads_the_ops_tags_and_the_unprefixed_ones_of_older_runs():
    from bioner_grid.identity import ops_tag

    now = time.time()
    new = {"ops.heartbeat": str(now - 10), "ops.host": "node2", "ops.pid": "5", "ops.slurm_job_id": "12_1"}
    assert is_live(new, now, 60, ME)
    assert not is_live({**new, "ops.heartbeat": str(now - 181)}, now, 60, ME)
    assert not is_live({**new, "ops.slurm_job_id": "77_3"}, now, 60, ME)
    assert not is_live({**new, "ops.host": "node1", "ops.pid": "999999999"}, now, 60, ME)
    # a run continued by this version after an older one: the fresh ops.heartbeat wins over the stale one
    assert is_live({"heartbeat": str(now - 3600), **new}, now, 60, ME)
    assert ops_tag({"checkpoint_dirs": "/a"}, "checkpoint_dirs") == "/a" and ops_tag({}, "pid") == ""


def test_one_rule_for_skip_in_flight_continue_and_new():
    now = time.time()
    live = {"heartbeat": str(now), "host": "node2", "pid": "5", "slurm_job_id": ""}
    dead = {**live, "heartbeat": str(now - 3600)}
    rule = lambda runs, force=False, ckpt=None: decide(runs, force, now, 60, lambda r: ckpt, ME)  # noqa: E731
    assert rule([run("FINISHED", run_id="a")]) == Decision("finished", "a")
    assert rule([run("FINISHED", run_id="a")], force=True) == Decision("new")
    assert rule([run("RUNNING", live, run_id="b")]) == Decision("in_flight", "b")
    assert rule([run("RUNNING", live, run_id="b")], force=True) == Decision("in_flight", "b")  # never taken over
    assert rule([run("RUNNING", dead, run_id="c")], ckpt="/x/checkpoint-10") == Decision("continue", "c", "/x/checkpoint-10")
    assert rule([run("KILLED", run_id="d")]) == Decision("continue", "d", None)  # starts over in the same run
    assert rule([run("FAILED", run_id="e")]) == Decision("new")  # a failed run is kept
    assert rule([run("FAILED", run_id="e")], ckpt="/x/checkpoint-5") == Decision("continue", "e", "/x/checkpoint-5")
    assert [d.status for d in (Decision("finished"), Decision("in_flight"), Decision("continue"), Decision("new"))] == \
        ["FINISHED", "IN FLIGHT", "STALE", "TODO"]
