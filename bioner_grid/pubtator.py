"""PubTator documents to BIO sentences.

PubTator: ``PMID|t|title``, ``PMID|a|abstract``, then ``PMID<TAB>start<TAB>end<TAB>mention<TAB>type[<TAB>id]``
per annotation, character offsets into ``title + " " + abstract``; a blank line between documents.

Conversion, with rules written for biomedical text (no model from a hub):
- tokens are runs of letters/digits and single other characters (``HNF-6`` -> ``HNF - 6``); a token
  is also cut wherever an annotation starts or ends inside it, so no entity is lost or stretched;
- sentences end at the title/abstract boundary and after ``.``, ``!`` or ``?`` followed by
  whitespace and an upper-case letter, digit or bracket, except after abbreviations (``et al.``,
  ``e.g.``, ``Fig.``, initials such as ``J.``) and never inside an annotation; a unit or a gene
  suffix before the stop (``6 h.``, ``TNF-a.``) does end a sentence (``bench/sentence_split.py``
  compares these rules with pysbd and syntok);
- annotations are mapped to output types by config (e.g. NCBI's SpecificDisease -> Disease), other
  types are left out; of overlapping or nested annotations the first-starting (then longest) is
  kept and the others are counted as dropped.

Bad input: a line that is neither a title, an abstract nor an annotation (with integer offsets)
stops the conversion with ``file:line: problem``. Problems that real corpora contain a few of are
counted, reported with ``file:line`` and skipped: a repeated PMID (its second document), an
annotation whose offsets lie beyond the text, a mention that differs from the text at its offsets.

``load_pubtator`` reads a ``format: pubtator`` dataset config into a corpus (``bioner_grid.data.load_corpus``
calls it), applying ``data.overlap`` to training documents also in an evaluation split (``bioner_grid.overlap``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from bioner_grid import cachedir
from bioner_grid.corpus import (
    Corpus,
    DataError,
    Sentence,
    Split,
    read_text,
    seeded_split,
    write_atomic,
)
from bioner_grid.overlap import Evaluation, Screen, Units

CONVERTER_VERSION = 2  # part of the cache key: bump when the output changes
log = logging.getLogger(__name__)
TOKEN = re.compile(r"[^\W_]+|\S", re.UNICODE)
ABBREVIATIONS = {"al", "fig", "figs", "vs", "dr", "mr", "mrs", "ms", "approx", "ca", "cf", "no", "nos",
                 "eq", "ref", "refs", "st", "vol", "etc", "resp", "sp", "spp", "var", "ssp", "subsp", "inc", "ltd", "co",
                 # months and journal-name words of citations inside abstracts (Dec. 1, Proc. Natl. Acad. Sci.)
                 "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec",
                 "proc", "natl", "nat", "acad", "sci", "biol", "chem", "med", "res", "neurosci", "pharmacol", "physiol"}
# What may begin a sentence: a capital, digit, bracket or quote, or a name written from a lower-case
# letter (mRNA, p38, gamma-ENaC)
SENTENCE_START = re.compile(r"[A-Z0-9\[(\"]|[a-z][a-z-]*[A-Z0-9]")
HGVS_PREFIX = re.compile(r"[cgmnpr]\. ?(?:[A-Z][a-z]{2}\d|[-*]?\d)")  # c. 1093-1G>T, p. Glu104X


@dataclass
class Annotation:
    start: int
    end: int
    mention: str
    type: str
    line: int


@dataclass
class Document:
    pmid: str
    title: str
    text: str
    annotations: list[Annotation] = field(default_factory=list)


def read_pubtator(path: str | Path) -> tuple[list[Document], list[str]]:
    """Documents of a PubTator file and the ``file:line: problem`` of every record skipped."""
    path = Path(path)
    docs: dict[str, Document] = {}
    skipped: list[str] = []
    duplicate = None  # PMID whose repeated document is being skipped
    lines = read_text(path).split("\n")  # byte-order mark stripped; not UTF-8: DataError at its line
    for lineno, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        head = line.split("|", 2)
        if len(head) == 3 and head[1] in ("t", "a") and "\t" not in head[0]:
            pmid, kind, body = head
            if kind == "t":
                if pmid in docs:
                    skipped.append(f"{path}:{lineno}: PMID {pmid} repeated; its second document is skipped")
                    duplicate = pmid
                    continue
                duplicate = None
                docs[pmid] = Document(pmid, body, body)
            elif pmid == duplicate:
                continue
            elif pmid not in docs:
                raise DataError(f"{path}:{lineno}: abstract of PMID {pmid} before its title")
            else:
                docs[pmid].text = docs[pmid].title + " " + body
            continue
        fields = line.split("\t")
        if len(fields) < 5 or not fields[1].isdigit() or not fields[2].isdigit():
            raise DataError(f"{path}:{lineno}: not a title (PMID|t|), abstract (PMID|a|) or annotation "
                            "(PMID, start, end, mention, type) line")
        pmid, start, end, mention, etype = fields[0], int(fields[1]), int(fields[2]), fields[3], fields[4]
        if pmid == duplicate:
            continue
        if pmid not in docs:
            raise DataError(f"{path}:{lineno}: annotation of PMID {pmid}, which has no title line before it")
        doc = docs[pmid]
        if start >= end or end > len(doc.text):
            skipped.append(f"{path}:{lineno}: offsets {start}-{end} outside the text of PMID {pmid} ({len(doc.text)} characters)")
        elif doc.text[start:end] != mention:
            skipped.append(f"{path}:{lineno}: mention {mention!r} differs from the text {doc.text[start:end]!r} at {start}-{end}")
        else:
            doc.annotations.append(Annotation(start, end, mention, etype, lineno))
    if not docs:
        raise DataError(f"{path}:1: no documents")
    return list(docs.values()), skipped


def tokenize(text: str, cuts: set[int]) -> list[tuple[int, int]]:
    """Token character spans; a token is also cut at every offset in ``cuts`` that falls inside it."""
    spans = []
    for m in TOKEN.finditer(text):
        start = m.start()
        for c in sorted(c for c in cuts if m.start() < c < m.end()):
            spans.append((start, c))
            start = c
        spans.append((start, m.end()))
    return spans


def _abbreviation(text: str, word: tuple[int, int]) -> bool:
    """Whether the word before a full stop makes it an abbreviation's point, not a sentence end:
    ``et al.``, ``Fig.``, ``Dec.`` (an acronym is no abbreviation: ``with CF.``, ``of NO.``); a
    letter of a dotted abbreviation (``e.g.``, ``i.v.``); an initial (a capital letter on its own:
    ``J. Smith``); an HGVS prefix (``p. Glu104X``, ``c. 1093-1G>T``). Any other lower-case letter
    on its own is a unit or part of a name (``for 6 h. This``, ``TNF-a. It``), and a capital
    attached to what precedes it is part of a variant or name (``1858C/T. In``, ``c.2607C>A. The``):
    both end sentences."""
    s, e = word
    w = text[s:e]
    if (w.lower() in ABBREVIATIONS and not w.isupper()) or HGVS_PREFIX.match(text, s):
        return True
    if len(w) != 1 or not w.isalpha():
        return False
    before = text[s - 1] if s > 0 else " "
    return before == "." or (w.isupper() and (before.isspace() or before in "(["))


def _sentence_ends(text: str, tokens: list[tuple[int, int]], title_end: int, inside: list[bool]) -> set[int]:
    """Indices of tokens that end a sentence: the last title token, and a ``.``/``!``/``?`` (or a
    quote right after one) followed by whitespace and a sentence start, unless the stop belongs to
    an abbreviation, is a list number's (``2. Male rats``) or lies inside an annotation."""
    ends = set()
    for i, (s, e) in enumerate(tokens[:-1]):
        nxt = tokens[i + 1]
        if s < title_end <= nxt[0]:
            ends.add(i)
            continue
        stop = i - 1 if text[s:e] in "\"'" and i > 0 and tokens[i - 1][1] == s else i  # stop."
        if text[tokens[stop][0]:tokens[stop][1]] not in ".!?" or inside[i] or nxt[0] == e:  # no whitespace after
            continue
        if not SENTENCE_START.match(text, nxt[0]):
            continue
        if text[tokens[stop][0]] == "." and stop > 0:
            word = tokens[stop - 1]
            if _abbreviation(text, word):
                continue
            if text[word[0]:word[1]].isdigit() and (stop == 1 or stop - 2 in ends):
                continue
        ends.add(i)
    return ends


