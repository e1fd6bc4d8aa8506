"""FairEval: the reference's published example reproduced exactly, and hand-built error cases."""

import pytest

from bioner_grid.corpus import DataError
from bioner_grid.evaluate import load_pair, main
from bioner_grid.scoring import mismatch_examples, score
from bioner_grid.faireval import DEFAULT_WEIGHTS, Span, compare, evaluate, prf, read_span_file, spans_from_bio, tables
from conftest import DATA, ROOT

GOLDEN = DATA.parent / "faireval"


def golden_tables() -> dict[str, dict[str, list[str]]]:
    """eval_ner.csv's sections as {title: {label: [cells]}} (cells as printed)."""
    sections, title = {}, None
    for line in (GOLDEN / "eval_ner.csv").read_text().splitlines():
        if line.startswith("### "):
            title = line[4:].rstrip(":")
            sections[title] = {}
        elif title and line.strip():
            cells = line.split("\t")
            sections[title][cells[0]] = cells[1:]
    return sections


@pytest.fixture(scope="module")
def golden_counts():
    if not (GOLDEN / "eval_ner.csv").is_file():
        pytest.fail(f"FairEval golden data not found under {GOLDEN}")
    return evaluate(read_span_file(GOLDEN / "target/ner_spans.csv"), read_span_file(GOLDEN / "system/ner_spans.csv"), "target")


@pytest.mark.parametrize("method", ["traditional", "fair", "weighted"])
def test_golden_file_every_count_and_score(golden_counts, method):
    expected = golden_tables()[f"{method.title()} evaluation"]
    header = expected.pop("Label")
    ours = {row["label"]: row for row in tables(golden_counts)[method]}
    assert set(ours) == set(expected) == {"LOC", "ORG", "OTH", "PER", "overall"}
    for label, cells in expected.items():
        got = [str(ours[label][h]) if h not in ("Prec", "Rec", "F1") else
               f"{ours[label][{'Prec': 'precision', 'Rec': 'recall', 'F1': 'f1'}[h]]:.2f}" for h in header]
        assert got == cells, (method, label)


def test_golden_confusion_matrix(golden_counts):
    expected = golden_tables()["Confusion matrix"]
    columns = expected.pop("Target\\System")
    for target, cells in expected.items():
        assert [golden_counts.confusion.get((target, s), 0) for s in columns] == [int(c) for c in cells]


def test_cli_prints_the_reference_tables(monkeypatch, capsys):
    from bioner_grid import cli as commands

    monkeypatch.chdir(ROOT)  # python -m bioner_grid.evaluate, in this process (its real entry point: tests/test_cli.py)
    code = commands.run("evaluate", [str(GOLDEN / "target/ner_spans.csv"), str(GOLDEN / "system/ner_spans.csv")])
    out, err = capsys.readouterr()
    assert code == 0, err
    reference = (GOLDEN / "eval_ner.csv").read_text()
    block = out[out.index("### Traditional evaluation:"):].strip()
    assert block in reference  # the three tables, byte for byte as the reference printed them


def one(target, system, focus="target"):
    return compare(target, system, focus)


@pytest.mark.parametrize(
    "target, system, error",
    [
        ([Span("PER", 1, 2)], [Span("PER", 1, 2)], "TP"),
        ([Span("PER", 1, 2)], [Span("LOC", 1, 2)], "LE"),
        ([Span("PER", 1, 3)], [Span("PER", 2, 3)], "BES"),
        ([Span("PER", 2, 3)], [Span("PER", 1, 3)], "BEL"),
        ([Span("PER", 2, 4)], [Span("PER", 3, 5)], "BEO"),
        ([Span("PER", 1, 3)], [Span("LOC", 2, 4)], "LBE"),
    ],
)
def test_each_error_type_is_counted_once(target, system, error):
    c = one(target, system)
    expected = {error: 1, **({"BE": 1} if error.startswith("BE") else {})}
    assert {k: v for k, v in c.fair.items() if v} == expected
    if error != "TP":
        assert c.traditional == {"FP": 1, "FN": 1}


def test_disjoint_spans_are_fp_and_fn():
    c = one([Span("PER", 1, 1)], [Span("PER", 3, 3)])
    assert {k: v for k, v in c.fair.items() if v} == {"FP": 1, "FN": 1}


def test_adjacent_targets_merged_by_the_system_are_two_boundary_errors():
    # gold: [PER 1-2][PER 3-4]; system: one PER 1-4 -> traditionally 1 FP + 2 FN
    c = one([Span("PER", 1, 2), Span("PER", 3, 4)], [Span("PER", 1, 4)])
    assert c.traditional == {"FP": 1, "FN": 2}
    assert {k: v for k, v in c.fair.items() if v} == {"BE": 2, "BEL": 2}


def test_nested_target_span_left_unmatched_is_a_false_negative():
    c = one([Span("ORG", 1, 4), Span("LOC", 3, 4)], [Span("ORG", 1, 4)])
    assert {k: v for k, v in c.fair.items() if v} == {"TP": 1, "FN": 1}
    assert c.fair_by_label["LOC"]["FN"] == 1


