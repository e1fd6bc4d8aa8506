"""Compose the N jobs of a sweep for little more than the cost of one (``plan``, the launchers).

Hydra composes each job from scratch: it re-reads and re-parses every YAML file of the defaults
list, builds the defaults tree and merges a dozen configs (about 85 ms of CPU a job with the files
cached, 150 ms without; 280 jobs of ``welt_grid`` took 42 s). Hydra has no API for composing many
jobs, so two things are done here, each with Hydra's own functions:

1. ``SharedConfigs``: the parsed files (``ConfigRepository.load_config`` results, group listings)
   are kept for the whole process, as Hydra's ``CachingConfigRepository`` keeps them for one
   compose. Every compose gets its own deep copy (Hydra merges with ``no_deepcopy_set_nodes``, so a
   shared node would end up in two configs).
2. ``SweepComposer``: the jobs of a sweep differ in a few group choices (``model=…``) and values
   (``train.seed=…``). A job's config is Hydra's merge of its defaults list; when a swept group's
   entries (its option and that option's own defaults) are the only ones writing their top-level
   keys (``model`` is written by ``schema/model/schema`` and ``model/<option>`` alone), the merge
   gives those keys the same nodes whatever else is chosen. So ``compose(job)`` takes the first
   job's config (``base``) and swaps in the nodes of each swept group from a config composed with
   that one option changed (``variant``: one Hydra compose per option, 18 for 280 ``welt_grid``
   jobs), then applies the job's value overrides and Hydra's bookkeeping (``hydra.overrides``,
   ``hydra.runtime.choices``, ``hydra.job.override_dirname``) with Hydra's own functions. Whatever
   does not meet the conditions, checked on the real defaults lists (a group writing ``hydra`` or
   another group's keys, interpolated defaults, ``+group=``/``~group``/``group@pkg=`` overrides,
   a different defaults list outside the group, an override that fails), is composed by Hydra
   itself, so errors read exactly as before. ``tests/test_compose.py`` checks that both give the
   same config (keys, order, types, resolved values) for jobs of every experiment.
"""

from __future__ import annotations

import copy
from typing import Any

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra._internal.config_repository import IConfigRepository
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict


class SharedConfigs(IConfigRepository):
    """A ``ConfigRepository`` that parses each file once per process; ``load_config`` hands out a
    deep copy each time (copying a parsed config is far cheaper than parsing it: no grammar)."""

    def __init__(self, delegate: IConfigRepository, cache: dict | None = None):
        self.delegate = delegate
        self.cache = {} if cache is None else cache

    def __deepcopy__(self, memo):  # Hydra copies the repository once per compose: keep the cache
        return SharedConfigs(copy.deepcopy(self.delegate, memo), self.cache)

    def _memo(self, key, make):
        if key not in self.cache:
            self.cache[key] = make()
        return self.cache[key]

    def initialize_sources(self, config_search_path) -> None:  # another search path: other files
        self.delegate.initialize_sources(config_search_path)
        self.cache = {}

    def get_schema_source(self):
        return self.delegate.get_schema_source()

    def load_config(self, config_path: str):
        return copy.deepcopy(self._memo(("load", config_path), lambda: self.delegate.load_config(config_path)))

    def group_exists(self, config_path: str) -> bool:
        return self._memo(("group", config_path), lambda: self.delegate.group_exists(config_path))

    def config_exists(self, config_path: str) -> bool:
        return self._memo(("config", config_path), lambda: self.delegate.config_exists(config_path))

    def get_group_options(self, group_name: str, results_filter=None) -> list[str]:
        return list(self._memo(("options", group_name, results_filter),
                               lambda: self.delegate.get_group_options(group_name, results_filter)))

    def get_sources(self):
        return self.delegate.get_sources()


def _top_key(package: str) -> str:
    return package.split(".", 1)[0]


