"""``python -m bioner_grid.tag_compare model=MODEL``: AIONER's Table S3 for an all-in-one model, the
three tagging modes (``tag.mode``: all, individual, combined; ``bioner_grid.tagmodes``) scored per
entity type on BioRED's test set (strict P/R/F1, seqeval), in the layout of ``evaluate``.

BioRED's test file is read as the all-in-one dataset reads it (``conf/dataset/aio.yaml``'s member,
converted by ``pubtator``, cached under ``data.cache``), its sentences tagged as plain text by the
saved model in each mode, exactly as ``tag`` would tag them. Each task's pass runs once and serves
every mode that asks for it (``all`` and ``combined`` share the ``<ALL>`` pass).
"""

from __future__ import annotations

import logging
import sys

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from bioner_grid import errors, scoring, tagmodes
from bioner_grid.corpus import DataError
from bioner_grid.evaluate import render

log = logging.getLogger("bioner_grid.tag_compare")

MODES = ("all", "individual", "combined")
USAGE = """\
usage: bioner-grid-tag-compare model=MODEL [member=BioRED] [max_sentences=N]
                               [format=md|tsv|json] [data.root=PATH] [data.cache=PATH]
                               [tag.batch_size=32] [tag.device=auto|cpu|cuda]
                               [tracking.uri=sqlite:///outputs/mlflow.db] [-v]
       (or python -m bioner_grid.tag_compare)

Score an all-in-one model's tagging modes (all, individual, combined; AIONER Table S3) per entity
type on the test split of one dataset=aio member (default BioRED), strict P/R/F1 (%).

  model          a saved all-in-one model: a folder, an MLflow run id or a models:/ URI (as tag)
  member         the member of conf/dataset/aio.yaml whose test file is scored
  max_sentences  the first N test sentences only (a quick check)

Examples:
  bioner-grid-tag-compare model=RUN_ID                      # an all-in-one run's model on BioRED's test split
  bioner-grid-tag-compare model=models:/bioner-aio/1 member=NLMgene format=tsv
  bioner-grid-tag-compare model=RUN_ID max_sentences=200 tag.device=cpu"""

DEFAULTS = {
    "model": None, "member": "BioRED", "max_sentences": None, "format": "md",
    "data": {"root": None, "cache": "outputs/cache"},
    "tag": {"batch_size": 32, "device": "auto"},
    "tracking": {"uri": "sqlite:///outputs/mlflow.db"},
}


def register_config() -> str:
    """The command's keys as a Hydra config in the ConfigStore (for tab completion); returns its name."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="bioner_grid_tag_compare", node=DEFAULTS)
    return "bioner_grid_tag_compare"


def member_test(member: str, root: str | None, cache: str):
    """Tokens and gold tags of ``member``'s test sentences, as ``dataset=aio`` converts them."""
    from bioner_grid import pubtator
    from bioner_grid.config import compose

    cfg = compose(["dataset=aio"] + ([f"data.root={root}"] if root else []))
    found = [m for m in cfg.dataset.members if m.name == member]
    if not found:
        raise DataError(f"member={member}:0: not a member of dataset=aio ({', '.join(m.name for m in cfg.dataset.members)})")
    m = found[0]
    conversion = pubtator.cached_convert(m.test, OmegaConf.to_container(m.types, resolve=True), cache)
    sentences = [s for doc in conversion.documents for s in doc]
    return [s.tokens for s in sentences], [s.tags for s in sentences]


def compare(tagger, tokens: list[list[str]], gold: list[list[str]], modes=MODES) -> dict[str, dict]:
    """Strict scores (``scoring.score``) of each mode's tagging of ``tokens`` against ``gold``, every
    type of the model asked. Each distinct (task) pass is predicted once."""
    plans = {mode: tagger.plan(None, mode) for mode in modes}
    predicted = {}
    for plan in plans.values():
        for task, _ in plan:
            if task not in predicted:
                log.info("pass <%s> over %d sentences", task, len(tokens))
                predicted[task] = tagger.predict_pass(tokens, task)
    scores = {}
    for mode, plan in plans.items():
        outputs = [tagmodes.only(predicted[task], keep) for task, keep in plan]
        # one pass too: its entities as the tagger writes them (a stray I-X starts one), so that
        # the modes differ only in what they predict, not in how their tags are read
        pred = tagmodes.merge(outputs, tagger.types)
        scores[mode] = scoring.score(gold, pred)["strict"]
    return scores


def table(scores: dict[str, dict]) -> list[dict]:
    """One row per entity type (then ``overall``, micro): support, and P/R/F1 (%) of each mode."""
    modes = list(scores)
    types = sorted({t for s in scores.values() for t in s["per_type"]})
    rows = []
    for label in [*types, "overall"]:
        row = {"label": label}
        for mode in modes:
            r = scores[mode] if label == "overall" else scores[mode]["per_type"].get(label, {})
            row["support"] = r.get("support", row.get("support", 0))
            row.update({f"{mode} P": 100 * r.get("precision", 0.0), f"{mode} R": 100 * r.get("recall", 0.0),
                        f"{mode} F1": 100 * r.get("f1", 0.0)})
        rows.append(row)
    return rows


def parse_args(argv: list[str]):
    cfg = OmegaConf.create(DEFAULTS)
    OmegaConf.set_struct(cfg, True)
    try:
        cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(argv))
    except OmegaConfBaseException as e:
        raise DataError(f"command line:0: {str(e).splitlines()[0]}") from None
    if cfg.model is None:
        raise DataError("command line:0: model=... is required")
    if cfg.format not in ("md", "tsv", "json"):
        raise DataError(f"command line:0: format={cfg.format} is not one of md, tsv, json")
    return cfg


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help", "help") for a in argv):
        print(USAGE)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from bioner_grid.tag import open_tagger, resolve_model

    try:
        cfg = parse_args(argv)
        tokens, gold = member_test(cfg.member, cfg.data.root, cfg.data.cache)
        if cfg.max_sentences:
            tokens, gold = tokens[: int(cfg.max_sentences)], gold[: int(cfg.max_sentences)]
        tagger = open_tagger(resolve_model(str(cfg.model), cfg.tracking.uri), cfg.tag.device, cfg.tag.batch_size)
        scores = compare(tagger, tokens, gold)
    except (DataError, ValueError) as e:
        return errors.fail(e if isinstance(e, DataError) else errors.ConfigError(str(e))).code
    title = f"{cfg.member} test ({len(tokens)} sentences): strict P/R/F1 (%) per type and tagging mode"
    print(render({title: table(scores)}, cfg.format))
    return 0


if __name__ == "__main__":
    from bioner_grid.cli import run

    sys.exit(run("tag_compare"))
