"""Prefetch downloads corpora over HTTP (a loopback server in the upstream layout), verified by SHA256."""

import functools
import http.server
import subprocess
import sys
import threading

import pytest

from bioner_grid.corpus import DataError
from bioner_grid.prefetch import fetch, sha256_of
from conftest import ROOT

UPSTREAM = {"NCBI-disease": "NCBI-disease-IOB", "BC5CDR-chem": "BC5CDR-chem-IOB"}


@pytest.fixture()
def mirror(tmp_path, data_root):
    """An HTTP server on 127.0.0.1 serving ../shared/datasets in the upstream repository's layout."""
    root = tmp_path / "mirror"
    for local, remote in UPSTREAM.items():
        (root / "data" / remote).mkdir(parents=True)
        for f in ("train", "devel", "test"):
            (root / "data" / remote / f"{f}.tsv").symlink_to(data_root / "conll" / local / f"{f}.tsv")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def prefetch(*args):
    return subprocess.run([sys.executable, "-m", "bioner_grid.prefetch", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def prefetch_inproc(monkeypatch, capsys, *args) -> subprocess.CompletedProcess:
    """``prefetch(*args)`` in this process (the real entry point: the test below, tests/test_cli.py)."""
    from bioner_grid import cli as commands

    monkeypatch.chdir(ROOT)
    capsys.readouterr()
    code = commands.run("prefetch", list(args))
    return subprocess.CompletedProcess("prefetch", code, *capsys.readouterr())


def test_prefetch_downloads_and_verifies_a_sweeps_corpora(mirror, tmp_path, data_root, monkeypatch, capsys):
    _, url = mirror
    target = tmp_path / "data"
    r = prefetch_inproc(monkeypatch, capsys, "experiment=smoke_grid", f"data.root={target}", f"data.upstream={url}")
    assert r.returncode == 0, r.stderr
    assert "tiny_bert: random, nothing to fetch" in r.stdout
    for local in UPSTREAM:
        for f in ("train", "devel", "test"):
            assert sha256_of(target / "conll" / local / f"{f}.tsv") == sha256_of(data_root / "conll" / local / f"{f}.tsv")
    assert r.stdout.count("fetched ") == 6 and r.stdout.count("verified") == 6
    again = prefetch_inproc(monkeypatch, capsys, "experiment=smoke_grid", f"data.root={target}", f"data.upstream={url}")
    assert again.returncode == 0 and again.stdout.count("present ") == 6  # verified, not downloaded again


def test_corrupted_download_is_refused_and_leaves_nothing(mirror, tmp_path, data_root):
    root, url = mirror
    served = root / "data" / "NCBI-disease-IOB" / "test.tsv"
    served.unlink()
    data = bytearray((data_root / "conll/NCBI-disease/test.tsv").read_bytes())
    data[100] ^= 1
    served.write_bytes(bytes(data))
    target = tmp_path / "data"
    r = prefetch("dataset=ncbi_disease", "model=tiny_bert", f"data.root={target}", f"data.upstream={url}")
    assert r.returncode == 1
    err = r.stderr.strip().splitlines()
    assert err == [f"error: {url}/data/NCBI-disease-IOB/test.tsv:0: SHA256 mismatch: expected "
                   f"8f088ce45dc4746592188f9e69de3d89d87f3bb8f0ed8c4a287d018123fa148d, got {sha256_of(served)}; nothing written"]
    folder = target / "conll" / "NCBI-disease"
    assert sorted(p.name for p in folder.iterdir()) == ["devel.tsv", "train.tsv"]  # no test.tsv, no .part file


def test_present_file_with_other_checksum_is_never_replaced(tmp_path):
    f = tmp_path / "train.tsv"
    f.write_text("a\tO\n")
    with pytest.raises(DataError, match="present but its SHA256 is .* move it away"):
        fetch("http://127.0.0.1:9/never-contacted", f, "0" * 64)
    assert f.read_text() == "a\tO\n"


def test_unreachable_server_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match=r"^http://127.0.0.1:9/x.tsv:0: download failed"):
        fetch("http://127.0.0.1:9/x.tsv", tmp_path / "x.tsv", None, timeout=5)
    assert list(tmp_path.iterdir()) == []
