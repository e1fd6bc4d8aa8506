"""Documents of new text to tag: passages, their sentences cut as training cut them
(``pubtator.tokenize`` and ``pubtator.sentence_ranges``), and the entities a tagger finds, with
character offsets. ``tag``'s readers fill them from PubTator, BioC, text or CoNLL; ``export``'s
MLflow model from a table of texts; ``bundle.Tagger.tag_documents`` tags them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bioner_grid.pubtator import sentence_ranges, tokenize


@dataclass
class Passage:
    offset: int  # of ``text`` in its document (BioC passage offset; 0 for PubTator and plain text)
    text: str
    title_end: int | None = None  # PubTator: the title's length (a sentence always ends there)
    words: list[tuple[int, int]] | None = None  # given tokens (CoNLL input): one sentence
    gold: list[str] | None = None  # CoNLL input's own tags, written beside the predictions
    source: object = None  # the BioC passage, annotated in place
    # filled by tagging: (token spans, predicted tags) per sentence, and entities (start, end, type)
    sentences: list[tuple[list[tuple[int, int]], list[str]]] = field(default_factory=list)
    entities: list[tuple[int, int, str]] = field(default_factory=list)

    def sentence_spans(self) -> list[list[tuple[int, int]]]:
        """Token character spans of each sentence, as the PubTator converter cuts them (no
        annotation cuts: there are no annotations to respect in new text)."""
        if self.words is not None:
            return [self.words] if self.words else []
        tokens = tokenize(self.text, set())
        title_end = len(self.text) if self.title_end is None else self.title_end
        return [tokens[r.start:r.stop] for r in sentence_ranges(self.text, tokens, title_end, [False] * len(tokens))]


@dataclass
class Document:
    id: str
    passages: list[Passage]
