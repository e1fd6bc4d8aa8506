"""Every option of every config group composes, and every job of every experiment composes
through the plan machinery with a run key (as lightning-hydra-template's test_configs does); each
one passes the run specification's rules (``spec.problems``) with no problem."""

import pytest
from omegaconf import OmegaConf

from bioner_grid.config import CONF_DIR, compose
from bioner_grid.errors import ConfigError
from bioner_grid.identity import cell_key, run_key
from bioner_grid.plan import job_configs, sweep_jobs
from bioner_grid.spec import SCHEMA_OPTIONS, problems

GROUPS = ["model", "dataset", "scheme", "train", "tracking", "debug", "hydra/launcher", "hydra/sweeper"]


def options(group):
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


# The options with mandatory values (``???``) get them here, as their yaml's comment tells a user to.
MANDATORY = {"conll_files": ["dataset.train={root}/conll/NCBI-disease/train.tsv"],
             "pubtator_files": ["dataset.train={root}/pubtator/BioRED_TrainDev.PubTator",
                                "dataset.test={root}/pubtator/BioRED_Test.PubTator", "dataset.types={{Disease: [Disease]}}"]}


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_of_every_group_composes(group, option, data_root):
    assert option not in SCHEMA_OPTIONS  # schemas live in the ConfigStore, not beside the options
    given = [o.format(root=data_root) for o in MANDATORY.get(option, [])]
    cfg = compose([f"data.root={data_root}", f"{group}={option}", *given])
    OmegaConf.to_container(cfg, resolve=True)  # every interpolation resolves
    assert problems(cfg) == []
    if not group.startswith("hydra/"):
        assert run_key(cfg) and cell_key(cfg)


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_job_of_every_experiment_composes_with_its_own_run_key(experiment, data_root):
    fixed, jobs = sweep_jobs([f"experiment={experiment}", f"data.root={data_root}"])
    configs = job_configs(fixed, jobs)
    keys = {run_key(cfg) for cfg in configs}
    for cfg in configs:
        OmegaConf.to_container(cfg, resolve=True)
        assert problems(cfg) == [], cfg.hydra.job.override_dirname if "hydra" in cfg else None
    assert len(keys) == len(jobs)  # no two jobs of a grid are the same experiment
    expected = {"welt_grid": 280, "welt_grid_dev": 280, "foundation_grid": 84, "smoke_grid": 6, "minilm_study": 60,
                "cross_corpus": 5, "learning_curve": 24, "aioner_comparison": 24}
    assert len(jobs) == expected[experiment]  # a new experiment names its size here
    assert {cfg.grid.name for cfg in configs} == {experiment}


def test_grid_block_is_typed_and_closed(data_root):
    """``grid`` has a schema (``spec.GridSchema``): a value of the wrong type or a key it does not
    list (a typo) fails at compose time; the defaults are the ones conf/config.yaml documents."""
    cfg = compose([f"data.root={data_root}"])
    assert OmegaConf.to_container(cfg.grid) == {"name": "adhoc", "preflight": True, "skip_finished": True, "wait": True,
                                                "heartbeat_s": 60.0, "on_error": "continue",
                                                "on_timeout_below_estimate": "warn"}
    assert compose([f"data.root={data_root}", "grid.wait=false"]).grid.wait is False
    for bad in ("grid.wait=maybe", "grid.heartbeat_s=soon", "grid.skip_finshed=false"):
        with pytest.raises(ConfigError, match=f"^{bad.split('=')[0]}: "):
            compose([f"data.root={data_root}", bad])
