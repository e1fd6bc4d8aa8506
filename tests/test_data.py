import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from bioner_grid.corpus import DataError, entity_spans
from bioner_grid.data import check_root, load_corpus, read_conll, split_stats
from conftest import NCBI, ROOT


def write(tmp_path, text: str | bytes, name="x.tsv"):
    p = tmp_path / name
    p.write_bytes(text if isinstance(text, bytes) else text.encode())
    return p


def conll_cfg(**kw):
    base = dict(name="t", format="conll", train=None, dev=None, test=None, entity_type="Entity", split=None,
                dev_fraction=0.1, split_seed=42)
    return OmegaConf.create({**base, **kw})


def test_real_ncbi_matches_published_counts(data_root):
    train = read_conll(NCBI / "train.tsv", "Disease")
    stats = split_stats(train)
    # shared/datasets/README.md: 5424 / 923 / 940 sentences
    assert stats["sentences"] == 5424
    assert stats["entities"] == {"Disease": 5134}
    assert stats["classes"] == {"O": 124452, "B": 5134, "I": 6115}
    assert len(read_conll(NCBI / "devel.tsv").sentences) == 923
    assert len(read_conll(NCBI / "test.tsv").sentences) == 940


def test_bare_tags_get_the_dataset_type(tmp_path):
    p = write(tmp_path, "Aspirin\tB\ninduced\tO\nasthma\tB\nattack\tI\n\n")
    s = read_conll(p, "Disease").sentences
    assert s[0].tags == ["B-Disease", "O", "B-Disease", "I-Disease"]


@pytest.mark.parametrize(
    "text, problem",
    [
        ("a\tO\nb O\n", ":2: expected 2 tab-separated fields"),
        ("a\tO\tX\n", ":1: expected 2 tab-separated fields"),
        ("a\tO\n\nb\tE-Disease\n", ":3: tag 'E-Disease' is not IOB2"),
        ("a\tO\nb\tS\n", ":2: tag 'S' is not IOB2"),
        ("\n\n", ":1: empty split"),
        (b"a\tO\n\nb\xff\tO\n", ":3: not UTF-8"),
    ],
)
def test_bad_input_names_file_and_line(tmp_path, text, problem):
    p = write(tmp_path, text)
    with pytest.raises(DataError) as e:
        read_conll(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}:") and problem in msg and "\n" not in msg


def test_i_after_o_is_reported_not_changed(tmp_path):
    p = write(tmp_path, "a\tO\nb\tI-X\nc\tI-X\n\nd\tB-Y\ne\tI-X\n")
    split = read_conll(p)
    assert split.iob_slips == [2, 6]
    assert split.sentences[0].tags == ["O", "I-X", "I-X"]


def test_single_file_split_is_seeded_and_disjoint(tmp_path):
    text = "".join(f"w{i}\tO\nx{i}\tB-Gene\n\n" for i in range(100))
    p = write(tmp_path, text)
    cfg = conll_cfg(train=str(p), split=0.8)
    a, b = load_corpus(cfg), load_corpus(cfg)
    sizes = {k: len(v.sentences) for k, v in a.splits.items()}
    assert sizes == {"train": 72, "dev": 8, "test": 20}
    words = {k: [s.tokens[0] for s in v.sentences] for k, v in a.splits.items()}
    assert words == {k: [s.tokens[0] for s in v.sentences] for k, v in b.splits.items()}
    assert not set(words["train"]) & set(words["test"]) and not set(words["dev"]) & set(words["test"])
    assert a.labels == ["O", "B-Gene", "I-Gene"]


def test_missing_root_error_says_how_to_supply_it(tmp_path):
    with pytest.raises(DataError, match=r"data root not found; pass data.root=PATH or set BIONER_DATA"):
        check_root(tmp_path / "nope")


def test_entity_spans_conlleval_rules():
    assert entity_spans(["B-A", "I-A", "O", "I-A", "B-B", "I-A"]) == [("A", 0, 2), ("A", 3, 4), ("B", 4, 5), ("A", 5, 6)]


def run_data_cli(*args):
    return subprocess.run([sys.executable, "-m", "bioner_grid.data", *args], capture_output=True, text=True, cwd=ROOT)


def test_data_cli_prints_tables_1_and_11(data_root, capsys, monkeypatch):
    from bioner_grid import cli

    monkeypatch.chdir(ROOT)  # in this process (the real command line: the test below)
    assert cli.run("data", ["dataset=bc5cdr_chem", f"data.root={data_root}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "corpus bc5cdr_chem"
    train = lines[2].split()
    assert train[:3] == ["train", "4560", "118170"] and "Chemical=5203" in lines[2]


def test_data_cli_bad_file_exits_nonzero_with_one_line(tmp_path):
    bad = write(tmp_path, "a\tO\nb\tQ-X\n")
    r = run_data_cli("dataset=conll_files", f"dataset.train={bad}", "dataset.split=0.8")
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: {bad}:2: tag 'Q-X' is not IOB2 (expected O, B, I, B-<type> or I-<type>)"


def test_data_cli_prints_what_overlap_found(data_root):
    r = run_data_cli("dataset=ncbi_disease", f"data.root={data_root}")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    at = lines.index("overlap (data.overlap=warn): training sentences also in a test split 1, in a dev split 12; removed 0")
    assert lines[at + 1].endswith("NCBI-disease/train.tsv: 1 sentences also in " + str(data_root / "conll/NCBI-disease/test.tsv"))
    assert lines[-1] == "  test units also in training: test 1 of 940"
