"""A member option of the all-in-one dataset: entity spans shortened by given suffixes before
conversion (``strip_suffixes``; AIONER's " cell"/" cells" of BioID's cell lines), on the real BioID
file: counted in the conversion report, in the conversion cache key and in the run key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bioner_grid import identity, pubtator
from bioner_grid.config import compose
from bioner_grid.corpus import entity_spans

SUFFIXES = [" cell", " cells"]
TYPES = {"CellLine": ["CellLine"]}


def with_suffixes(source: Path, target: Path) -> int:
    """``source`` with every annotation that the text follows by " cell" or " cells" (a whole word)
    stretched over it: BioID's spans as first released, before AIONER's revision removed the suffix
    (the shared ``BioID_*_revision`` files). Returns how many were stretched."""
    lines, texts, n = source.read_text(encoding="utf-8").split("\n"), {}, 0
    for i, line in enumerate(lines):
        head = line.split("|", 2)
        if len(head) == 3 and head[1] in ("t", "a"):
            texts[head[0]] = head[2] if head[1] == "t" else texts[head[0]] + " " + head[2]
            continue
        fields = line.split("\t")
        if len(fields) < 5:
            continue
        text, end = texts[fields[0]], int(fields[2])
        for suffix in (" cells", " cell"):
            after = text[end + len(suffix): end + len(suffix) + 1]
            if text[end:end + len(suffix)] == suffix and not after.isalnum():
                fields[2], fields[3] = str(end + len(suffix)), fields[3] + suffix
                lines[i], n = "\t".join(fields), n + 1
                break
    target.write_text("\n".join(lines), encoding="utf-8")
    return n


@pytest.fixture(scope="module")
def bioid(data_root) -> Path:
    return data_root / "pubtator" / "BioID_Test_revision.PubTator"


def test_suffixes_are_stripped_and_counted_on_bioid(bioid, tmp_path):
    stretched = with_suffixes(bioid, tmp_path / "BioID_Test.PubTator")
    assert stretched > 500  # two thirds of the test file's cell lines are followed by " cell(s)"
    converted = pubtator.convert(tmp_path / "BioID_Test.PubTator", TYPES, SUFFIXES)
    assert converted.report["suffix_trimmed"] == stretched and converted.report["suffixes"] == SUFFIXES
    assert f"suffix ' cell' / ' cells' trimmed from {stretched} entities" in pubtator.format_report(converted.report)
    for doc in converted.documents:
        for s in doc:
            assert all(s.tokens[end - 1] not in ("cell", "cells") for _, _, end in entity_spans(s.tags))
    # what is left is exactly AIONER's revised file (the shared one), sentence for sentence
    revised = pubtator.convert(bioid, TYPES)
    assert [[(s.tokens, s.tags) for s in d] for d in converted.documents] == \
           [[(s.tokens, s.tags) for s in d] for d in revised.documents]
    # unstripped, the stretched spans end in "cell(s)"
    raw = pubtator.convert(tmp_path / "BioID_Test.PubTator", TYPES)
    assert "suffix_trimmed" not in raw.report
    assert sum(s.tokens[end - 1] in ("cell", "cells") for d in raw.documents for s in d
               for _, _, end in entity_spans(s.tags)) == stretched


def test_the_shared_revision_has_nothing_left_to_strip(bioid):
    report = pubtator.convert(bioid, TYPES, SUFFIXES).report
    assert report["suffix_trimmed"] == 0 and report["entities_exact"] > 1000


def test_the_setting_keys_the_cache_and_the_run(bioid, tmp_path, data_root):
    stretched = tmp_path / "BioID_Test.PubTator"
    with_suffixes(bioid, stretched)
    plain = pubtator.cached_convert(stretched, TYPES, tmp_path / "cache")
    stripped = pubtator.cached_convert(stretched, TYPES, tmp_path / "cache", SUFFIXES)
    assert len(list((tmp_path / "cache").iterdir())) == 2  # one entry each: neither is read for the other
    assert "suffix_trimmed" not in plain.report and stripped.report["suffix_trimmed"] > 0
    assert pubtator.cached_convert(stretched, TYPES, tmp_path / "cache", SUFFIXES).report == stripped.report
    root = f"data.root={data_root}"
    on = compose(["dataset=aio", root])  # conf/dataset/aio.yaml strips BioID's suffixes
    assert list(on.dataset.members[-1].strip_suffixes) == SUFFIXES and on.dataset.members[-1].name == "BioID"
    off = compose(["dataset=aio", root, "dataset.members.8.strip_suffixes=[]"])
    assert identity.run_key(on) != identity.run_key(off)
    # an empty list adds nothing to a member's key: the runs recorded before the option keep theirs
    assert "strip_suffixes" not in identity.identity(off)["dataset"]["members"][8]
