"""PubTator -> BIO on every shared corpus, and the converter's rules on hand-made documents."""

import re
from collections import Counter

import pytest

from bioner_grid.corpus import DataError, entity_spans
from bioner_grid.data import load_corpus
from bioner_grid.pubtator import cached_convert, convert, read_pubtator, tokenize
from conftest import DATA

PUBTATOR = DATA / "pubtator"
VARIANTS = ["DNAMutation", "ProteinMutation", "SNP", "AcidChange", "DNAAllele", "ProteinAllele", "OtherMutation"]
TYPES = {
    "BioRED": {"Gene": ["Gene"], "Disease": ["Disease"], "Chemical": ["Chemical"], "Species": ["Species"],
               "Variant": ["Variant", *VARIANTS], "CellLine": ["CellLine"]},
    "NCBIdisease": {"Disease": ["DiseaseClass", "SpecificDisease", "CompositeMention", "Modifier"]},
    "BC5CDR": {"Chemical": ["Chemical"], "Disease": ["Disease"]},
    "Linnaeus": {"Species": ["Species"]},
    "GNormPlus": {"Gene": ["Gene", "FamilyName"]},
    "NLMgene": {"Gene": ["Gene", "FamilyName"]},
    "tmVar3": {"Variant": VARIANTS},
    "BioID": {"CellLine": ["CellLine"]},
}
FILES = sorted(p.name for p in PUBTATOR.glob("*.PubTator"))


@pytest.mark.parametrize("name", FILES)
def test_every_shared_corpus_keeps_its_entities(name, data_root):
    c = convert(PUBTATOR / name, TYPES[name.split("_")[0]])
    r = c.report
    assert r["entities_in"] > 0 and r["documents"] == len(c.documents)
    kept = r["entities_in"] - r["overlapping_dropped"]
    assert r["entities_exact"] == kept - len(r["lost"])
    assert r["exact_pct"] >= 99.5, r["lost"][:5]
    # every entity in the BIO output is one of the kept annotations, token for token
    found = Counter(t for doc in c.documents for s in doc for t, _, _ in entity_spans(s.tags))
    assert sum(found.values()) == r["entities_exact"]


def test_mentions_round_trip_through_bio(data_root):
    path = PUBTATOR / "BioRED_Test.PubTator"
    docs, _ = read_pubtator(path)
    conversion = convert(path, {"Chemical": ["Chemical"], "Disease": ["Disease"]})
    for doc, sentences in zip(docs, conversion.documents):
        expected = Counter((a.type, re.sub(r"\s", "", a.mention)) for a in doc.annotations if a.type in ("Chemical", "Disease"))
        got = Counter((t, "".join(s.tokens[b:e])) for s in sentences for t, b, e in entity_spans(s.tags))
        assert got == expected, doc.pmid
        assert "".join(tok for s in sentences for tok in s.tokens) == re.sub(r"\s", "", doc.text)