class SweepComposer:
    """``compose(overrides)`` == ``loader.load_configuration(config_name, overrides, RunMode.RUN)``
    for the many jobs of one sweep (see the module's docstring)."""

    def __init__(self, loader: ConfigLoaderImpl, config_name: str | None):
        if not isinstance(loader.repository, SharedConfigs):
            loader.repository = SharedConfigs(loader.repository)
        self.loader, self.config_name = loader, config_name
        self.parser = OverridesParser.create()
        self._parsed: dict[str, Any] = {}
        self._base = None  # (group choices, config, defaults list) of the first job
        self._variants: dict[tuple, Any] = {}
        self._files: dict[str, tuple] = {}
        self.fast = self.slow = 0  # how many jobs took each path (for the tests and the benchmark)

    # -- Hydra itself ------------------------------------------------------------------------
    def hydra_compose(self, overrides: list[str]) -> DictConfig:
        self.slow += 1
        return self.loader.load_configuration(config_name=self.config_name, overrides=list(overrides), run_mode=RunMode.RUN)

    def compose(self, overrides: list[str], hydra: bool = True) -> DictConfig:
        """The job's config; without its ``hydra`` node when ``hydra`` is false (what
        ``hydra.compose(..., return_hydra_config=False)`` returns)."""
        try:
            cfg = self._fast(list(overrides), hydra)
        except Exception:  # noqa: BLE001 - Hydra composes it again and raises its own, exact error
            cfg = None
        if cfg is None:
            cfg = self.hydra_compose(overrides)
            return cfg if hydra else without_hydra(cfg)
        self.fast += 1
        return cfg

    # -- the fast path -----------------------------------------------------------------------
    def _parse(self, line: str):
        if line not in self._parsed:
            self._parsed[line] = self.parser.parse_override(line)
        return self._parsed[line]

    def _split(self, overrides: list[str]):
        """(plain group choices {group: option}, value overrides) or None for anything else."""
        groups: dict[str, str] = {}
        values = []
        for line in overrides:
            o = self._parse(line)
            if o.is_sweep_override():
                return None
            is_group = self.loader.repository.group_exists(o.key_or_group)
            if isinstance(o.value(), dict) or not is_group:
                values.append(o)
            elif o.is_add() or o.is_delete() or o.is_force_add() or o.package is not None or not isinstance(o.value(), str):
                return None  # appends, deletions, package renames: Hydra's own path
            else:
                groups[o.key_or_group] = o.value()
        return groups, values

    def _structure(self, groups: dict[str, str]):
        lines = [f"{g}={v}" for g, v in groups.items()]
        cfg = self.loader.load_configuration(config_name=self.config_name, overrides=lines, run_mode=RunMode.RUN)
        defaults = self.loader.compute_defaults_list(self.config_name, lines, RunMode.RUN).defaults
        return cfg, defaults

    def _file(self, config_path: str) -> tuple[set[str], bool]:
        """(top-level keys, whether its defaults list interpolates) of one config file."""
        if config_path not in self._files:
            loaded = self.loader.repository.load_config(config_path)
            keys = set(loaded.config.keys()) if isinstance(loaded.config, DictConfig) else {"?"}
            # ``- db: ${other_group}``: a choice that follows another group's (read off the raw entry)
            interpolated = any("${" in str(getattr(d, "value", "") or "") + str(getattr(d, "path", "") or "")
                               for d in (loaded.defaults_list or []))
            self._files[config_path] = keys, interpolated
        return self._files[config_path]

    def _written(self, entry) -> set[str]:
        """Top-level keys a defaults-list entry writes."""
        return {_top_key(entry.package)} if entry.package else self._file(entry.config_path)[0]

    def _interpolated(self, defaults) -> bool:
        return any(self._file(e.config_path)[1] for e in defaults)

    @staticmethod
    def _subtree(defaults, root: str) -> set[int]:
        """Indices of the entries under ``root`` (the group's option: itself and its own defaults)."""
        inside: set[str] = {root}
        found = set()
        for _ in range(len(defaults)):  # parents may be listed after their children
            for i, e in enumerate(defaults):
                if i not in found and (e.config_path == root and e.is_self or e.parent in inside):
                    found.add(i)
                    inside.add(e.config_path)
        return found

    def _variant(self, group: str, option: str):
        """(variant config, the top-level keys it lends, its hydra.runtime.choices) or None where
        the group's option cannot be swapped in safely."""
        key = (group, option)
        if key not in self._variants:
            self._variants[key] = self._make_variant(group, option)
        return self._variants[key]

    def _make_variant(self, group: str, option: str):
        base_groups, base_cfg, base_defaults = self._base
        try:
            cfg, defaults = self._structure({**base_groups, group: option})
        except Exception:  # noqa: BLE001 - an unknown option: Hydra's path says so
            return None
        if self._interpolated(base_defaults) or self._interpolated(defaults):
            return None
        sub0 = self._subtree(base_defaults, f"{group}/{base_groups[group]}")
        subv = self._subtree(defaults, f"{group}/{option}")
        if not sub0 or not subv:
            return None

        def sig(e):
            return e.config_path, e.package, e.is_self, e.primary, e.parent

        outside0 = [sig(e) for i, e in enumerate(base_defaults) if i not in sub0]
        outsidev = [sig(e) for i, e in enumerate(defaults) if i not in subv]
        if outside0 != outsidev:
            return None
        keys0 = set().union(*(self._written(base_defaults[i]) for i in sub0))
        keysv = set().union(*(self._written(defaults[i]) for i in subv))
        others = set().union(*(self._written(e) for i, e in enumerate(base_defaults) if i not in sub0))
        if keys0 != keysv or "hydra" in keys0 or keys0 & others:
            return None
        c0, cv = base_cfg.hydra.runtime.choices, cfg.hydra.runtime.choices
        if list(c0.keys()) != list(cv.keys()):
            return None
        return cfg, keys0, {k: cv[k] for k in cv if cv[k] != c0[k]}

    def _fast(self, overrides: list[str], hydra: bool = True) -> DictConfig | None:
        split = self._split(overrides)
        if split is None:
            return None
        groups, values = split
        if self._base is None:
            self._base = (groups, *self._structure(groups))
            hydra_lines = list(self._base[1].hydra.overrides.hydra) + list(self._base[1].hydra.overrides.task)
            if sorted(hydra_lines) != sorted(f"{g}={v}" for g, v in groups.items()):
                self._base = ({"?": "?"}, None, None)  # the config itself sets hydra.overrides: never fast
        base_groups, base_cfg, _ = self._base
        if list(groups) != list(base_groups):
            return None
        nodes: dict[str, Any] = {}
        choices: dict[str, Any] = {}
        for group, option in groups.items():
            if option == base_groups[group]:
                continue
            variant = self._variant(group, option)
            if variant is None:
                return None
            vcfg, keys, vchoices = variant
            if keys & nodes.keys():
                return None
            nodes.update({k: vcfg._get_node(k) for k in keys})
            choices.update(vchoices)
        # A new root holding deep copies of the nodes (OmegaConf.create copies a node it is given),
        # in the base's key order; then what _load_configuration_impl does after the merge. The
        # hydra node (the largest) is left out where it is not wanted and no override sets it.
        if not hydra and not any(o.is_hydra_override() for o in values):
            cfg = OmegaConf.create({k: nodes.get(k, base_cfg._get_node(k)) for k in base_cfg.keys() if k != "hydra"})
            OmegaConf.set_struct(cfg, True)
            ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
            return cfg
        cfg = OmegaConf.create({k: nodes.get(k, base_cfg._get_node(k)) for k in base_cfg.keys()})
        OmegaConf.set_struct(cfg, True)
        OmegaConf.set_readonly(cfg.hydra, False)
        ConfigLoaderImpl._apply_overrides_to_config(values, cfg)
        with open_dict(cfg.hydra):
            cfg.hydra.overrides.hydra = []
            cfg.hydra.overrides.task = []
            cfg.hydra.runtime.choices.update(choices)
        app_overrides = []
        for line in overrides:
            o = self._parse(line)
            if o.is_hydra_override():
                cfg.hydra.overrides.hydra.append(o.input_line)
            else:
                cfg.hydra.overrides.task.append(o.input_line)
                app_overrides.append(o)
        dirname = cfg.hydra.job.config.override_dirname
        cfg.hydra.job.override_dirname = get_overrides_dirname(
            overrides=app_overrides, kv_sep=dirname.kv_sep, item_sep=dirname.item_sep, exclude_keys=dirname.exclude_keys)
        return cfg if hydra else without_hydra(cfg)


