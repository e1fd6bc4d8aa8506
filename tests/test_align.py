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


class Payload:
    """What a planted pickle would do when loaded: create ``marker`` (a stand-in for any command)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_window_cache_never_loads_a_planted_pickle(minilm_tokenizer, tmp_path, caplog):
    import pickle

    from bioner_grid.align import cached_windows, windows_digest

    sents = read_conll(NCBI / "devel.tsv", "Disease").sentences[:50]
    fresh = make_windows(minilm_tokenizer, sents, L2I, 32)
    folder, digest = tmp_path / "cache" / "windows", windows_digest(minilm_tokenizer, sents, L2I, 32)
    folder.mkdir(parents=True)
    marker = tmp_path / "pwned"
    (folder / f"{digest}.pkl").write_bytes(pickle.dumps(Payload(marker)))  # the old format's name
    with open(folder / f"{digest}.npz", "wb") as f:  # the new name: an archive with a pickled object array
        np.savez(f, meta=np.array([Payload(marker)], dtype=object), digest=np.array("x"))
    assert cached_windows(minilm_tokenizer, sents, L2I, 32, tmp_path / "cache") == fresh
    assert not marker.exists()
    assert f"{folder / digest}.npz: window cache entry does not validate" in caplog.text
    (folder / f"{digest}.npz").write_bytes(pickle.dumps(Payload(marker)))  # a bare pickle under the new name
    assert cached_windows(minilm_tokenizer, sents, L2I, 32, tmp_path / "cache") == fresh
    assert not marker.exists()
    assert cached_windows(minilm_tokenizer, sents, L2I, 32, tmp_path / "cache") == fresh  # rebuilt entry is a hit
    assert not marker.exists()


def test_window_cache_rebuilds_an_edited_or_misnamed_entry_with_a_warning(minilm_tokenizer, tmp_path, caplog):
    import logging

    from bioner_grid.align import cached_windows

    sents = read_conll(NCBI / "devel.tsv", "Disease").sentences[:50]
    fresh = make_windows(minilm_tokenizer, sents, L2I, 32)
    cached_windows(minilm_tokenizer, sents, L2I, 32, tmp_path)
    (entry,) = (tmp_path / "windows").iterdir()
    with np.load(entry) as npz:
        arrays = dict(npz)
    labels = arrays["label_ids"]
    labels[np.flatnonzero(labels == L2I["O"])[0]] = L2I["B-Disease"]  # one word relabelled, digest kept
    with open(entry, "wb") as f:
        np.savez(f, **arrays)
    with caplog.at_level(logging.WARNING):
        assert cached_windows(minilm_tokenizer, sents, L2I, 32, tmp_path) == fresh
    assert f"{entry}: window cache entry does not validate (ValueError: content digest does not match)" in caplog.text
    caplog.clear()
    assert cached_windows(minilm_tokenizer, sents, L2I, 32, tmp_path) == fresh and not caplog.text  # rebuilt: a clean hit
    other = sents[:49]  # a valid entry copied under another key's name does not validate there
    cached_windows(minilm_tokenizer, other, L2I, 32, tmp_path)
    (other_entry,) = set((tmp_path / "windows").iterdir()) - {entry}
    other_entry.write_bytes(entry.read_bytes())
    assert cached_windows(minilm_tokenizer, other, L2I, 32, tmp_path) == make_windows(minilm_tokenizer, other, L2I, 32)
    assert f"{other_entry}: window cache entry does not validate" in caplog.text


def test_window_cache_files_follow_the_umask(minilm_tokenizer, tmp_path):
    import os

    from bioner_grid.align import cached_windows

    sents = read_conll(NCBI / "devel.tsv", "Disease").sentences[:20]
    for umask, mode in ((0o022, 0o644), (0o027, 0o640)):
        old = os.umask(umask)
        try:
            cached_windows(minilm_tokenizer, sents, L2I, 32, tmp_path / oct(umask))
        finally:
            os.umask(old)
        (entry,) = (tmp_path / oct(umask) / "windows").iterdir()
        assert entry.stat().st_mode & 0o777 == mode
