"""bioner_grid.compose: a sweep's jobs composed fast are the configs Hydra composes one by one."""

from __future__ import annotations

import pytest
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from omegaconf import OmegaConf

from bioner_grid import compose, errors
from bioner_grid.config import CONF_DIR, compose_jobs
from bioner_grid.plan import sweep_jobs

EXPERIMENTS = sorted(p.stem for p in (CONF_DIR / "experiment").glob("*.yaml"))


def assert_same(hydra_cfg, fast_cfg, where: str) -> None:
    """Same keys in the same order, same unresolved values (the YAML Hydra saves as config.yaml),
    same node types and flags, same resolved values outside ``hydra`` (whose ${now:} differs between
    any two composes)."""
    assert OmegaConf.to_yaml(fast_cfg) == OmegaConf.to_yaml(hydra_cfg), where
    assert list(fast_cfg.keys()) == list(hydra_cfg.keys()), where
    assert OmegaConf.is_struct(fast_cfg) == OmegaConf.is_struct(hydra_cfg), where
    for key in hydra_cfg:
        a, b = hydra_cfg._get_node(key), fast_cfg._get_node(key)
        assert type(a) is type(b) and OmegaConf.get_type(a) is OmegaConf.get_type(b), f"{where}: {key}"
        if key != "hydra":
            assert (OmegaConf.to_container(hydra_cfg[key], resolve=True)
                    == OmegaConf.to_container(fast_cfg[key], resolve=True)), f"{where}: {key}"
    if "hydra" in hydra_cfg:
        assert OmegaConf.is_readonly(fast_cfg.hydra) == OmegaConf.is_readonly(hydra_cfg.hydra)


def sample(jobs: list, n: int = 4) -> list[int]:
    step = max(1, len(jobs) // n)
    return sorted(set(range(0, len(jobs), step)) | {len(jobs) - 1})


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_fast_compose_equals_hydra_for_every_experiment(experiment):
    """Every experiment's sweep, jobs spread over the grid, with the hydra node (what the launcher
    and the sweeper get) and without it (``plan``)."""
    fixed, jobs = sweep_jobs([f"experiment={experiment}"])
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().hydra.config_loader
        composer = compose.SweepComposer(loader, "config")
        picked = sample(jobs)  # job 0 first: the base the others are built from
        fast = {i: composer.compose(fixed + jobs[i]) for i in picked}
        for i in picked:
            hydra_cfg = loader.load_configuration("config", fixed + jobs[i], run_mode=RunMode.RUN)
            assert_same(hydra_cfg, fast[i], f"{experiment} job {i} {jobs[i]}")
            bare = composer.compose(fixed + jobs[i], hydra=False)
            assert_same(compose.without_hydra(hydra_cfg), bare, f"{experiment} job {i} without hydra")
    if len(jobs) > 1:  # the swept groups went through the fast path, not Hydra's once per job
        assert composer.fast == 2 * len(picked) and composer.slow == 0


def test_fast_compose_with_values_seeds_and_hydra_overrides():
    """Value overrides on the swept groups' own nodes, a seed sweep, a launcher setting, and
    groups swept from the command line: applied exactly as Hydra applies them."""
    fixed = ["experiment=welt_grid", "model.head=crf", "hydra/launcher=slurm", "hydra.launcher.timeout_min=5"]
    jobs = [[f"model={m}", f"dataset={d}", "scheme=vanilla", f"train.seed={seed}"]
            for m in ("biobert", "scibert") for d in ("ncbi_disease", "bc2gm") for seed in (1, 2)]
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        loader = GlobalHydra.instance().hydra.config_loader
        composer = compose.SweepComposer(loader, "config")
        for job in jobs:
            fast = composer.compose(fixed + job)
            assert_same(loader.load_configuration("config", fixed + job, run_mode=RunMode.RUN), fast, str(job))
            assert fast.model.head == "crf" and fast.hydra.launcher.timeout_min == 5
        assert {composer.compose(fixed + j).train.seed for j in jobs} == {1, 2}
    assert composer.fast == 2 * len(jobs)


def test_bad_override_fails_as_hydra_says():
    """A job that does not compose stops with the one line ``compose_here`` gives (ConfigError)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        with pytest.raises(errors.ConfigError, match=r"train\.lrr"):
            compose_jobs([["model=tiny_bert"], ["model=tiny_bert", "train.lrr=1"]])
        with pytest.raises(errors.ConfigError, match="nosuchmodel"):
            compose_jobs([["model=tiny_bert"], ["model=nosuchmodel"]])
