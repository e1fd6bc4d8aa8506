"""Tokenisation and label alignment.

Words are pre-split; the fast tokenizer maps them to sub-tokens. Each word's label goes on its
first sub-token, -100 (ignored by the loss) on the rest. A sentence longer than
``max_seq_length`` sub-tokens is cut at word boundaries into consecutive windows, never truncated,
so every word gets a prediction. (A single word longer than a whole window keeps its first
``max_seq_length - specials`` sub-tokens; its label sits on the first one.)
"""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import dataclass
from pathlib import Path

from bioner_grid.corpus import Sentence, write_atomic
from bioner_grid.errors import ConfigError

IGNORE = -100


@dataclass
class Window:
    """A run of consecutive words of one sentence, encoded for the model."""

    sentence: int  # index of the sentence in its split
    start: int  # index of the window's first word in the sentence
    n_words: int
    input_ids: list[int]
    label_ids: list[int]
    first_positions: list[int]  # sub-token position of each word's first sub-token
    token_type_ids: list[int] | None = None

    def features(self) -> dict:
        """The model inputs (and labels) of this window, unpadded."""
        f = {"input_ids": self.input_ids, "attention_mask": [1] * len(self.input_ids), "labels": self.label_ids}
        if self.token_type_ids is not None:
            f["token_type_ids"] = self.token_type_ids
        return f


def _subtoken_counts(tokenizer, words: list[str]) -> list[int]:
    counts = [0] * len(words)
    for w in tokenizer(words, is_split_into_words=True, add_special_tokens=False).word_ids():
        counts[w] += 1
    return counts


def _clean_words(tokenizer, words: list[str]) -> tuple[list[str], list[int]]:
    """Words and their sub-token counts; a word the tokenizer drops entirely (e.g. a lone
    zero-width space) is replaced by the unk token so that it still gets a label and a prediction."""
    counts = _subtoken_counts(tokenizer, words)
    if 0 in counts:
        unk = tokenizer.unk_token or tokenizer.eos_token
        words = [w if n else unk for w, n in zip(words, counts)]
        counts = _subtoken_counts(tokenizer, words)
    return words, counts


def _encode(tokenizer, words, tags, label2id, max_len, sentence, start) -> Window:
    enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=max_len)
    labels, firsts, prev = [], [], None
    for pos, w in enumerate(enc.word_ids()):
        if w is not None and w != prev:
            labels.append(label2id[tags[w]])
            firsts.append(pos)
        else:
            labels.append(IGNORE)
        prev = w
    if len(firsts) != len(words):
        raise AssertionError(f"sentence {sentence}: {len(words) - len(firsts)} words lost their sub-tokens")
    return Window(sentence, start, len(words), enc["input_ids"], labels, firsts, enc.get("token_type_ids"))


def make_windows(tokenizer, sentences: list[Sentence], label2id: dict[str, int], max_seq_length: int) -> list[Window]:
    """Encode every sentence as one window, or as several consecutive windows when it is too long."""
    budget = max_seq_length - tokenizer.num_special_tokens_to_add(pair=False)
    if budget < 1:
        raise ConfigError(f"train.max_seq_length={max_seq_length}: leaves no room beside the special tokens")
    windows: list[Window] = []
    for i, sent in enumerate(sentences):
        words, counts = _clean_words(tokenizer, sent.tokens)
        start, used = 0, 0
        for j, n in enumerate(counts):
            if used and used + n > budget:
                windows.append(_encode(tokenizer, words[start:j], sent.tags[start:j], label2id, max_seq_length, i, start))
                start, used = j, 0
            used += n
        windows.append(_encode(tokenizer, words[start:], sent.tags[start:], label2id, max_seq_length, i, start))
    return windows


def windows_digest(tokenizer, sentences: list[Sentence], label2id: dict[str, int], max_seq_length: int) -> str:
    """SHA256 of everything ``make_windows`` reads: the tokenizer (its whole serialised vocabulary,
    normaliser and special tokens), the labels, the window length and the sentences themselves (so
    a corpus edit, a cap or ``data.train_on`` give another digest)."""
    h = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    h.update((backend.to_str() if backend is not None else repr(tokenizer)).encode())
    h.update(json.dumps([type(tokenizer).__name__, sorted(label2id.items()), int(max_seq_length)]).encode())
    for s in sentences:
        h.update(json.dumps([s.tokens, s.tags]).encode())
    return h.hexdigest()


def cached_windows(tokenizer, sentences: list[Sentence], label2id: dict[str, int], max_seq_length: int,
                   cache_dir: str | Path | None) -> list[Window]:
    """``make_windows``, kept in ``<cache_dir>/windows/<digest>.pkl``: the schemes and seeds of a
    grid cell tokenise their corpus once. Written atomically (``corpus.write_atomic``), so
    concurrent jobs never read half a file; an unreadable entry is rebuilt."""
    if not cache_dir:
        return make_windows(tokenizer, sentences, label2id, max_seq_length)
    path = Path(cache_dir) / "windows" / f"{windows_digest(tokenizer, sentences, label2id, max_seq_length)}.pkl"
    if path.is_file():
        try:
            return pickle.loads(path.read_bytes())  # our own cache folder, written by this function
        except Exception:  # noqa: BLE001 - a truncated or foreign file: rebuild it
            pass
    windows = make_windows(tokenizer, sentences, label2id, max_seq_length)
    write_atomic(path, lambda f: pickle.dump(windows, f, protocol=pickle.HIGHEST_PROTOCOL), binary=True)
    return windows


def by_length(windows: list[Window]) -> list[Window]:
    """Windows sorted by length (stable), so evaluation batches carry little padding."""
    return sorted(windows, key=lambda w: len(w.input_ids))


def predictions_to_tags(windows: list[Window], predicted_ids, id2label: dict[int, str], n_sentences: int) -> list[list[str]]:
    """Per-sentence predicted tags from per-window predicted label ids (rows padded at the end).

    ``windows`` may come in any order; every word of every sentence gets exactly one tag.
    """
    out: list[list[str | None]] = [[] for _ in range(n_sentences)]
    for win in windows:
        out[win.sentence].extend([None] * max(0, win.start + win.n_words - len(out[win.sentence])))
    for win, row in zip(windows, predicted_ids, strict=True):
        out[win.sentence][win.start : win.start + win.n_words] = [id2label[int(row[p])] for p in win.first_positions]
    missing = [i for i, tags in enumerate(out) if not tags or None in tags]
    if missing:
        raise AssertionError(f"sentences without a prediction for every word: {missing[:10]}")
    return out
