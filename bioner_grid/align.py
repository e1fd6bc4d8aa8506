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
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bioner_grid import cachedir
from bioner_grid.corpus import Sentence, write_atomic
from bioner_grid.errors import ConfigError

IGNORE = -100
log = logging.getLogger(__name__)


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


# The window cache holds plain integer arrays (numpy .npz, read with allow_pickle=False): a file
# planted in a shared cache folder can at worst fail validation, never run code (a pickle would).
WINDOWS_FORMAT = 1
_INT_ARRAYS = ("meta", "input_ids", "label_ids", "token_type_ids", "first_positions")


def _windows_to_arrays(windows: list[Window]) -> dict[str, np.ndarray]:
    """Flat int32 arrays: one row of (sentence, start, n_words, sub-tokens) per window, then each
    list field concatenated; ``token_type_ids`` is empty when the tokenizer gives none."""
    flat = lambda field: np.fromiter((x for w in windows for x in getattr(w, field)), np.int32)  # noqa: E731
    has_types = any(w.token_type_ids is not None for w in windows)
    if has_types and not all(w.token_type_ids is not None for w in windows):
        raise ValueError("token_type_ids on some windows only")
    return {"meta": np.array([(w.sentence, w.start, w.n_words, len(w.input_ids)) for w in windows], np.int32).reshape(-1, 4),
            "input_ids": flat("input_ids"), "label_ids": flat("label_ids"),
            "token_type_ids": flat("token_type_ids") if has_types else np.zeros(0, np.int32),
            "first_positions": flat("first_positions")}


def _arrays_digest(arrays: dict[str, np.ndarray], key: str) -> str:
    """SHA256 of the cache key and every array (name, dtype, shape, bytes): catches a truncated,
    damaged or edited entry, and one copied under another key's name."""
    h = hashlib.sha256(f"{WINDOWS_FORMAT}:{key}".encode())
    for name in _INT_ARRAYS:
        a = arrays[name]
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _read_windows(path: Path, key: str) -> list[Window]:
    """The windows stored at ``path``; ValueError when the entry does not validate."""
    with np.load(path, allow_pickle=False) as npz:
        if set(npz.files) != {*_INT_ARRAYS, "digest"}:
            raise ValueError(f"arrays {sorted(npz.files)}")
        arrays = {name: npz[name] for name in _INT_ARRAYS}
        digest = npz["digest"]
    if digest.shape != () or digest.dtype.kind != "U" or str(digest) != _arrays_digest(arrays, key):
        raise ValueError("content digest does not match")
    meta = arrays["meta"]
    if any(a.dtype != np.int32 for a in arrays.values()) or meta.ndim != 2 or meta.shape[1] != 4:
        raise ValueError("unexpected array types or shapes")
    n_tokens, n_words = int(meta[:, 3].sum()), int(meta[:, 2].sum())
    types = arrays["token_type_ids"]
    if (len(arrays["input_ids"]) != n_tokens or len(arrays["label_ids"]) != n_tokens
            or len(arrays["first_positions"]) != n_words or len(types) not in (0, n_tokens) or (meta < 0).any()):
        raise ValueError("array lengths disagree")
    ids, labels, firsts = arrays["input_ids"].tolist(), arrays["label_ids"].tolist(), arrays["first_positions"].tolist()
    types = types.tolist() if len(types) else None
    windows, t, f = [], 0, 0
    for sentence, start, words, tokens in meta.tolist():
        windows.append(Window(sentence, start, words, ids[t:t + tokens], labels[t:t + tokens], firsts[f:f + words],
                              types[t:t + tokens] if types is not None else None))
        t, f = t + tokens, f + words
    return windows


def _write_windows(f, windows: list[Window], key: str) -> None:
    arrays = _windows_to_arrays(windows)
    np.savez(f, **arrays, digest=np.array(_arrays_digest(arrays, key)))


def cached_windows(tokenizer, sentences: list[Sentence], label2id: dict[str, int], max_seq_length: int,
                   cache_dir: str | Path | None) -> list[Window]:
    """``make_windows``, kept in ``<cache_dir>/windows/<digest>.npz``: the schemes and seeds of a
    grid cell tokenise their corpus once. Written atomically (``corpus.write_atomic``), so
    concurrent jobs never read half a file; an entry that does not validate (damaged, edited,
    foreign) is rebuilt with a warning naming it, and so is one another user owns or can write; a
    cache folder others can write is refused (``cachedir``). Entries of the old pickle format
    (``.pkl``) are never read."""
    if not cache_dir:
        return make_windows(tokenizer, sentences, label2id, max_seq_length)
    key = windows_digest(tokenizer, sentences, label2id, max_seq_length)
    path = cachedir.private_folder(cache_dir, "windows") / f"{key}.npz"
    if cachedir.trusted(path):
        try:
            return _read_windows(path, key)
        except Exception as e:  # noqa: BLE001 - whatever is wrong with the file, the fix is to rebuild it
            log.warning("%s: window cache entry does not validate (%s: %s); rebuilding it", path, type(e).__name__, e)
    windows = make_windows(tokenizer, sentences, label2id, max_seq_length)
    write_atomic(path, lambda f: _write_windows(f, windows, key), binary=True, mode=cachedir.ENTRY_MODE)
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
