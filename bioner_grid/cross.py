"""Cross-corpus evaluation: other datasets' test splits a run also scores (``evaluation.extra_tests``).

A model trained on NCBI-disease is scored on its own test split and, with
``evaluation.extra_tests=[bc5cdr_disease,biored_disease]``, on those datasets' test splits too,
logged as ``cross/<dataset>/strict_f1`` and the rest of a split's metrics (``store.cross_metric``).

**Types.** Every dataset config already names its output types: a BIO corpus's is its
``entity_type`` (``Disease`` for NCBI-disease and BC5CDR-disease), a PubTator corpus's are the keys
of ``types`` (BioRED's ``Disease: [Disease]``; AIONER's NCBI member maps NCBI's subtypes
``SpecificDisease``, ``DiseaseClass``, ``CompositeMention``, ``Modifier`` to ``Disease``). An
extra test set's type maps to the model's type of the same name, compared case-insensitively
(BC2GM's ``GENE`` is ``Gene``), or as ``evaluation.type_map`` says (``{DISO: Disease}``: test type
→ model type). A type that maps to none stops the run before anything is trained or recorded
(``problems``, a ``spec`` rule: checked for every job of a sweep too). The model's predictions of
a type the extra test set does not annotate become ``O`` there: it is not scored on what that
corpus never marked.

This module decides from the configs alone (``problems``, ``plan``), as ``plan`` and a sweep's
preflight must, before any data is read; ``data.load_extra_tests`` reads the splits.

**Overlap.** Each extra test split joins the evaluation splits ``bioner_grid.overlap`` compares the
training units with (``data.overlap``: dropped, kept with a warning, or refused), and the run
records per extra test set ``overlap.cross.<dataset>.train_test`` and ``.test_in_train`` (what the
cross-corpus report marks).
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf


def dataset_dir() -> Path:
    """``conf/dataset``: the same folder ``config.CONF_DIR`` holds (inside the package in a wheel, the
    repository's ``conf/`` otherwise); written again here because ``config`` imports ``spec``, which
    imports this module."""
    here = Path(__file__).resolve().parent
    packaged = here / "conf"
    return (packaged if (packaged / "config.yaml").is_file() else here.parent / "conf") / "dataset"


def known_datasets() -> list[str]:
    return sorted(p.stem for p in dataset_dir().glob("*.yaml"))


def dataset_config(name: str, cfg):
    """The dataset config ``conf/dataset/<name>.yaml``, resolved with this run's ``data`` block
    (``${data.root}``); None when there is no such config."""
    path = dataset_dir() / f"{name}.yaml"
    if not path.is_file():
        return None
    node = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    node.pop("defaults", None)  # the schema is the group's; the keys below are what a reader needs
    node.pop("download", None)
    data = {k: OmegaConf.select(cfg, f"data.{k}", default=None) for k in ("root", "upstream", "upstream_pubtator")}
    return OmegaConf.create({"data": data, "dataset": node}).dataset


def output_types(ds) -> list[str]:
    """The entity types a dataset config produces: a BIO corpus's ``entity_type``, a PubTator
    corpus's ``types`` keys, an all-in-one corpus's members' (``only`` respected)."""
    if ds.format == "conll":
        return [str(ds.entity_type)]
    if ds.format == "aio":
        only = set(ds.get("only") or [])
        return sorted({t for m in ds.members if not only or m.name in only for t in m.types})
    types = ds.get("types")
    return sorted(types) if OmegaConf.is_dict(types) or isinstance(types, dict) else []


def type_mapping(model_types: list[str], test_types: list[str], explicit: dict | None = None) -> tuple[dict[str, str], list[str]]:
    """(test type -> model type, the test types that map to none): ``explicit`` first
    (``evaluation.type_map``), then the same name, then the same name in another case."""
    explicit = dict(explicit or {})
    lower = {t.lower(): t for t in model_types}
    mapping, unmapped = {}, []
    for t in test_types:
        target = explicit.get(t) or (t if t in model_types else lower.get(t.lower()))
        if target in model_types:
            mapping[t] = target
        else:
            unmapped.append(t)
    return mapping, unmapped


def extra_names(cfg) -> list[str]:
    """The extra test sets of a run, its own dataset left out (its test is scored anyway)."""
    names = OmegaConf.select(cfg, "evaluation.extra_tests", default=None) or []
    return [str(n) for n in dict.fromkeys(names) if str(n) != cfg.dataset.name]


def problems(cfg) -> list[str]:
    """``evaluation.extra_tests`` that cannot be scored, each on one line naming it: no such dataset
    config, no test file, an all-in-one corpus on either side, or a type that maps to none of the
    model's."""
    names = extra_names(cfg)
    if not names:
        return []
    if cfg.dataset.format == "aio":
        return ["evaluation.extra_tests: not supported with an all-in-one corpus (dataset=aio scores every member's "
                "test already); train the member's dataset alone to test it across corpora"]
    out = []
    model_types = output_types(cfg.dataset)
    type_map = OmegaConf.to_container(cfg.evaluation.type_map) if OmegaConf.select(cfg, "evaluation.type_map") else {}
    for name in names:
        ds = dataset_config(name, cfg)
        if ds is None:
            out.append(f"evaluation.extra_tests: {name}: no such dataset config (one of {', '.join(known_datasets())})")
            continue
        if ds.format == "aio":
            out.append(f"evaluation.extra_tests: {name}: an all-in-one corpus cannot be an extra test set; name its "
                       "members' datasets")
            continue
        if not ds.get("test"):
            out.append(f"evaluation.extra_tests: {name}: has no test file")
            continue
        _, unmapped = type_mapping(model_types, output_types(ds), type_map)
        if unmapped:
            out.append(f"evaluation.extra_tests: {name}: its type(s) {', '.join(unmapped)} map to none of the model's "
                       f"({', '.join(model_types)}, dataset={cfg.dataset.name}); drop it or set "
                       f"evaluation.type_map={{{unmapped[0]}: <model type>}}")
    return out


def plan(cfg) -> list[tuple[str, object, dict[str, str]]]:
    """(name, resolved dataset config, test type -> model type) of each extra test set of a run
    (``problems`` has passed); ``data.load_extra_tests`` reads them."""
    model_types = output_types(cfg.dataset)
    type_map = OmegaConf.to_container(cfg.evaluation.type_map) if OmegaConf.select(cfg, "evaluation.type_map") else {}
    out = []
    for name in extra_names(cfg):
        ds = dataset_config(name, cfg)
        out.append((name, ds, type_mapping(model_types, output_types(ds), type_map)[0]))
    return out