def test_focus_decides_the_label_of_a_label_error():
    assert one([Span("PER", 1, 2)], [Span("LOC", 1, 2)], "target").fair_by_label["PER"]["LE"] == 1
    c = one([Span("PER", 1, 2)], [Span("LOC", 1, 2)], "system")
    assert c.fair_by_label["LOC"]["LE"] == 1 and c.fair_by_label["PER"]["LE"] == 0


def test_weighted_scores_use_the_papers_weights():
    c = one([Span("PER", 1, 3)], [Span("PER", 2, 3)])  # BES = 0.5 TP + 0.5 FN
    assert prf(c.fair, DEFAULT_WEIGHTS) == (1.0, 0.5, pytest.approx(2 / 3))
    assert prf(c.traditional, {"TP": {"TP": 1}, "FP": {"FP": 1}, "FN": {"FN": 1}}) == (0.0, 0.0, 0.0)


def test_spans_from_bio_are_strict_iob2():
    spans = spans_from_bio(["B-A", "I-A", "O", "I-A", "B-B", "I-A"])
    assert [(s.label, s.begin, s.end) for s in spans] == [("A", 1, 2), ("B", 5, 5)]


def test_traditional_counts_agree_with_seqeval_strict():
    gold = [["B-D", "I-D", "O", "B-C", "O"], ["O", "B-D", "O", "O"]]
    pred = [["B-D", "I-D", "I-D", "B-C", "O"], ["I-D", "B-D", "B-C", "I-C"]]
    c = evaluate([spans_from_bio(t) for t in gold], [spans_from_bio(t) for t in pred])
    s = score(gold, pred)["strict"]
    p, r, _ = prf(c.traditional, {"TP": {"TP": 1}, "FP": {"FP": 1}, "FN": {"FN": 1}})
    assert (p, r) == (pytest.approx(s["precision"]), pytest.approx(s["recall"]))


def test_mismatch_types_of_the_welt_paper():
    tokens = [["a", "b", "c", "d", "e", "f"]]
    gold = [["B-D", "I-D", "O", "B-D", "O", "O"]]
    pred = [["B-D", "O", "O", "O", "O", "B-D"]]
    m = mismatch_examples(tokens, gold, pred, limit=5)
    assert [m[k]["count"] for k in ("type1", "type2", "type3")] == [1, 1, 1]
    assert m["type1"]["examples"][0]["span"] == ["D", "f", 6, 6]
    assert m["type2"]["examples"][0]["span"] == ["D", "d", 4, 4]
    assert m["type3"]["examples"][0]["span"] == ["D", "a", 1, 1]
    assert m["type3"]["examples"][0]["gold"] == [["D", "a b", 1, 2], ["D", "d", 4, 4]]
    assert mismatch_examples(tokens * 3, gold * 3, pred * 3, limit=2)["type1"] == {
        "description": "predicted but not annotated", "count": 3, "examples": m["type1"]["examples"] * 2}


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_bio_files_must_have_the_same_tokens(tmp_path):
    gold = write(tmp_path, "g.tsv", "a\tB-X\nb\tO\n\nc\tO\n")
    pred = write(tmp_path, "p.tsv", "a\tB-X\nB\tO\n\nc\tO\n")
    with pytest.raises(DataError, match=rf"^{pred}:2: token 'B' differs from 'b' at {gold}:2$"):
        load_pair(gold, pred)
    short = write(tmp_path, "s.tsv", "a\tB-X\n\nc\tO\n")
    with pytest.raises(DataError, match=rf"^{short}:1: sentence 1 has 1 tokens, but 2 in {gold}:1$"):
        load_pair(gold, short)


def test_cli_bad_inputs_exit_nonzero(tmp_path, capsys):
    bad_tag = write(tmp_path, "t.conll", "a\tB-X\tQ-X\n")
    assert main([str(bad_tag)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {bad_tag}:1: tag 'Q-X' is not IOB2 (expected O, B, I, B-<type> or I-<type>)"
    good = write(tmp_path, "ok.csv", "PER\t1\t2\t1, 2\n")
    bad_span = write(tmp_path, "bad.csv", "PER\t1\t2\t1, 2\n\nLOC\t3\t1\t3\n")
    assert main([str(good), str(bad_span)]) == 2
    assert capsys.readouterr().err.strip() == f"error: {bad_span}:3: bad span 'LOC' 3..1 tokens [3]"


def test_cli_reads_our_prediction_columns(tmp_path, capsys):
    f = write(tmp_path, "predictions_test.conll", "Aspirin\tO\tO\nasthma\tB-Disease\tB-Disease\nattack\tI-Disease\tO\n")
    assert main([str(f), "--format", "json"]) == 0
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["seqeval strict evaluation"][-1]["f1"] == 0.0
    assert out["Fair evaluation"][-1]["BE"] == 1
    assert out["Weighted evaluation"][-1]["BES"] == 1