def sentence_ranges(text: str, tokens: list[tuple[int, int]], title_end: int, inside: list[bool]) -> list[range]:
    """The sentences of a document as ranges of token indices (see ``_sentence_ends``)."""
    if not tokens:
        return []
    ends = sorted(_sentence_ends(text, tokens, title_end, inside)) + [len(tokens) - 1]
    return [range(start, end + 1) for start, end in zip([0] + [e + 1 for e in ends[:-1]], ends)]


@dataclass
class Conversion:
    documents: list[list[Sentence]]  # sentences per document, in file order
    report: dict


def strip_suffix(a: Annotation, suffixes: list[str]) -> bool:
    """Shorten annotation ``a`` by the longest of ``suffixes`` its mention ends with (AIONER's
    treatment of BioID's cell lines: "HeLa cells" -> "HeLa", before training and evaluation), never
    to nothing; returns whether it was shortened. Case-sensitive: the suffixes are taken as written."""
    for suffix in sorted(suffixes, key=len, reverse=True):
        if suffix and a.mention.endswith(suffix) and len(a.mention) > len(suffix):
            a.mention, a.end = a.mention[: -len(suffix)], a.end - len(suffix)
            return True
    return False


def convert(path: str | Path, types: dict[str, list[str]], strip_suffixes: list[str] | None = None) -> Conversion:
    """Convert a PubTator file to BIO sentences, keeping the annotation types mapped by ``types``
    (output type -> source types), with the per-corpus preservation report. ``strip_suffixes``:
    endings cut off the kept annotations first (``strip_suffix``), counted as ``suffix_trimmed``."""
    docs, skipped = read_pubtator(path)
    source_to_type = {src: out for out, sources in types.items() for src in sources}
    n_in = n_exact = n_overlap = n_trimmed = 0
    lost: list[str] = []
    documents = []
    n_sentences = 0
    for doc in docs:
        if strip_suffixes:
            n_trimmed += sum(strip_suffix(a, strip_suffixes) for a in doc.annotations if a.type in source_to_type)
        wanted = sorted((a for a in doc.annotations if a.type in source_to_type), key=lambda a: (a.start, a.start - a.end))
        n_in += len(wanted)
        kept: list[Annotation] = []
        for a in wanted:  # sorted by start: a kept span ends after every span kept before it
            if kept and a.start < kept[-1].end:
                n_overlap += 1
            else:
                kept.append(a)
        tokens = tokenize(doc.text, {x for a in kept for x in (a.start, a.end)})
        tags = ["O"] * len(tokens)
        inside = [False] * len(tokens)
        for a in kept:
            covered = [i for i, (s, e) in enumerate(tokens) if s >= a.start and e <= a.end]
            if not covered or tokens[covered[0]][0] != a.start or tokens[covered[-1]][1] != a.end:
                lost.append(f"{path}:{a.line}: {a.mention!r} ({a.type}) not representable as whole tokens")
                continue
            label = source_to_type[a.type]
            tags[covered[0]] = f"B-{label}"
            for i in covered[1:]:
                tags[i] = f"I-{label}"
            for i in covered[:-1]:
                inside[i] = True
            n_exact += 1
        sentences = [Sentence([doc.text[s:e] for s, e in tokens[r.start:r.stop]], tags[r.start:r.stop])
                     for r in sentence_ranges(doc.text, tokens, len(doc.title), inside)]
        documents.append(sentences)
        n_sentences += len(sentences)
    kept_total = n_in - n_overlap
    report = {
        "file": str(path), "documents": len(docs), "sentences": n_sentences, "entities_in": n_in,
        "overlapping_dropped": n_overlap, "entities_exact": n_exact,
        "exact_pct": 100.0 * n_exact / kept_total if kept_total else 100.0,
        "lost": lost, "skipped_records": skipped,
    }
    if strip_suffixes:  # only then: the reports (and cache entries) of every other corpus stay as they were
        report.update({"suffixes": list(strip_suffixes), "suffix_trimmed": n_trimmed})
    return Conversion(documents, report)


