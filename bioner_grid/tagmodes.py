"""Tagging modes of an all-in-one model (``tag.mode``), and the rule that resolves overlapping predictions.

An all-in-one model (AIONER; Luo et al. 2023, Bioinformatics 39(5):btad310) reads a sentence under
a task tag and tags the types of that task. Asked for several types it can be used three ways
(AIONER's supplementary Table S3):

- ``all``: one pass under ``<ALL>`` (the task of BioRED, which annotates every type);
- ``individual`` (AIONER's IND): one pass per type, under the type's own task tag (``<Gene>``,
  ``<Disease>``, ...; ``<ALL>`` for a type no other task has);
- ``combined``: both, the union of the ``all`` and ``individual`` predictions.

The passes of ``individual`` and ``combined`` can predict overlapping entities (``<Chemical>``
finds "lithium", ``<Disease>`` "lithium toxicity"). AIONER keeps the longest: ``keep_longest``,
with ties (the same length) going to the earliest start, then to the earlier type in the given
order. ``auto`` (the default) is what ``tag`` did before the modes existed: ``all`` when every type
of the model is asked and it has an ``<ALL>`` task, else ``individual``.
"""

from __future__ import annotations

from bioner_grid.corpus import entity_spans

MODES = ("auto", "all", "individual", "combined")
ALL = "ALL"

Span = tuple[int, int, str]  # (start, end exclusive, type), in token positions


def keep_longest(spans: list[Span], type_order: list[str] | None = None) -> list[Span]:
    """Non-overlapping spans from overlapping candidates: AIONER's rule, the longest span wins.

    Candidates are taken longest first (``end - start``); among spans of one length the earliest
    start first, then the type earlier in ``type_order`` (types not in it after, by name); a
    candidate is kept when it overlaps no span kept before it. Duplicates (the same span and type
    from two passes) count once. Returned in text order."""
    rank = {t: i for i, t in enumerate(type_order or [])}
    order = sorted(set(spans), key=lambda s: (-(s[1] - s[0]), s[0], rank.get(s[2], len(rank)), s[2]))
    kept: list[Span] = []
    for s in order:
        if all(s[1] <= k[0] or k[1] <= s[0] for k in kept):
            kept.append(s)
    return sorted(kept)


def to_tags(spans: list[Span], n: int) -> list[str]:
    """IOB2 tags of ``n`` tokens holding non-overlapping ``spans``."""
    tags = ["O"] * n
    for start, end, etype in spans:
        tags[start:end] = [f"B-{etype}"] + [f"I-{etype}"] * (end - start - 1)
    return tags


def only(predicted: list[list[str]], keep: set[str]) -> list[list[str]]:
    """Tags of one pass with every type not in ``keep`` (and AIONER's ``O-Task``) set to ``O``."""
    return [[t if t[0] in "BI" and t[2:] in keep else "O" for t in tags] for tags in predicted]


def merge(outputs: list[list[list[str]]], type_order: list[str] | None = None) -> list[list[str]]:
    """The tags of several passes over the same sentences as one flat tagging: every pass's entities
    (a stray ``I-X`` starts one, as conlleval reads it) resolved by ``keep_longest``."""
    merged = []
    for per_pass in zip(*outputs, strict=True):
        spans = [(start, end, etype) for tags in per_pass for etype, start, end in entity_spans(tags)]
        merged.append(to_tags(keep_longest(spans, type_order), len(per_pass[0])))
    return merged


def individual_task(tasks: dict[str, list[str]], etype: str) -> str:
    """The task AIONER's IND mode asks for ``etype``: the type's own task (``<Gene>`` for Gene), else
    another task that tags it, else ``<ALL>``."""
    if etype in tasks:
        return etype
    own = [k for k, types in tasks.items() if etype in types and k != ALL]
    return own[0] if own else ALL


def passes(tasks: dict[str, list[str]], asked: set[str], every: bool, mode: str) -> list[tuple[str, set[str]]]:
    """(task, types kept) per pass over the text for ``mode`` (``MODES``); ``every``: the user asked
    for every type of the model. ``ValueError`` naming ``tag.mode`` where the model cannot do it."""
    if mode not in MODES:
        raise ValueError(f"tag.mode={mode}: must be one of {', '.join(MODES)}")
    has_all = ALL in tasks
    if mode == "auto":
        mode = "all" if every and has_all else "individual"
    if mode in ("all", "combined") and not has_all:
        raise ValueError(f"tag.mode={mode}: the model has no <ALL> task (its tasks: {', '.join(sorted(tasks))})")
    if mode in ("all", "combined"):
        missing = asked - set(tasks[ALL])
        if mode == "all" and missing:
            raise ValueError(f"tag.mode=all: the <ALL> task does not tag {sorted(missing)}")
    out: list[tuple[str, set[str]]] = [(ALL, set(asked) & set(tasks[ALL]))] if mode in ("all", "combined") else []
    if mode in ("individual", "combined"):
        individual: dict[str, set[str]] = {}
        for t in sorted(asked):
            individual.setdefault(individual_task(tasks, t), set()).add(t)
        # combined: a type whose individual task is <ALL> is in the <ALL> pass already
        out += [(task, types) for task, types in individual.items() if not (mode == "combined" and task == ALL)]
    return out
