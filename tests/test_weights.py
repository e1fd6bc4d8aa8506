import math

import pytest

from bioner_grid.corpus import Sentence
from bioner_grid.data import read_conll
from bioner_grid.weights import count_classes, ens, ins, is_degenerate, isns, label_weights, scheme_weights, welt
from conftest import NCBI

# The WeLT paper's NCBI example.
PAPER_COUNTS = {"O": 4_262_718, "B": 389_892, "I": 1_215_981}


def test_welt_reproduces_the_papers_ncbi_example():
    w = welt(PAPER_COUNTS)
    assert [round(w[c], 4) for c in "OBI"] == [0.2167, 0.4192, 0.3641]
    assert math.isclose(sum(w.values()), 1.0)


def test_ins_isns_ens_formulas():
    counts = {"O": 100, "B": 4, "I": 9}
    assert ins(counts) == {"O": 0.01, "B": 0.25, "I": 1 / 9}
    assert isns(counts) == {"O": 0.1, "B": 0.5, "I": 1 / 3}
    e = ens({"O": 1, "B": 2}, 0.5)
    assert e == {"O": 1.0, "B": 0.5 / 0.75}
    assert scheme_weights("vanilla", counts) is None


@pytest.mark.parametrize("beta", [0.3, 0.5, 0.9])
def test_ens_is_uniform_on_a_real_corpus(data_root, beta):
    sents = read_conll(NCBI / "train.tsv", "Disease").sentences
    counts = count_classes(sents, ["O", "B-Disease", "I-Disease"])
    w = scheme_weights("ens", counts, beta)
    assert is_degenerate(w) and math.isclose(w["O"], 1 - beta)
    assert not is_degenerate(scheme_weights("welt", counts))
    assert not is_degenerate(ens({"O": 5, "B": 1}, 0.9))


def test_multi_type_labels_share_class_weights_and_map_by_name():
    sents = [Sentence(["a", "b", "c", "d"], ["B-Chemical", "I-Chemical", "O", "B-Disease"])]
    labels = ["I-Disease", "O", "B-Chemical", "B-Disease", "I-Chemical"]  # any order: matched by name
    counts = count_classes(sents, labels)
    assert counts == {"O": 1, "B": 2, "I": 1}
    w = ins(counts)
    assert label_weights(w, labels) == [1.0, 1.0, 0.5, 0.5, 1.0]


def test_per_label_weights():
    sents = [Sentence(["a", "b", "c", "d"], ["B-Chemical", "O", "O", "B-Disease"])]
    labels = ["O", "B-Chemical", "B-Disease"]
    counts = count_classes(sents, labels, per_label=True)
    assert counts == {"O": 2, "B-Chemical": 1, "B-Disease": 1}
    assert label_weights(isns(counts), labels, per_label=True) == [1 / math.sqrt(2), 1.0, 1.0]


def test_zero_count_cannot_be_weighted():
    with pytest.raises(ValueError, match="without training tokens cannot be weighted: I"):
        ins({"O": 3, "B": 1, "I": 0})