CACHE_FORMAT = 2  # part of the cache key: 2 carries a digest of its content


def _payload_digest(payload: dict) -> str:
    """SHA256 of a cache entry's content in one canonical JSON spelling."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()).hexdigest()


def _read_cached(path: Path) -> Conversion:
    """The conversion stored at ``path``; ValueError when it is not one this module wrote (not JSON,
    the wrong shape, or content that no longer matches its digest: damaged or edited)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or set(data) != {"documents", "report", "sha256"}:
        raise ValueError("not a conversion cache entry")
    payload = {"documents": data["documents"], "report": data["report"]}
    if data["sha256"] != _payload_digest(payload):
        raise ValueError("content does not match its digest (damaged or edited)")
    documents = payload["documents"]
    if not isinstance(documents, list) or not isinstance(payload["report"], dict) or not all(
            isinstance(doc, list) and all(isinstance(s, list) and len(s) == 2 and len(s[0]) == len(s[1]) for s in doc)
            for doc in documents):
        raise ValueError("unexpected structure")
    return Conversion([[Sentence(*s) for s in doc] for doc in documents], payload["report"])


def cached_convert(path: str | Path, types: dict[str, list[str]], cache_dir: str | Path,
                   strip_suffixes: list[str] | None = None) -> Conversion:
    """``convert`` once per (source checksum, converter settings); later calls read the cache. An
    entry that does not validate (corrupt, edited, not ours) is rebuilt, with a warning naming it, and
    so is one another user owns or can write; a cache folder others can write is refused (``cachedir``)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}:0: file not found")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    options = {"strip_suffixes": list(strip_suffixes)} if strip_suffixes else {}  # absent: the keys cached before it
    settings = json.dumps({"types": types, "version": CONVERTER_VERSION, "format": CACHE_FORMAT, **options}, sort_keys=True)
    key = hashlib.sha256((digest + settings).encode()).hexdigest()[:20]
    cached = cachedir.private_folder(cache_dir) / f"{path.stem}-{key}.json"
    if cachedir.trusted(cached):
        try:
            return _read_cached(cached)
        except (ValueError, TypeError, OSError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            log.warning("%s: conversion cache entry does not validate (%s); rebuilding it", cached, e)
    conversion = convert(path, types, strip_suffixes)
    payload = {"documents": [[[s.tokens, s.tags] for s in doc] for doc in conversion.documents], "report": conversion.report}
    write_atomic(cached, lambda f: json.dump({**payload, "sha256": _payload_digest(payload)}, f), mode=cachedir.ENTRY_MODE)
    return conversion


def document_keys(path: str | Path, conversion: Conversion) -> list[tuple[str, str]]:
    """(PMID, title + " " + abstract) of each document of a PubTator file, in the order of its
    ``conversion``'s documents (what ``overlap`` compares; the cache keeps sentences only)."""
    docs, _ = read_pubtator(path)
    if len(docs) != len(conversion.documents):  # the cache is keyed by the file's bytes: cannot happen
        raise RuntimeError(f"{path}: {len(docs)} documents, but its conversion holds {len(conversion.documents)}")
    return [(d.pmid, d.text) for d in docs]


