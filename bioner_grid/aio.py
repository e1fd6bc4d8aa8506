"""AIONER's all-in-one (AIO) scheme: corpora annotating different entity types, merged into one
training set with task tags (Luo et al. 2023).

Every sentence of a member corpus is wrapped in its task's tags, ``<Disease> ... </Disease>``
(``<ALL> ... </ALL>`` for BioRED, which annotates every type); the tags are special tokens of the
tokenizer. Labels are ``B-Type``/``I-Type`` for the task's types and ``O-Task`` for everything else
(``O-ALL`` for BioRED): 19 labels for six types and seven tasks. Training uses all members' training
sentences; each member is evaluated on its own test split, under its own task tag, with
predictions of types outside its task counted as O.

All of it reaches the rest of the package through ``AllInOne``, the corpus's adapter
(``corpus.Adapter``'s hooks, which every stage calls for any corpus); the report reads such runs
back through ``report_aio.REPORT``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from omegaconf import OmegaConf

from bioner_grid.corpus import Adapter, Corpus, DataError, Sentence, Split, in_member, seeded_split, unsuffixed
from bioner_grid.overlap import Evaluation, Screen
from bioner_grid import tagmodes
from bioner_grid.pubtator import document_units, keyed_documents


def task_tags(task: str) -> tuple[str, str]:
    return f"<{task}>", f"</{task}>"


def tag_sentence(sentence: Sentence, task: str) -> Sentence:
    """The sentence wrapped in its task tags, ``O`` relabelled ``O-Task``."""
    opening, closing = task_tags(task)
    outside = f"O-{task}"
    tags = [outside if t == "O" else t for t in sentence.tags]
    return Sentence([opening, *sentence.tokens, closing], [outside, *tags, outside])


def plain(tokens: list[str], tags: list[str], types: list[str] | None = None) -> tuple[list[str], list[str]]:
    """A task-tagged sentence as an ordinary one: task tags removed, ``O-Task`` -> ``O``, and with
    ``types`` given, labels of other types -> ``O`` (a member is scored on its task's types only)."""
    inner = tags[1:-1]
    keep = (lambda t: t[0] != "O" and (types is None or t[2:] in types))
    return tokens[1:-1], [t if keep(t) else "O" for t in inner]


def load_aio(ds, cache_dir, max_train: int | None = None, max_eval: int | None = None, overlap: str = "warn",
             take=None) -> Corpus:
    """Members' PubTator files converted (cached), task-tagged and merged; dev held out per member by
    document (``dev_fraction``, seeded). ``max_train`` / ``max_eval`` cap each member's sentences
    (first N; for small demonstrations).

    ``overlap`` (``bioner_grid.overlap``; a run's default here is ``drop``, AIONER's protocol): each
    member's training documents are compared with every member's test file before its dev is held
    out, then with every member's held-out dev (a document of one member's training file can be
    another's dev document)."""
    splits = {"train": [], "dev": [], "test": []}
    members, reports = {}, []
    merge = MERGES[ds.merge]  # the adapter class: how members are merged (spec.aio_problems checked the name)
    caps = {"train": max_train, "dev": max_eval, "test": max_eval}
    only = set(ds.get("only") or [])
    unknown = only - {m.name for m in ds.members}
    if unknown:
        raise DataError(f"dataset {ds.name}:0: dataset.only names unknown members {sorted(unknown)}")
    kept = [m for m in ds.members if not only or m.name in only]
    screen = Screen(overlap)
    docs = {}  # member -> split -> [((PMID, text), sentences)]
    for m in kept:
        types = member_types(m)
        strip = list(m.strip_suffixes)  # AIONER's " cell"/" cells" for BioID's cell lines (conf/dataset/aio.yaml)
        train, train_docs = keyed_documents(m.train, types, cache_dir, strip)
        test, test_docs = keyed_documents(m.test, types, cache_dir, strip)
        reports += [train.report, test.report]
        docs[m.name] = {"train": train_docs, "test": test_docs}
    tests = [Evaluation("test", document_units(m.test, docs[m.name]["test"]), m.name) for m in kept]
    for m in kept:
        d = docs[m.name]
        d["train"] = screen.apply(d["train"], document_units(m.train, d["train"]), tests, m.name)
        d["train"], d["dev"] = seeded_split(d["train"], 1.0 - float(ds.dev_fraction), int(ds.split_seed), m.train, "documents")
    devs = [Evaluation("dev", document_units(f"{m.train} (held-out dev of {m.name})", docs[m.name]["dev"]), m.name) for m in kept]
    for m in kept:
        d = docs[m.name]
        d["train"] = screen.apply(d["train"], document_units(m.train, d["train"]), devs, m.name)
        if take:  # a learning curve's subsample of each member's training documents (data.train_fraction)
            d["train"] = take(d["train"])
        member = {"task": m.task, "types": sorted(member_types(m)), "restricted": m.get("types_only") is not None}
        for name in ("train", "dev", "test"):
            sentences = [merge.member_sentence(s, m) for _, sents in d[name] for s in sents]
            if caps[name]:
                sentences = sentences[: int(caps[name])]
            member[name] = list(range(len(splits[name]), len(splits[name]) + len(sentences)))
            splits[name] += sentences
        members[m.name] = member
    if not members:
        raise DataError(f"dataset {ds.name}:0: no member corpora")
    return Corpus(ds.name, {k: Split(v, f"aio:{k}") for k, v in splits.items()}, reports, merge.of(members),
                  overlap=screen)


def member_types(m) -> dict[str, list[str]]:
    """A member's output types (``types``: output type -> source types), only those of
    ``types_only`` where it is given: BioRED's ``[Disease]`` is AIONER's BL2 (a corpus plus
    BioRED's annotations of its type); the other types' mentions become O."""
    types = OmegaConf.to_container(m.types, resolve=True)
    only = m.get("types_only")
    return types if only is None else {k: v for k, v in types.items() if k in only}


def restriction_tags(members: dict) -> dict[str, str]:
    """The run tag naming the members restricted to some of their types (none: no tag)."""
    restricted = [f"{name}:{'+'.join(info['types'])}" for name, info in members.items() if info.get("restricted")]
    return {"aio_types_only": ",".join(restricted)} if restricted else {}


def slices_tag(members: dict) -> dict[str, str]:
    """The run tag ``aio_slices``: per member, the [first, end) indices of its dev and test sentences
    in the run's predictions files (members merged in order, each split's sentences contiguous) and
    the types it is scored on, as JSON, so that the report can pair one member's predictions across
    runs of different merges (``report_aio``)."""
    def span(ix):
        return [ix[0], ix[-1] + 1] if ix else [0, 0]

    slices = {name: {"types": info["types"], **{k: span(info[k]) for k in ("dev", "test") if k in info}}
              for name, info in members.items() if "test" in info}  # a saved model's members have none
    return {"aio_slices": json.dumps(slices, separators=(",", ":"))} if slices else {}


@dataclass
class AllInOne(Adapter):
    """The all-in-one corpus's hooks (``corpus.Adapter``): task tags for the tokenizer, its member
    corpora as a run tag, each member scored on its own task and the whole without task tags, and
    for the tagger, one pass per task asked. A saved model knows its tasks and task tags only
    (``members`` empty)."""

    special_tokens: tuple[str, ...] = ()
    # member -> {"task", "types", and per split the indices of its sentences}
    members: dict[str, dict] = field(default_factory=dict)
    saved_tasks: dict[str, list[str]] = field(default_factory=dict)  # a saved model's

    @classmethod
    def of(cls, members: dict[str, dict]) -> "AllInOne":
        """The adapter of merged ``members``: their task tags, in member order, as special tokens."""
        tags = list(dict.fromkeys(t for info in members.values() for t in task_tags(info["task"])))
        return cls(tuple(tags), members)

    @staticmethod
    def member_sentence(sentence: Sentence, member) -> Sentence:
        """A member's sentence as it is merged: in its task tags, ``O`` as ``O-Task``."""
        return tag_sentence(sentence, member.task)

    def prepare_tokenizer(self, tokenizer) -> None:
        tokenizer.add_special_tokens({"additional_special_tokens": list(self.special_tokens)})

    def run_tags(self) -> dict[str, str]:
        return {"aio_members": ",".join(self.members), **restriction_tags(self.members), **slices_tag(self.members)}

    def tasks(self) -> dict[str, list[str]]:
        tasks: dict[str, list[str]] = dict(self.saved_tasks)
        for member in self.members.values():
            tasks[member["task"]] = sorted(set(tasks.get(member["task"], [])) | set(member["types"]))
        return tasks

    def member_views(self, split: str, tokens, gold, pred) -> dict[str, tuple[list, list, list]]:
        """AIONER's per-corpus results: each member's sentences, scored as that member's task."""
        return {member: member_view(self.members[member], split, tokens, gold, pred) for member in self.members}

    def scored_view(self, tokens, gold, pred) -> tuple[list, list, list]:
        return without_tasks(tokens, gold, pred)

    def passes(self, asked: set[str], every: bool, mode: str = "auto") -> list[tuple[str | None, set[str]]]:
        """The passes of ``tag.mode`` (``tagmodes.passes``): ``auto`` is the ``<ALL>`` task when
        every type is asked (``every``) and the model has it, else one pass per task: each type
        asked under its own task, else ``<ALL>``'s, as AIONER does."""
        return tagmodes.passes(self.tasks(), asked, every, mode)

    def wrap(self, sentence: Sentence, task: str | None) -> Sentence:
        return tag_sentence(sentence, task)

    def unwrap(self, tokens: list[str], tags: list[str]) -> list[str]:
        return plain(tokens, tags)[1]


@dataclass
class Concatenated(Adapter):
    """``dataset.merge=plain``: the members merged as they are, plain ``O`` and no task tags
    (AIONER's "w/o AIONER" naive concatenation, where members annotating different scopes of one
    type collide). Each member is still scored on its own sentences and types, as ``AllInOne``
    scores it; its saved model is a plain one (no tasks: one pass of the tagger)."""

    members: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def of(cls, members: dict[str, dict]) -> "Concatenated":
        return cls(members=members)

    @staticmethod
    def member_sentence(sentence: Sentence, member) -> Sentence:
        return sentence

    def run_tags(self) -> dict[str, str]:
        return {"aio_members": ",".join(self.members), "aio_merge": "plain", **restriction_tags(self.members),
                **slices_tag(self.members)}

    def member_views(self, split: str, tokens, gold, pred) -> dict[str, tuple[list, list, list]]:
        """Each member's sentences, predictions of types outside its own counted as O (as ``member_view``)."""
        def only(tags, types):
            return [t if t[0] != "O" and t[2:] in types else "O" for t in tags]

        return {name: ([tokens[i] for i in info[split]], [only(gold[i], info["types"]) for i in info[split]],
                       [only(pred[i], info["types"]) for i in info[split]]) for name, info in self.members.items()}


@dataclass
class MultiTask(Concatenated):
    """``dataset.merge=mtl``: AIONER's multi-task baseline, a shared encoder with one output layer
    per member (``heads.MultiTaskTagger``). Each member's sentences are merged as they are (no task
    tags) with their labels in the member's own layer (``B-Disease@NCBIdisease``); scored per member
    as ``Concatenated`` scores them, labels read without the member. Its saved model tags new text
    one pass per member asked, each type under the member that annotates the fewest types (the
    specialist: NCBIdisease's Disease layer before BioRED's), overlaps resolved as AIONER's
    individual mode resolves them (``tagmodes.merge``)."""

    saved_tasks: dict[str, list[str]] = field(default_factory=dict)  # a saved model's member -> types
    head: str | None = "mtl"  # heads.MultiTaskTagger: one output layer per member

    @staticmethod
    def member_sentence(sentence: Sentence, member) -> Sentence:
        return Sentence(sentence.tokens, [in_member(t, member.name) for t in sentence.tags], sentence.lines)

    def run_tags(self) -> dict[str, str]:
        return {**super().run_tags(), "aio_merge": "mtl"}

    def tasks(self) -> dict[str, list[str]]:
        """Member -> the types its layer tags (saved with the model: the tagger's passes)."""
        return {name: list(info["types"]) for name, info in self.members.items()} or dict(self.saved_tasks)

    def member_views(self, split: str, tokens, gold, pred) -> dict[str, tuple[list, list, list]]:
        return super().member_views(split, tokens, *self._plain(gold, pred))

    def scored_view(self, tokens, gold, pred) -> tuple[list, list, list]:
        return (tokens, *self._plain(gold, pred))

    @staticmethod
    def _plain(*tag_lists):
        return tuple([[unsuffixed(t) for t in tags] for tags in sentences] for sentences in tag_lists)

    def types(self, labels: list[str]) -> list[str]:
        return super().types([unsuffixed(label) for label in labels])

    def passes(self, asked: set[str], every: bool, mode: str = "auto") -> list[tuple[str | None, set[str]]]:
        """One pass per member layer: each type asked, in the member with the fewest types that has it."""
        if mode not in ("auto", "individual"):
            raise ValueError(f"tag.mode={mode} needs an all-in-one model (task tags); a multi-task model tags "
                             "each type in one member's layer: use auto or individual")
        tasks = self.tasks()
        chosen: dict[str, set[str]] = {}
        for etype in sorted(asked):
            member = min((m for m, types in tasks.items() if etype in types), key=lambda m: len(tasks[m]))
            chosen.setdefault(member, set()).add(etype)
        return [(member, chosen[member]) for member in tasks if member in chosen]

    def wrap(self, sentence: Sentence, task: str | None) -> Sentence:
        """New text read by ``task``'s layer: every word labelled ``O@<member>`` (the label names the layer)."""
        return Sentence(sentence.tokens, [in_member("O", task)] * len(sentence.tokens))

    def unwrap(self, tokens: list[str], tags: list[str]) -> list[str]:
        return [unsuffixed(t) for t in tags]


# dataset.merge -> the adapter of the merged corpus (spec.AIO_MERGES lists the same names)
MERGES = {"tags": AllInOne, "plain": Concatenated, "mtl": MultiTask}


def member_view(info: dict, split: str, tokens, gold, pred):
    """Tokens, gold and predicted tags of one member's sentences, scored as that member's task."""
    out = ([], [], [])
    for i in info[split]:
        t, g = plain(tokens[i], gold[i], info["types"])
        _, p = plain(tokens[i], pred[i], info["types"])
        out[0].append(t)
        out[1].append(g)
        out[2].append(p)
    return out


def without_tasks(tokens, gold, pred) -> tuple[list, list, list]:
    """Every sentence with its task tags removed (``O-Task`` -> ``O``): the merged set scored as one."""
    views = [plain(t, g) + plain(t, p)[1:] for t, g, p in zip(tokens, gold, pred)]
    return tuple(list(x) for x in zip(*views))