def write(tmp_path, text, name="x.PubTator"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_token_is_cut_at_an_annotation_boundary_and_sentences_split(tmp_path):
    title = "Anti-HER2antibodies in breast cancer."
    abstract = "Smith et al. treated mice, e.g. with HER2 blockers. Tumours shrank in 3 of 5 mice."
    text = title + " " + abstract
    s = text.index("HER2")
    p = write(tmp_path, f"1|t|{title}\n1|a|{abstract}\n1\t{s}\t{s + 4}\tHER2\tGene\t2064\n"
                        f"1\t{text.index('breast cancer')}\t{text.index('breast cancer') + 13}\tbreast cancer\tDisease\tD001943\n\n")
    c = convert(p, {"Gene": ["Gene"]})
    sentences = c.documents[0]
    assert [s.tokens for s in sentences] == [
        ["Anti", "-", "HER2", "antibodies", "in", "breast", "cancer", "."],
        ["Smith", "et", "al", ".", "treated", "mice", ",", "e", ".", "g", ".", "with", "HER2", "blockers", "."],
        ["Tumours", "shrank", "in", "3", "of", "5", "mice", "."]]
    assert sentences[0].tags[2] == "B-Gene" and sentences[0].tags[5:7] == ["O", "O"]  # Disease not selected
    assert c.report["entities_in"] == 1 and c.report["entities_exact"] == 1
    assert tokenize("abcdef", {2, 4}) == [(0, 2), (2, 4), (4, 6)]


@pytest.mark.parametrize("abstract, first_sentence_ends_with", [
    # ends: a unit or gene suffix before the stop, an acronym that is also an abbreviation, a quote,
    # a sentence written from a lower-case name
    ("Levels fell after 6 h. This was reversed.", "h ."),
    ("It induced TNF-a. Etifoxine blocked it.", "a ."),
    ("The variant was c.2607C>A. Lymphoblast levels fell.", "A ."),
    ("Lungs are affected in CF. We discuss why.", "CF ."),
    ('It induced "stemness." This was new.', 'stemness . "'),
    ("It rose in the cortex. gamma-ENaC abundance fell.", "cortex ."),
    ("It rose in the cortex. p38 phosphorylation fell.", "cortex ."),
    # no end: initials, dotted abbreviations, HGVS prefixes, months, a numbered list's number
    ("As J. Smith showed, e.g. IL-6 rose. Then it fell.", "rose ."),
    ("Mutation c.310 G>T (p. Glu104X) was found. It is new.", "found ."),
    ("Period 1 ran to Dec. 30, 1999 here. Period 2 followed.", "here ."),
    ("Rats were studied. 2. Male rats were treated. 3. Others were not.", "studied ."),
])
def test_sentence_rules_for_biomedical_text(tmp_path, abstract, first_sentence_ends_with):
    """bench/sentence_split.py measures these rules against pysbd and syntok on hand-judged points."""
    p = write(tmp_path, f"1|t|A title\n1|a|{abstract}\n\n")
    sentences = [" ".join(s.tokens) for s in convert(p, {}).documents[0]]
    assert sentences[0] == "A title"
    assert sentences[1].endswith(first_sentence_ends_with), sentences
    if abstract.startswith("Rats"):  # a list's number starts its item
        assert sentences[2:] == ["2 . Male rats were treated .", "3 . Others were not ."]
    else:
        assert len(sentences) == 3, sentences


def test_bad_records_are_counted_and_skipped_with_file_and_line(tmp_path):
    p = write(tmp_path, "1|t|Aspirin asthma.\n1|a|Rare.\n1\t0\t7\tAspirin\tChemical\n1\t8\t14\tAsthma\tDisease\n"
                        "1\t8\t99\tasthma\tDisease\n\n1|t|Again.\n1|a|x\n1\t0\t5\tAgain\tChemical\n\n2|t|Other.\n2|a|y\n")
    docs, skipped = read_pubtator(p)
    assert [d.pmid for d in docs] == ["1", "2"] and len(docs[0].annotations) == 1
    assert skipped == [f"{p}:4: mention 'Asthma' differs from the text 'asthma' at 8-14",
                       f"{p}:5: offsets 8-99 outside the text of PMID 1 (21 characters)",
                       f"{p}:7: PMID 1 repeated; its second document is skipped"]


@pytest.mark.parametrize("text, problem", [
    ("1|t|T.\n1|a|A.\n1\tx\t2\tT\tGene\n", ":3: not a title (PMID|t|), abstract (PMID|a|) or annotation"),
    ("1|t|T.\n1|a|A.\njunk\n", ":3: not a title"),
    ("1|a|A.\n", ":1: abstract of PMID 1 before its title"),
    ("2\t0\t1\tT\tGene\n", ":1: annotation of PMID 2, which has no title line before it"),
])
def test_malformed_input_stops(tmp_path, text, problem):
    p = write(tmp_path, text)
    with pytest.raises(DataError, match=re.escape(f"{p}{problem}")):
        read_pubtator(p)


def test_conversion_is_cached_by_checksum_and_settings(tmp_path, data_root):
    path = PUBTATOR / "Linnaeus_Test.PubTator"
    a = cached_convert(path, {"Species": ["Species"]}, tmp_path)
    files = list(tmp_path.glob("*.json"))
    b = cached_convert(path, {"Species": ["Species"]}, tmp_path)
    assert len(files) == 1 and list(tmp_path.glob("*.json")) == files
    assert [s.tags for d in a.documents for s in d] == [s.tags for d in b.documents for s in d] and a.report == b.report
    cached_convert(path, {"Organism": ["Species"]}, tmp_path)
    assert len(list(tmp_path.glob("*.json"))) == 2


def test_biored_splits_400_100_by_document(tmp_path, data_root):
    from bioner_grid.config import compose

    cfg = compose(["dataset=biored_disease", f"data.root={data_root}", f"data.cache={tmp_path}"])
    corpus = load_corpus(cfg.dataset, cache_dir=cfg.data.cache)
    sizes = {k: len(v.sentences) for k, v in corpus.splits.items()}
    # WeLT paper: 4432 / 1140 / 1108; our splitter against pysbd and syntok: bench/sentence_split.py
    assert sizes == {"train": 4299, "dev": 1109, "test": 1088}
    assert corpus.labels == ["O", "B-Disease", "I-Disease"]
    assert [r["documents"] for r in corpus.reports] == [500, 100]


def test_users_own_pubtator_corpus_with_document_split_and_report(tmp_path, data_root, monkeypatch, capsys):
    from bioner_grid import cli as commands
    from conftest import ROOT

    monkeypatch.chdir(ROOT)  # python -m bioner_grid.data, in this process (its real entry point: tests/test_data.py)
    code = commands.run("data", ["dataset=pubtator_files", f"dataset.train={PUBTATOR / 'Linnaeus_Train.PubTator'}",
                                 "dataset.split=0.75", "dataset.types={Organism: [Species]}", f"data.cache={tmp_path}"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].endswith("80 documents, 13651 sentences; entities in 2321, overlapping/nested dropped 0, "
                             "exact in BIO 2321 (100.00% of those kept); bad records skipped 0")
    rows = {line.split()[0]: line.split() for line in lines if line.split()[:1] and line.split()[0] in ("train", "dev", "test")}
    assert sum(int(rows[k][1]) for k in rows) == 13651  # every sentence in exactly one split (60/20 documents, then 10% dev)
    assert all("Organism=" in " ".join(rows[k]) for k in rows)


class Payload:
    """What a planted pickle would do when loaded: create ``marker`` (a stand-in for any command)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def _tags(conversion):
    return [s.tags for d in conversion.documents for s in d]


def test_a_corrupt_edited_or_planted_conversion_cache_is_rebuilt_with_a_warning(tmp_path, data_root, caplog):
    import json
    import logging
    import pickle

    path, types = PUBTATOR / "Linnaeus_Test.PubTator", {"Species": ["Species"]}
    fresh = convert(path, types)
    cached_convert(path, types, tmp_path)
    (entry,) = tmp_path.glob("*.json")
    good = entry.read_text()
    damaged = {
        "truncated": good[: len(good) // 2],
        "edited": good.replace('"B-Species"', '"O"', 1),  # valid JSON, one entity dropped
        "planted pickle": pickle.dumps(Payload(tmp_path / "pwned")),
        "old format": json.dumps({k: v for k, v in json.loads(good).items() if k != "sha256"}),
    }
    assert damaged["edited"] != good
    for what, content in damaged.items():
        caplog.clear()
        (entry.write_bytes if isinstance(content, bytes) else entry.write_text)(content)
        with caplog.at_level(logging.WARNING):
            got = cached_convert(path, types, tmp_path)
        assert _tags(got) == _tags(fresh) and got.report == fresh.report, what
        assert f"{entry}: conversion cache entry does not validate" in caplog.text, what
        assert entry.read_text() == good, what  # rebuilt
        assert not (tmp_path / "pwned").exists()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert _tags(cached_convert(path, types, tmp_path)) == _tags(fresh)
    assert not caplog.text  # a valid entry is a quiet hit


def test_conversion_cache_files_follow_the_umask(tmp_path, data_root):
    import os

    for umask, mode in ((0o022, 0o644), (0o027, 0o640)):
        old = os.umask(umask)
        try:
            cached_convert(PUBTATOR / "Linnaeus_Test.PubTator", {"Species": ["Species"]}, tmp_path / oct(umask))
        finally:
            os.umask(old)
        (entry,) = (tmp_path / oct(umask)).glob("*.json")
        assert entry.stat().st_mode & 0o777 == mode