def without_hydra(cfg: DictConfig) -> DictConfig:
    """What ``hydra.compose(..., return_hydra_config=False)`` returns."""
    if "hydra" in cfg:
        with open_dict(cfg):
            del cfg["hydra"]
    return cfg


def install(loader: ConfigLoaderImpl) -> None:
    """Make ``loader.load_sweep_config`` (Hydra's sweeper checks every job with it, then our
    launcher composes them again) compose through a ``SweepComposer``, and hand the config the
    sweeper composed for a job to the launcher's call for the same job instead of composing it
    twice (each is handed over once: a later call composes anew). ``uninstall`` before the loader
    is pickled (submitit pickles the launcher with it)."""
    if "load_sweep_config" in vars(loader):
        return
    composers: dict = {}
    handed: dict = {}  # composed once (the sweeper's check), not yet handed to a second caller
    done: set = set()

    def load_sweep_config(master_config: DictConfig, sweep_overrides: list[str]) -> DictConfig:
        overrides = list(OmegaConf.to_container(master_config.hydra.overrides.hydra)) + list(sweep_overrides)
        name = master_config.hydra.job.config_name
        key = (name, tuple(overrides))
        cfg = handed.pop(key, None)
        if cfg is None:
            composer = composers.setdefault(name, SweepComposer(loader, name))
            cfg = composer.compose(overrides)
            if key not in done:
                handed[key] = cfg
        done.add(key)
        # as Hydra's load_sweep_config: the same ${now:} etc. as the sweep's own config
        OmegaConf.copy_cache(from_config=master_config, to_config=cfg)
        return cfg

    loader.__dict__["load_sweep_config"] = load_sweep_config
    loader.__dict__["_sweep_composers"] = composers


def uninstall(loader: ConfigLoaderImpl) -> None:
    loader.__dict__.pop("load_sweep_config", None)
    loader.__dict__.pop("_sweep_composers", None)
    if isinstance(loader.repository, SharedConfigs):
        loader.repository = loader.repository.delegate