def keyed_documents(path: str | Path, types: dict[str, list[str]], cache_dir,
                    strip_suffixes: list[str] | None = None) -> tuple[Conversion, list[tuple[tuple[str, str], list[Sentence]]]]:
    """The file's conversion (cached), and its documents as ((PMID, text), sentences)."""
    conversion = cached_convert(path, types, cache_dir, strip_suffixes)
    return conversion, list(zip(document_keys(path, conversion), conversion.documents))


def document_units(source, documents: list[tuple[tuple[str, str], list[Sentence]]]) -> Units:
    """``keyed_documents``' documents as ``overlap.Units``."""
    return Units.of_documents(source, [key for key, _ in documents])


def load_pubtator(ds, cache_dir, overlap: str = "warn", extra: list[Evaluation] = (), take=None) -> Corpus:
    """PubTator train/dev/test converted to BIO (cached); dev held out by document when not given:
    the last ``dev_documents`` of the training file, or ``dev_fraction`` of its documents. Training
    documents found in test (or a dev file) are dropped, kept or refused (``overlap``, see
    ``bioner_grid.overlap``) before dev is held out; those found in a held-out dev, after."""
    types = OmegaConf.to_container(ds.types, resolve=True)
    screen = Screen(overlap)
    train, train_docs = keyed_documents(ds.train, types, cache_dir)
    reports = [train.report]
    if ds.get("test"):
        test, test_docs = keyed_documents(ds.test, types, cache_dir)
        reports.append(test.report)
        test_source = ds.test
    elif ds.get("split"):
        train_docs, test_docs = seeded_split(train_docs, float(ds.split), int(ds.split_seed), ds.train, "documents")
        test_source = f"{ds.train} (test split)"
    else:
        raise DataError(f"{ds.train}:0: no test file given; set dataset.test=PATH or dataset.split=0.8")
    evaluations = [Evaluation("test", document_units(test_source, test_docs)), *extra]  # extra: other datasets' tests
    dev_docs = None
    if ds.get("dev"):
        dev, dev_docs = keyed_documents(ds.dev, types, cache_dir)
        reports.append(dev.report)
        evaluations.append(Evaluation("dev", document_units(ds.dev, dev_docs)))
    train_docs = screen.apply(train_docs, document_units(ds.train, train_docs), evaluations)
    if dev_docs is None:
        if ds.get("dev_documents"):
            n = int(ds.dev_documents)
            if not 0 < n < len(train_docs):
                raise DataError(f"{ds.train}:0: dev_documents={n} but the file has {len(train_docs)} documents")
            train_docs, dev_docs = train_docs[:-n], train_docs[-n:]
        else:
            train_docs, dev_docs = seeded_split(train_docs, 1.0 - float(ds.dev_fraction), int(ds.split_seed), ds.train, "documents")
        held_out = document_units(f"{ds.train} (held-out dev)", dev_docs)
        train_docs = screen.apply(train_docs, document_units(ds.train, train_docs), [Evaluation("dev", held_out)])
    if take:  # a learning curve's subsample, by document, after the hold-out: dev is the same at every size
        train_docs = take(train_docs)
    flat = lambda docs, source: Split([s for _, d in docs for s in d], str(source))  # noqa: E731
    return Corpus(ds.name, {"train": flat(train_docs, ds.train), "dev": flat(dev_docs, ds.get("dev") or ds.train),
                            "test": flat(test_docs, ds.get("test") or ds.train)}, reports, overlap=screen)


