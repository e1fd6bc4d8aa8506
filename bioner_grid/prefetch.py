"""``python -m bioner_grid.prefetch experiment=welt_grid [overrides]``: fetch what a sweep needs.

Run it on a login node with internet before launching onto offline compute nodes:
- every hub model of the sweep is downloaded into the Hugging Face cache
  (``huggingface_hub.snapshot_download``; compute nodes then load it with ``HF_HUB_OFFLINE=1``);
- every corpus file is downloaded from its ``dataset.download`` URL into the path the dataset
  config reads, and checked against the SHA256 kept in the config. A file is written to a
  temporary name beside its target and renamed only once its checksum matches, so a failed or
  corrupted download leaves nothing behind; a file already present is verified, never replaced.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.request
from pathlib import Path

from bioner_grid import errors
from bioner_grid.corpus import DataError
from bioner_grid.plan import job_configs, sweep_jobs


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(url: str, target: str | Path, sha256: str | None, timeout: float = 60.0) -> str:
    """Download ``url`` to ``target`` atomically, verified against ``sha256``; returns what happened."""
    target = Path(target)
    if target.is_file():
        actual = sha256_of(target)
        if sha256 and actual != sha256:
            raise DataError(f"{target}:0: present but its SHA256 is {actual}, not {sha256}; move it away to re-download")
        return f"present {target} ({'verified' if sha256 else 'sha256 ' + actual + ', not pinned'})"
    target.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as response:
            for block in iter(lambda: response.read(1 << 20), b""):
                h.update(block)
                out.write(block)
        actual = h.hexdigest()
        if sha256 and actual != sha256:
            raise DataError(f"{url}:0: SHA256 mismatch: expected {sha256}, got {actual}; nothing written")
        os.replace(tmp, target)
    except OSError as e:  # URLError and HTTPError are OSErrors
        raise DataError(f"{url}:0: download failed: {e}") from None
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return f"fetched {target} ({'verified' if sha256 else 'sha256 ' + actual + ', not pinned: pin it in the dataset config'})"


def fetch_model(mcfg) -> str:
    if mcfg.source != "hub":
        return f"model {mcfg.name}: {mcfg.source}, nothing to fetch"
    # huggingface_hub's HTTP stack (~0.4 s) only when a hub model is fetched
    from huggingface_hub import snapshot_download

    path = snapshot_download(repo_id=mcfg.name_or_path, revision=mcfg.get("revision") or None)
    return f"model {mcfg.name}: {mcfg.name_or_path} in {path}"


def main(argv: list[str]) -> int:
    configs = job_configs(*sweep_jobs(argv))
    models = {cfg.model.name: cfg.model for cfg in configs}
    files = {}
    for cfg in configs:
        for split, spec in (cfg.dataset.get("download") or {}).items():
            files[cfg.dataset[split]] = spec
    failures = []
    for mcfg in models.values():
        try:
            print(fetch_model(mcfg))
        except Exception as e:  # noqa: BLE001 - report every model that could not be fetched
            failures.append(f"model {mcfg.name}: {e.__class__.__name__}: {str(e).splitlines()[0]}")
    for target, spec in files.items():
        try:
            print(fetch(spec.url, target, spec.get("sha256")))
        except DataError as e:
            failures.append(str(e))
    for f in failures:  # each on its line, secrets masked (errors.fail)
        errors.fail(errors.EnvError(f))
    return 1 if failures else 0


if __name__ == "__main__":
    from bioner_grid.cli import run

    sys.exit(run("prefetch"))
