import random

import numpy as np

from bioner_grid.align import IGNORE, by_length, make_windows, predictions_to_tags
from bioner_grid.corpus import Sentence
from bioner_grid.data import read_conll
from conftest import NCBI

LABELS = ["O", "B-Disease", "I-Disease"]
L2I = {label: i for i, label in enumerate(LABELS)}
I2L = dict(enumerate(LABELS))


def oracle(windows, width=None):
    """Rows of predicted ids that are the gold ids, padded like the Trainer pads them."""
    width = width or max(len(w.input_ids) for w in windows)
    rows = np.full((len(windows), width), -100)
    for row, w in zip(rows, windows):
        row[: len(w.label_ids)] = w.label_ids
    return rows


def test_label_on_first_subtoken_only(minilm_tokenizer):
    sent = Sentence(["adenomatous", "polyposis", "coli"], ["B-Disease", "I-Disease", "I-Disease"])
    (w,) = make_windows(minilm_tokenizer, [sent], L2I, 64)
    labelled = [i for i, lab in enumerate(w.label_ids) if lab != IGNORE]
    assert labelled == w.first_positions and len(labelled) == 3
    assert len(w.input_ids) > 5  # these words split into several sub-tokens
    assert [w.label_ids[p] for p in labelled] == [1, 2, 2]


def test_long_sentence_is_windowed_never_truncated(minilm_tokenizer):
    rng = random.Random(0)
    words = [rng.choice(["tumour", "suppressor", "adenomatous", "polyposis", "(", "APC", ")"]) for _ in range(300)]
    tags = [rng.choice(LABELS) for _ in words]
    windows = make_windows(minilm_tokenizer, [Sentence(words, tags)], L2I, 32)
    assert len(windows) > 10
    assert all(len(w.input_ids) <= 32 for w in windows)
    assert sum(w.n_words for w in windows) == 300
    shuffled = by_length(windows[::-1])
    assert predictions_to_tags(shuffled, oracle(shuffled), I2L, 1) == [tags]


def test_every_test_word_of_ncbi_gets_a_prediction(data_root, minilm_tokenizer):
    sents = read_conll(NCBI / "test.tsv", "Disease").sentences
    windows = by_length(make_windows(minilm_tokenizer, sents, L2I, 24))
    assert len(windows) > len(sents)  # a short max_seq_length forces many windows
    assert predictions_to_tags(windows, oracle(windows), I2L, len(sents)) == [s.tags for s in sents]


def test_word_the_tokenizer_drops_still_gets_a_label(minilm_tokenizer):
    sent = Sentence(["fever", "\u200b", "cough"], ["B-Disease", "O", "B-Disease"])
    (w,) = make_windows(minilm_tokenizer, [sent], L2I, 16)
    assert w.n_words == 3 and len(w.first_positions) == 3
    assert predictions_to_tags([w], oracle([w]), I2L, 1) == [sent.tags]


def test_window_cache_returns_what_make_windows_makes_and_keys_on_every_input(minilm_tokenizer, tmp_path):
    from bioner_grid.align import cached_windows, windows_digest

    sents = read_conll(NCBI / "devel.tsv", "Disease").sentences[:200]
    fresh = make_windows(minilm_tokenizer, sents, L2I, 32)
    assert cached_windows(minilm_tokenizer, sents, L2I, 32, tmp_path) == fresh  # miss: writes the entry
    (entry,) = (tmp_path / "windows").iterdir()
    assert cached_windows(minilm_tokenizer, sents, L2I, 32, tmp_path) == fresh  # hit
    digest = windows_digest(minilm_tokenizer, sents, L2I, 32)
    i = next(i for i, s in enumerate(sents) if "B-Disease" in s.tags)  # one annotation removed
    edited = [*sents[:i], Sentence(sents[i].tokens, ["O"] * len(sents[i].tokens)), *sents[i + 1:]]
    assert len({digest, windows_digest(minilm_tokenizer, sents, L2I, 64), windows_digest(minilm_tokenizer, sents[:100], L2I, 32),
                windows_digest(minilm_tokenizer, edited, L2I, 32)}) == 4
    entry.write_bytes(b"truncated")  # a damaged entry is rebuilt, not trusted
    assert cached_windows(minilm_tokenizer, sents, L2I, 32, tmp_path) == fresh
    assert entry.read_bytes() != b"truncated"
