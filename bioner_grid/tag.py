"""Tag new text with a saved model: ``python -m bioner_grid.tag model=... input=... format=... out=...``.

The text is split and tokenised exactly as training did (``pubtator.tokenize`` and
``pubtator.sentence_ranges``), long sentences are cut into windows (``align.make_windows``, never
truncated), an all-in-one model gets the task tags of the types asked, and every predicted entity
is mapped back to character offsets of the original text.

Inputs (``format``): ``pubtator`` (the project's reader), ``bioc`` (BioC XML, read and written with
the ``bioc`` package: the reference implementation's Python port, maintained, lxml-based, keeps
every infon and passage offset), ``text`` (one document per file, or per blank-line block) and
``conll`` (BIO TSV: ``token`` or ``token<TAB>tag`` per line, sentences as given). Output
(``out_format``): ``pubtator``, ``bioc`` or ``conll`` (``token<TAB>[gold<TAB>]pred``).

An input folder is a set of shards: each file gives one output file in the ``out`` folder; a shard
whose output exists is skipped, and every output is written to a temporary file and renamed, so a
killed job leaves nothing half-written. Bad input (a malformed PubTator line, an XML parse error, a
model folder without its label list) stops with ``file:line: problem``, exit 2, before anything is
written.

The saved model's format, its loading and the tagging itself are ``bundle``'s (``bundle.Tagger``),
the device and precision ``runtime``'s; this module is the command: inputs, outputs, shards. torch
and transformers (``bundle``, ``runtime``) and mlflow (and ``tracking``) are imported where a model
is loaded or looked up: reading and writing documents and ``--help`` go without them.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import bioc
from lxml import etree
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from bioner_grid import console, errors, identity, tagmodes
from bioner_grid.corpus import DataError, read_rows, write_atomic
from bioner_grid.documents import Document, Passage
from bioner_grid.pubtator import read_pubtator

log = logging.getLogger("bioner_grid.tag")

FORMATS = ("pubtator", "bioc", "text", "conll")
OUT_FORMATS = ("pubtator", "bioc", "conll")
EXTENSIONS = {"pubtator": ".pubtator", "bioc": ".bioc.xml", "conll": ".conll"}
RUN_ID = re.compile(r"[0-9a-f]{32}")

USAGE = """\
usage: bioner-grid-tag model=MODEL input=PATH out=PATH [format=pubtator|bioc|text|conll]
                       [out_format=pubtator|bioc|conll] [tag.types=[Chemical,Disease]|all]
                       [tag.batch_size=32] [tag.device=auto|cpu|cuda] [tag.progress=true]
                       [tag.part=I/N] [tag.mode=auto|all|individual|combined]
                       [tracking.uri=sqlite:///outputs/mlflow.db] [-v]
       (or python -m bioner_grid.tag)

Tag text with a model saved by a run (train.save_model=true).

  model       a saved model folder, an MLflow run id (its saved folder, or the model it logged),
              or a model URI: models:/NAME/VERSION, models:/MODEL_ID, runs:/RUN_ID/model
  input       a file, or a folder whose files are shards (one output file per shard)
  format      input format (default pubtator); text = one document per file or blank-line block
  out         output file (for a file input), else a folder: OUT/<input name><ext>
  out_format  pubtator | bioc | conll; default: bioc for bioc input, conll for conll, else pubtator
  tag.types   entity types to keep (an all-in-one model is asked for these with its task tags);
              all (default) = every type the model knows
  tag.part    I/N: only the shards I, I+N, I+2N, ... of a folder (0-based), for N jobs
  tag.mode    an all-in-one model's passes (AIONER Table S3): all (one pass under <ALL>), individual
              (one per type, under its own task tag), combined (both); overlapping entities: the
              longest is kept. auto (default): all when every type is asked, else individual
  -m          Hydra multirun over comma-separated values, one job each, on any Hydra launcher:
              python -m bioner_grid.tag -m model=... input=abstracts/ out=tagged/ \
                  tag.part=0/4,1/4,2/4,3/4 hydra/launcher=submitit_slurm hydra.launcher.partition=gpu
  tracking.uri  where run ids and models:/ URIs are looked up

  -v          show the libraries' log lines and warnings too (or BIONER_GRID_VERBOSE=1)

Existing output shards are skipped; outputs are written atomically. Bad input stops with
"file:line: problem" and exit status 2, with nothing written.

Examples:
  bioner-grid-tag model=models:/bioner-bc5cdr_chem/1 input=abstracts/ format=pubtator out=tagged/
  bioner-grid-tag model=RUN_ID input=docs.xml format=bioc out=docs.tagged.bioc.xml
  bioner-grid-tag model=outputs/runs/DATE/RUN/model input=notes.txt format=text out=notes.pubtator 'tag.types=[Chemical,Disease]'"""

DEFAULTS = {
    "model": None, "input": None, "out": None, "format": "pubtator", "out_format": None,
    "tag": {"types": "all", "batch_size": 32, "device": "auto", "progress": True, "part": None, "mode": "auto"},
    "tracking": {"uri": "sqlite:///outputs/mlflow.db"},
}


# ---------------------------------------------------------------------------------------------
# Documents


@dataclass
class Shard:
    path: Path
    documents: list[Document]
    collection: object = None  # BioC input: the collection, written back with annotations added


def read_pubtator_docs(path: Path) -> list[Document]:
    docs, skipped = read_pubtator(path)
    for problem in skipped:
        log.warning("%s", problem)
    return [Document(d.pmid, [Passage(0, d.text, title_end=len(d.title))]) for d in docs]


def read_text_docs(path: Path) -> list[Document]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}:0: not UTF-8 ({e.reason} at byte {e.start})") from None
    blocks = [b for b in re.split(r"\n[ \t\r]*\n", text) if b.strip()]
    if len(blocks) <= 1:
        return [Document(path.stem, [Passage(0, text.strip("\n"))])]
    return [Document(f"{path.stem}-{i}", [Passage(0, b.strip("\n"))]) for i, b in enumerate(blocks, start=1)]


def read_conll_docs(path: Path) -> list[Document]:
    """One document per file; each sentence a passage whose text is its tokens joined by spaces."""
    first = next((line for line in path.read_text(encoding="utf-8", errors="replace").split("\n") if line.strip()), "")
    n_fields = len(first.split("\t") if "\t" in first else first.split())
    if n_fields not in (1, 2):
        raise DataError(f"{path}:1: expected token or token<TAB>tag, found {n_fields} fields")
    passages, offset = [], 0
    for rows in read_rows(path, n_fields):
        tokens = [fields[0] for _, fields in rows]
        text = " ".join(tokens)
        starts = [sum(len(t) + 1 for t in tokens[:i]) for i in range(len(tokens))]
        words = [(s, s + len(t)) for s, t in zip(starts, tokens)]
        gold = [fields[1] for _, fields in rows] if n_fields == 2 else None
        passages.append(Passage(offset, text, words=words, gold=gold))
        offset += len(text) + 1
    return [Document(path.stem, passages)]


def read_bioc(path: Path) -> Shard:
    try:
        with open(path, "rb") as f:
            collection = bioc.biocxml.load(f)
    except etree.XMLSyntaxError as e:
        raise DataError(f"{path}:{e.lineno}: XML parse error: {e.msg}") from None
    except (ValueError, KeyError, TypeError) as e:  # a passage without its offset, an annotation without id
        raise DataError(f"{path}:0: not BioC XML ({type(e).__name__}: {e})") from None
    docs = [Document(d.id, [Passage(p.offset, p.text or "", source=p) for p in d.passages]) for d in collection.documents]
    if not docs:
        raise DataError(f"{path}:1: no BioC documents")
    return Shard(path, docs, collection)


def read_shard(path: Path, fmt: str) -> Shard:
    if not path.is_file():
        raise DataError(f"{path}:0: file not found")
    if fmt == "bioc":
        return read_bioc(path)
    reader = {"pubtator": read_pubtator_docs, "text": read_text_docs, "conll": read_conll_docs}[fmt]
    return Shard(path, reader(path))


# ---------------------------------------------------------------------------------------------
# The model


def open_tagger(folder: Path, device: str = "auto", batch_size: int = 32):
    """The saved model (``bundle.Tagger``) on this machine's device, in the precision its run was
    scored in where the hardware has it (``runtime.for_inference``)."""
    from bioner_grid import bundle, runtime  # torch and transformers: only once a model is loaded

    device, precision = runtime.for_inference(device, bundle.read_meta(folder).get("precision"))
    return bundle.Tagger(folder, device, precision, batch_size)


def resolve_model(spec: str, tracking_uri: str) -> Path:
    """A local folder holding the saved model (``bundle.META``), from a folder, a run id or a model URI."""
    from bioner_grid.bundle import META  # torch and transformers: resolving is the step before loading

    path = Path(spec)
    found = None
    if path.is_dir():
        found = path if (path / META).is_file() else next((p.parent for p in path.rglob(META)), None)
    run_folder = path.parent if path.name == "model" else path
    if found is None and (run_folder / "result.json").is_file():
        # a sweep's job keeps its model in MLflow only (export.save_and_log): the run it names
        result = json.loads((run_folder / "result.json").read_text())
        spec, tracking_uri = result["run_id"], result.get("tracking_uri") or tracking_uri
    elif path.is_dir():
        return _never_the_pickle(path, found or path)
    from bioner_grid.store import RunStore

    store = RunStore(tracking_uri, "")  # run ids and model URIs name their experiment
    uri = spec
    if RUN_ID.fullmatch(spec):
        try:
            run = store.find_run(spec)
        except LookupError as e:
            raise DataError(f"{spec}:0: no such run in {tracking_uri} ({e})") from None
        local = Path(identity.ops_tag(run.data.tags, "output_dir")) / "model"
        if (local / META).is_file():  # the run folder on this machine: no copy needed
            return local
        models = store.logged_models(run)
        if not models:
            raise DataError(f"{spec}:0: run saved no model (rerun it with train.save_model=true)")
        uri = f"models:/{models[0].model_id}"
    elif not spec.startswith(("models:/", "runs:/")):
        raise DataError(f"{spec}:0: not a model folder, an MLflow run id or a models:/ or runs:/ URI")
    try:
        local = store.download_uri(uri)
    except LookupError as e:
        raise DataError(f"{spec}:0: {e}") from None
    return _never_the_pickle(local, next((p.parent for p in local.rglob(META)), local))


def _never_the_pickle(model: Path, found: Path) -> Path:
    """``found``, the saved folder tagging loads (safetensors and JSON); a logged MLflow model of an
    older bioner-grid beside it also holds a cloudpickled pyfunc (``python_model.pkl``), which is
    never read here, and which the user is warned not to load through MLflow."""
    for pickle in (model.rglob("python_model.pkl") if model.is_dir() else []):
        log.warning("%s: a pickled MLflow pyfunc (an older bioner-grid logged it): not read; tagging with the saved "
                    "folder %s. Loading this model with mlflow.pyfunc.load_model would run the pickle", pickle, found)
    return found


# ---------------------------------------------------------------------------------------------
# Writers


def _pubtator_layout(doc: Document) -> tuple[str, str, list[int]]:
    """Title, abstract and each passage's offset in ``title + " " + abstract``: a PubTator document
    keeps its own; otherwise the first passage is the title and the rest, joined by spaces, the
    abstract (newlines become spaces: a PubTator record is one line, and offsets stay valid)."""
    flat = [p.text.replace("\r", " ").replace("\n", " ") for p in doc.passages]
    if len(doc.passages) == 1 and doc.passages[0].title_end is not None:
        end = doc.passages[0].title_end
        return flat[0][:end], flat[0][end + 1:], [0]
    offsets, pos = [], 0
    for text in flat:
        offsets.append(pos)
        pos += len(text) + 1
    return (flat[0] if flat else ""), " ".join(flat[1:]), offsets


def write_pubtator(shard: Shard, f) -> None:
    for doc in shard.documents:
        title, abstract, offsets = _pubtator_layout(doc)
        f.write(f"{doc.id}|t|{title}\n{doc.id}|a|{abstract}\n")
        for p, base in zip(doc.passages, offsets):
            for start, end, etype in p.entities:
                f.write(f"{doc.id}\t{base + start}\t{base + end}\t{p.text[start:end]}\t{etype}\n")
        f.write("\n")


def write_bioc(shard: Shard, f) -> None:
    """The BioC input with our annotations added to its passages (ids ``bioner_grid-N``), or a new
    collection: a PubTator document as a title and an abstract passage, other input one passage
    per passage (CoNLL: per sentence). Locations are document offsets, as BioC defines them."""
    collection = shard.collection
    if collection is None:
        collection = bioc.BioCCollection()
        collection.source = "bioner_grid.tag"
        for doc in shard.documents:
            d = bioc.BioCDocument()
            d.id = doc.id
            if len(doc.passages) == 1 and doc.passages[0].title_end is not None:
                title, abstract, _ = _pubtator_layout(doc)
                parts = [(0, title, "title"), (len(title) + 1, abstract, "abstract")]
            else:
                parts = [(p.offset, p.text, "passage") for p in doc.passages]
            for offset, text, kind in parts:
                bp = bioc.BioCPassage()
                bp.offset, bp.text, bp.infons["type"] = offset, text, kind
                d.add_passage(bp)
            collection.add_document(d)
    for doc, d in zip(shard.documents, collection.documents):
        n = 0
        for p in doc.passages:
            for s, e, etype in p.entities:
                start = p.offset + s
                target = p.source if p.source is not None else next((bp for bp in reversed(d.passages) if bp.offset <= start), d.passages[0])
                n += 1
                a = bioc.BioCAnnotation()
                a.id = f"bioner_grid-{n}"
                a.infons["type"] = etype
                a.text = p.text[s:e]
                a.add_location(bioc.BioCLocation(start, e - s))
                target.add_annotation(a)
    f.write(bioc.biocxml.dumps(collection))


def write_conll(shard: Shard, f) -> None:
    for doc in shard.documents:
        for p in doc.passages:
            for spans, tags in p.sentences:
                gold = p.gold or [None] * len(tags)
                for (s, e), g, t in zip(spans, gold, tags, strict=True):
                    f.write(f"{p.text[s:e]}\t{g}\t{t}\n" if g else f"{p.text[s:e]}\t{t}\n")
                f.write("\n")


WRITERS = {"pubtator": write_pubtator, "bioc": write_bioc, "conll": write_conll}


# ---------------------------------------------------------------------------------------------
# Command line


def parse_args(argv: list[str]):
    """``key=value`` overrides (Hydra's syntax) on the defaults; unknown keys are an error."""
    cfg = OmegaConf.create(DEFAULTS)
    OmegaConf.set_struct(cfg, True)
    # Hydra's own settings (hydra.run.dir=..., hydra/launcher=..., as in a command copied from a -m sweep)
    # place Hydra's folders and pick its launcher: a single call runs no Hydra, so they change nothing here
    hydra = [a for a in argv if a.split("=", 1)[0].lstrip("+~").startswith(("hydra.", "hydra/"))]
    if hydra:
        log.info("not used without -m (a single call writes no Hydra folder): %s", " ".join(hydra))
        argv = [a for a in argv if a not in hydra]
    try:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(argv))
    except OmegaConfBaseException as e:
        raise DataError(f"command line:0: {str(e).splitlines()[0]}") from None
    for key in ("model", "input", "out"):
        if cfg[key] is None:
            raise DataError(f"command line:0: {key}=... is required")
    if cfg.format not in FORMATS:
        raise DataError(f"command line:0: format={cfg.format} is not one of {', '.join(FORMATS)}")
    cfg.out_format = cfg.out_format or {"bioc": "bioc", "conll": "conll"}.get(cfg.format, "pubtator")
    if cfg.out_format not in OUT_FORMATS:
        raise DataError(f"command line:0: out_format={cfg.out_format} is not one of {', '.join(OUT_FORMATS)}")
    part = re.fullmatch(r"(\d+)/(\d+)", str(cfg.tag.part or "0/1"))
    if not part or int(part[1]) >= int(part[2]):
        raise DataError(f"command line:0: tag.part={cfg.tag.part} is not I/N (0 <= I < N)")
    if cfg.tag.mode not in tagmodes.MODES:
        raise DataError(f"command line:0: tag.mode={cfg.tag.mode} is not one of {', '.join(tagmodes.MODES)}")
    types = cfg.tag.types
    cfg.tag.types = None if types in (None, "all", "ALL") else ([types] if isinstance(types, str) else list(types))
    return cfg


def plan_shards(cfg) -> list[tuple[Path, Path]]:
    """(input file, output file) per shard."""
    src, out = Path(cfg.input), Path(cfg.out)
    ext = EXTENSIONS[cfg.out_format]
    if src.is_dir():
        files = sorted(p for p in src.iterdir() if p.is_file() and not p.name.startswith("."))
        if not files:
            raise DataError(f"{src}:0: no input files")
        if cfg.tag.part:
            i, n = (int(x) for x in str(cfg.tag.part).split("/"))
            files = files[i::n]
        return [(p, out / (_stem(p.name) + ext)) for p in files]
    if not src.is_file():
        raise DataError(f"{src}:0: file not found")
    return [(src, out / (_stem(src.name) + ext) if out.is_dir() else out)]


def _stem(name: str) -> str:
    """The name of a shard without its extension (``a.bioc.xml`` -> ``a``, ``pubmed.0001.txt`` -> ``pubmed.0001``)."""
    return name[: -len(".bioc.xml")] if name.endswith(".bioc.xml") else Path(name).stem


def register_config() -> str:
    """The tag command's keys as a Hydra config in the ConfigStore (for -m and for tab completion);
    returns its name."""
    from hydra.core.config_store import ConfigStore

    stamp = "${now:%Y-%m-%d}/${now:%H-%M-%S}"
    ConfigStore.instance().store(name="bioner_grid_tag", node={
        **DEFAULTS, "hydra": {"run": {"dir": f"outputs/tag/{stamp}"}, "sweep": {"dir": f"outputs/tag-multirun/{stamp}"}}})
    return "bioner_grid_tag"


def sweep(argv: list[str]) -> int:
    """``-m``: the same command swept by Hydra, one job per combination of values, on any Hydra
    launcher (``hydra/launcher=submitit_slurm``: SLURM job arrays, as the grid uses). Each job
    runs ``main`` on its own overrides, so it checks, skips written shards and writes atomically
    exactly as a single call does; the submitting process waits for the jobs (submitit)."""
    import hydra
    from hydra.core.hydra_config import HydraConfig

    @hydra.main(version_base=None, config_name=register_config())
    def job(_cfg) -> None:
        code = main([o for o in HydraConfig.get().overrides.task])
        if code:
            raise SystemExit(code)

    sys.argv = [sys.argv[0], *argv]
    job()
    return 0


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help", "help") for a in argv):
        print(USAGE)
        return 0
    if "-m" in argv or "--multirun" in argv:
        return sweep(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = parse_args(argv)
        shards = plan_shards(cfg)
        todo = [(src, dst) for src, dst in shards if not dst.exists()]
        if len(todo) < len(shards):
            log.info("skipping %d of %d shards: their output exists", len(shards) - len(todo), len(shards))
        if not todo:
            return 0
        for src, _ in todo:  # every shard is checked before any is written
            read_shard(src, cfg.format)
        console.install(transformers=True)  # the model's loading: no "Loading weights" bar (bioner_grid.console)
        tagger = open_tagger(resolve_model(str(cfg.model), cfg.tracking.uri), cfg.tag.device, cfg.tag.batch_size)
        tagger.plan(cfg.tag.types, cfg.tag.mode)
    except (DataError, ValueError) as e:  # ValueError: tag.device=cuda without CUDA (train.pick_device)
        return errors.fail(e if isinstance(e, DataError) else errors.ConfigError(str(e))).code
    log.info("model %s (%s labels, types %s), device %s", cfg.model, len(tagger.labels), tagger.types, tagger.device)
    for i, (src, dst) in enumerate(todo, start=1):
        shard = read_shard(src, cfg.format)
        tagger.tag_documents(shard.documents, cfg.tag.types, progress=bool(cfg.tag.progress), mode=cfg.tag.mode)
        write_atomic(dst, lambda f: WRITERS[cfg.out_format](shard, f))  # a killed job leaves no half shard
        n = sum(len(p.entities) for d in shard.documents for p in d.passages)
        log.info("[%d/%d] %s: %d documents, %d entities -> %s", i, len(todo), src, len(shard.documents), n, dst)
    return 0


if __name__ == "__main__":
    from bioner_grid.cli import run

    sys.exit(run("tag"))
