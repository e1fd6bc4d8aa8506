from bioner_grid.scoring import flat_metrics, score


def test_strict_mode_really_is_strict():
    gold = [["O", "B-Disease", "I-Disease", "O"]]
    pred = [["O", "I-Disease", "I-Disease", "O"]]  # conlleval accepts the stray I- as a start; IOB2 does not
    s = score(gold, pred)
    assert s["default"]["f1"] == 1.0
    assert s["strict"]["f1"] == 0.0


def test_micro_and_per_type_scores():
    gold = [["B-Chem", "O", "B-Dis", "I-Dis"], ["B-Chem", "I-Chem", "O", "O"]]
    pred = [["B-Chem", "O", "B-Dis", "O"], ["B-Chem", "I-Chem", "O", "B-Dis"]]
    s = score(gold, pred)["strict"]
    # TP: Chem x2; FP: Dis(2,3)->Dis(2,2), Dis(3); FN: Dis(2,3)
    assert s["precision"] == 2 / 4 and s["recall"] == 2 / 3
    assert s["per_type"]["Chem"]["f1"] == 1.0 and s["per_type"]["Dis"]["f1"] == 0.0
    m = flat_metrics(score(gold, pred), "test")
    assert m["test_strict_precision"] == 0.5 and m["test_Chem_f1"] == 1.0 and "test_strict_Dis_f1" in m