def annotation_line(path, label_type: str, ds) -> int:
    """Line of the first annotation in a PubTator file whose type the dataset config ``ds`` maps to
    ``label_type`` (0 if none): where a converted sentence, which has no line numbers, came from."""
    sources = set((ds.get("types") or {}).get(label_type) or [])
    docs, _ = read_pubtator(path)
    return next((a.line for d in docs for a in d.annotations if a.type in sources), 0)


def format_report(report: dict, max_listed: int = 10) -> str:
    r = report
    lines = [f"{r['file']}: {r['documents']} documents, {r['sentences']} sentences; entities in {r['entities_in']}, "
             f"overlapping/nested dropped {r['overlapping_dropped']}, exact in BIO {r['entities_exact']} "
             f"({r['exact_pct']:.2f}% of those kept); bad records skipped {len(r['skipped_records'])}"
             + (f"; suffix {' / '.join(repr(x) for x in r['suffixes'])} trimmed from {r['suffix_trimmed']} entities"
                if "suffixes" in r else "")]
    for title, items in (("lost", r["lost"]), ("skipped", r["skipped_records"])):
        lines += [f"  {title}: {item}" for item in items[:max_listed]]
        if len(items) > max_listed:
            lines.append(f"  {title}: ... and {len(items) - max_listed} more")
    return "\n".join(lines)
