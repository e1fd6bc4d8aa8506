"""Sentence splitting of PubTator text: the converter's own rules against pysbd and syntok.

The PubTator issue asks for a rule-based splitter from PyPI (pysbd, syntok) or our own rules if
they measure better. There is no gold sentence segmentation of BioRED, so this measures what
matters for NER training data on the BioRED files the WeLT grid uses:

- sentences per split, against the WeLT paper's BioRED counts (train 4432, dev 1140, test 1108);
- annotations (all six BioRED types) that a splitter cuts in two: an entity spread over two
  training sentences is lost to both (our converter never splits inside an annotation);
- errors on points where the three splitters disagree, drawn at random and judged by hand
  (``sentence_boundaries_judged.tsv``: PMID, offset, verdict): 80 in BioRED, which our rules were
  written against, and 40 in BC5CDR_Test, which they were not;
- "sentences" of at most two tokens (mostly false breaks: ``2.`` of a numbered list, ``..``);
- seconds for the whole corpus.

Every splitter sees the title and the abstract separately (the title is always its own sentence).
Run: ``pip install -e '.[bench]' && python bench/sentence_split.py [DATA_ROOT]``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from bioner_grid.pubtator import read_pubtator, sentence_ranges, tokenize

PAPER = {"train": 4432, "dev": 1140, "test": 1108}


def ours(text: str) -> list[tuple[int, int]]:
    """Our converter's rules, without the annotation guard (to compare like with like)."""
    tokens = tokenize(text, set())
    no_title = 0
    return [(tokens[r.start][0], tokens[r.stop - 1][1])
            for r in sentence_ranges(text, tokens, no_title, [False] * len(tokens))]


def make_pysbd():
    import pysbd

    segmenter = pysbd.Segmenter(language="en", clean=False, char_span=True)
    return lambda text: [(s.start, s.start + len(s.sent.rstrip())) for s in segmenter.segment(text)]


def make_syntok():
    from syntok.segmenter import analyze

    def split(text):
        spans = []
        for paragraph in analyze(text):
            for sentence in paragraph:
                spans.append((sentence[0].offset, sentence[-1].offset + len(sentence[-1].value)))
        return spans
    return split


def read_judged() -> dict[str, dict[tuple[str, int], bool]]:
    """Hand-judged boundaries (``sentence_boundaries_judged.tsv``): corpus -> {(pmid, offset): starts a sentence}."""
    judged: dict[str, dict[tuple[str, int], bool]] = {}
    for line in (Path(__file__).parent / "sentence_boundaries_judged.tsv").read_text().splitlines():
        if line.startswith(("#", "pmid")):
            continue
        pmid, offset, verdict, corpus = line.split("\t")
        if verdict != "unclear":
            judged.setdefault(corpus, {})[pmid, int(offset)] = verdict == "yes"
    return judged


def sentence_spans(split_fn, doc) -> list[tuple[int, int]]:
    """Sentences of a document as character spans: the title, then the abstract split by ``split_fn``."""
    title_end = len(doc.title)
    spans = [(0, title_end)] if doc.title else []
    if len(doc.text) > title_end + 1:
        spans += [(s + title_end + 1, e + title_end + 1) for s, e in split_fn(doc.text[title_end + 1:])]
    return spans


def measure(split_fn, docs) -> dict:
    n_sent = n_cut = n_short = 0
    started = time.perf_counter()
    for doc in docs:
        spans = sentence_spans(split_fn, doc)
        n_sent += len(spans)
        n_cut += sum(not any(s <= a.start and a.end <= e for s, e in spans) for a in doc.annotations)
        n_short += sum(len(tokenize(doc.text[s:e], set())) <= 2 for s, e in spans)
    return {"sentences": n_sent, "cut": n_cut, "short": n_short, "seconds": time.perf_counter() - started}


def judged_errors(split_fn, docs, judged: dict[tuple[str, int], bool]) -> int:
    by_pmid = {doc.pmid: doc for doc in docs}
    wrong = 0
    for pmid in {pmid for pmid, _ in judged}:
        starts = {s for s, _ in sentence_spans(split_fn, by_pmid[pmid])}
        wrong += sum((offset in starts) != boundary for (p, offset), boundary in judged.items() if p == pmid)
    return wrong


def main(root: Path) -> None:
    folder = root / "pubtator"
    traindev, _ = read_pubtator(folder / "BioRED_TrainDev.PubTator")
    test, _ = read_pubtator(folder / "BioRED_Test.PubTator")
    splits = {"train": traindev[:-100], "dev": traindev[-100:], "test": test}
    corpora = {"BioRED": traindev + test, "BC5CDR_Test": read_pubtator(folder / "BC5CDR_Test.PubTator")[0]}
    judged = read_judged()
    splitters = {"ours": lambda: ours, "pysbd": make_pysbd, "syntok": make_syntok}
    print("On BioRED: sentences per split (the WeLT paper: 4432/1140/1108), entities a splitter cuts in two, "
          "sentences of <= 2 tokens, seconds; then errors on the hand-judged disagreements per corpus")
    print("splitter | train | dev | test | diff vs paper | entities cut | <= 2 tokens | seconds | "
          + " | ".join(f"judged wrong, {c} (of {len(j)})" for c, j in judged.items()))
    for name, make in splitters.items():
        try:
            fn = make()
        except ImportError:
            print(f"{name} | not installed (pip install -e '.[bench]')")
            continue
        rows = {split: measure(fn, docs) for split, docs in splits.items()}
        diff = " / ".join(f"{100 * (rows[s]['sentences'] - PAPER[s]) / PAPER[s]:+.1f}%" for s in PAPER)
        total = {k: sum(r[k] for r in rows.values()) for k in ("cut", "short", "seconds")}
        errors = " | ".join(str(judged_errors(fn, corpora[c], j)) for c, j in judged.items())
        print(f"{name} | {rows['train']['sentences']} | {rows['dev']['sentences']} | {rows['test']['sentences']} | "
              f"{diff} | {total['cut']} | {total['short']} | {total['seconds']:.2f} | {errors}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "shared" / "datasets"))
