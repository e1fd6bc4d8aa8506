"""``hydra/sweeper=optuna``: adaptive search with pruning, with the Hydra Optuna sweeper's interface.

    python -m bioner_grid -m hydra/sweeper=optuna hydra.sweeper.n_trials=12 hydra.sweeper.n_jobs=2 \\
        'train.lr=tag(log, interval(1e-5, 1e-3))' 'train.batch_size=choice(8,16,32)'

Why a sweeper of our own rather than hydra-optuna-sweeper (1.3.0, tried 2026-11-30):
- it requires ``optuna<3`` (pip would downgrade Optuna 5 to 2.10; installed without its
  dependencies it does run on Optuna 5, through deprecated distribution classes);
- it maximises the job's return value, which is test strict F1 here (``__main__.app``): a search
  must choose on dev;
- our launchers return nothing for a job skipped as FINISHED, so its ``zip(trials, returns)``
  pairs trials with the wrong results (or leaves them RUNNING) on a relaunch;
- each batch is a separate ``launch``: a separate sweep parent run per batch, an in-memory study
  by default (a relaunch starts over), and no way for a job to reach its trial (no pruning: hydra#1710, #1954).
This one is a small sweeper on Optuna's ask/tell API: the same overrides (``choice``, ``range``,
``interval``, ``tag(log, interval)``; ``hydra.sweeper.params`` as a mapping), ``n_trials``,
``n_jobs``, ``direction``, ``study_name``, ``storage``, ``sampler.seed``, and ``pruner``. The job's
side and the rules are in ``bioner_grid.search``; the settings are typed in
``bioner_grid.spec.OptunaSweeperSchema``.

One launch:
1. checks everything before anything is created: settings (a test metric: exit 2), the search
   space (a key that does not exist: Hydra's compose error as one line, exit 2) and the rules of
   a probe configuration (``spec.problems``);
2. opens (or continues) the study beside the tracking store; ``n_trials`` is the study's total,
   so the same command again runs only what is missing: trials left RUNNING by an interrupted
   launch are run again under their own numbers (their jobs resume their runs), then new trials;
3. per batch of ``n_jobs``: trials whose configuration is already FINISHED in the tracking store
   (``identity.decide``) are told its dev F1 without training; the rest go to ``hydra/launcher``
   (basic, submitit local, SLURM: preflight, job arrays) as children of one sweep parent run,
   each carrying ``search.trial``; each job reports its dev F1 per evaluation and stops when pruned;
   the sweeper then tells the study each trial's outcome, read from the store;
4. prints the study's trials and best dev F1, writes ``optimization_results.yaml`` (as the plugin
   does), and exits 1 if a trial of this launch failed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from omegaconf import OmegaConf

from bioner_grid import errors, redact, search, spec
from bioner_grid.errors import ConfigError
from bioner_grid.sweep import PARENT_ENV, SweepRun

log = logging.getLogger(__name__)


def _plain(node):
    return OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else dict(node or {})


class OptunaSweeper(Sweeper):
    def __init__(self, n_trials: int, n_jobs: int, direction: str, metric: str, study_name, storage, sampler, pruner,
                 params=None):
        self.n_trials, self.n_jobs, self.direction, self.metric = int(n_trials), int(n_jobs), direction, metric
        self.study_name, self.storage_url = study_name, storage
        self.sampler, self.pruner, self.params = _plain(sampler), _plain(pruner), _plain(params)
        self.config = self.launcher = self.hydra_context = None
        self.job_idx = 0

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.config, self.hydra_context, self.job_idx = config, hydra_context, 0
        self.launcher = Plugins.instance().instantiate_launcher(config=config, hydra_context=hydra_context,
                                                                task_function=task_function)

    # --- before anything is created -----------------------------------------------------

    def _compose(self, overrides: list[str]):
        """A trial's job config, as the launcher composes it; a compose failure (a key that does not
        exist) as the one-line ``ConfigError`` of ``spec.compose_error``."""
        try:
            return self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        except Exception as e:
            error = spec.compose_error(e)
            if error is None:
                raise
            raise error from None

    def _check(self, arguments: list[str]):
        """(space, fixed overrides, probe config) or ``ConfigError`` (exit 2): nothing exists yet."""
        problems = search.settings_problems(self.metric, self.direction, self.n_trials, self.n_jobs, self.sampler,
                                            self.pruner)
        if problems:
            raise ConfigError("; ".join(problems))
        space, fixed = search.parse_space([f"{k}={v}" for k, v in self.params.items()] + list(arguments))
        if not space:
            raise ConfigError("hydra/sweeper=optuna: no search space; give at least one override as choice(...), "
                              "range(...), interval(...) or tag(log, interval(...))")
        cfg = self._compose(fixed + search.probe(space))
        found = spec.problems(cfg)
        if found:
            raise ConfigError("; ".join(found))
        if not cfg.grid.wait:
            raise ConfigError("grid.wait=false: an adaptive search asks each batch from the results of the last, so "
                              "it waits for its trials; leave grid.wait=true")
        from bioner_grid.grid import select_jobs

        # the probe's model and files (grid.preflight) and its tracking store answer, before a study or run exists
        select_jobs([cfg], check=cfg.grid.preflight, skip_finished=False)
        return space, fixed, cfg

    # --- the search --------------------------------------------------------------------------

    def sweep(self, arguments: list[str]) -> None:
        space, fixed, probe = errors.guarded(self._check, list(arguments))
        import optuna
        from optuna.trial import TrialState

        url = self.storage_url or search.default_storage(probe.tracking.uri)
        errors.guarded(search.check_storage, url)
        settings = {"metric": self.metric, "sampler": self.sampler, "pruner": self.pruner}
        name = self.study_name or search.study_name(probe.grid.name, space, fixed, settings)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        redact.rewrite(sweep_dir / "multirun.yaml")
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own lines say what each trial did
        storage = errors.guarded(search.open_storage, url)
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize", load_if_exists=True)
        if "pruner" not in study.user_attrs:  # a new study: its rules, which every job and relaunch reads
            for key, value in settings.items():
                study.set_user_attr(key, value)
        elif study.user_attrs["pruner"] != self.pruner or study.user_attrs["metric"] != self.metric:
            raise errors.fail(ConfigError(f"hydra.sweeper.study_name={name}: the study was made with pruner "
                                          f"{study.user_attrs['pruner']} and metric {study.user_attrs['metric']}; "
                                          "use another study_name for other settings"))
        shown = redact.text(url)
        log.info("study %s in %s: %d trial(s) so far; search space %s", name, shown, len(study.trials),
                 ", ".join(f"{k}: {d}" for k, d in space.items()))

        done = sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)
        pending = [t for t in study.trials if t.state == TrialState.RUNNING]  # left by an interrupted launch
        to_ask = max(0, self.n_trials - done - len(pending))
        todo = len(pending) + to_ask if done < self.n_trials else 0
        failed, trained, reused = [], 0, 0
        parent = None
        with contextlib.ExitStack() as stack:
            while todo > 0:
                batch = [(t.number, t.params) for t in pending[:self.n_jobs]]
                pending = pending[len(batch):]
                # seeded by the trials the study holds: reruns ask the same, a relaunch draws on
                study.sampler = search.make_sampler(self.sampler["kind"], int(self.sampler["seed"]) + len(study.trials))
                while len(batch) < min(self.n_jobs, todo):
                    trial = study.ask(fixed_distributions=space)
                    batch.append((trial.number, trial.params))
                todo -= len(batch)
                jobs = [(n, fixed + [search.override(k, v) for k, v in params.items()]
                         + [f"search.trial={n}", f"search.study={name}", f"search.storage='{url}'"]) for n, params in batch]
                configs = {n: self._compose(o) for n, o in jobs}
                finished = self._finished(configs)
                for n in finished:  # already trained: its dev F1 from the store, nothing runs
                    self._tell(study, storage, n, finished[n], reported=False, reused=True, failed=failed)
                    reused += 1
                launch = [(n, o) for n, o in jobs if n not in finished]
                if launch:
                    if parent is None:
                        parent = stack.enter_context(self._parent(probe, space))
                    trained += len(launch)
                    log.info("trials %s: launching %d job(s)", ", ".join(str(n) for n, _ in launch), len(launch))
                    self._launch([o for _, o in launch])
                    runs = self._runs({n: configs[n] for n, _ in launch})
                    for n, _ in launch:
                        self._tell(study, storage, n, runs.get(n), reported=True, reused=False, failed=failed)
            if parent is not None:
                parent.counts.update({"jobs_launched": trained, "jobs_skipped": reused, "jobs_planned": trained + reused})
                parent.store.set_tags(parent.run_id, {"study": name, "search": "optuna",
                                                      **{k: str(v) for k, v in parent.counts.items()}})
        self._summary(study, name, shown, sweep_dir, trained, reused)
        if failed:
            print(f"search: {len(failed)} trial(s) of this launch failed ({', '.join(map(str, failed))}); the same "
                  "command runs them again as new trials", file=sys.stderr, flush=True)
            sys.exit(1)

    def _finished(self, configs: dict) -> dict:
        """The trials whose configuration the store holds FINISHED (``identity.decide``, skip-finished
        and ``train.force`` included): trial number -> that run. The launcher's own rule and look-up
        (``grid.decisions`` over one search per store, ``grid.store_runs``)."""
        from bioner_grid.grid import decisions, store_runs
        from bioner_grid.store import RunStore

        out = {}
        if not self.config.grid.skip_finished:
            return out
        numbers, cfgs = list(configs), list(configs.values())
        found = store_runs(cfgs)
        for n, cfg, decision in zip(numbers, cfgs, decisions(cfgs, runs=found)):
            if decision.action == "finished":
                runs = found[(cfg.tracking.uri, cfg.tracking.experiment)]
                out[n] = (RunStore.from_config(cfg.tracking), next(r for r in runs if r.info.run_id == decision.run_id))
        return out

    def _runs(self, configs: dict) -> dict:
        """Trial number -> (store, its configuration's newest FINISHED run, else its newest run)."""
        from bioner_grid import identity
        from bioner_grid.store import RunStore

        out = {}
        for n, cfg in configs.items():
            store = RunStore.from_config(cfg.tracking)
            runs = store.runs_with_key(identity.run_key(cfg))
            run = next((r for r in runs if r.info.status == "FINISHED"), runs[0] if runs else None)
            out[n] = (store, run)
        return out

    def _tell(self, study, storage, number: int, found, reported: bool, reused: bool, failed: list) -> None:
        from optuna.trial import TrialState

        store, run = found if found else (None, None)
        state, value, curve = search.outcome(store, run, self.metric) if run is not None else (TrialState.FAIL, None, [])
        search.tell(study, storage, number, state, value, curve, reported, run.info.run_id if run else None, reused)
        what = {TrialState.COMPLETE: f"COMPLETE, {self.metric} {value:.4f}" if value is not None else "COMPLETE",
                TrialState.PRUNED: "PRUNED", TrialState.FAIL: "FAILED"}[state]
        log.info("trial %d: %s%s%s", number, what, " (reused FINISHED run, nothing trained)" if reused else "",
                 f", run {run.info.run_id}" if run else "")
        if state == TrialState.FAIL:
            failed.append(number)

    def _parent(self, probe, space):
        """The sweep's parent run, opened at the first launch (the launcher sees ``PARENT_ENV`` and
        opens none of its own, so every trial's run is a child of this one)."""
        assert not os.environ.get(PARENT_ENV)
        return SweepRun(probe.tracking, probe.grid.name, self.n_trials, 0, 0, self.n_trials, True, search.varying(space))

    def _launch(self, overrides: list[list[str]]) -> None:
        """Run one batch through ``hydra/launcher``. A batch in which jobs failed (the basic
        launcher then exits 1 after running the rest) is told FAIL trial by trial; bad input and
        store faults (``JobFailed``, exit 2 or 1) stop the search."""
        try:
            self.launcher.launch([tuple(o) for o in overrides], initial_job_idx=self.job_idx)
        except errors.JobFailed:
            raise
        except SystemExit as e:
            if e.code != 1:
                raise
        self.job_idx += len(overrides)

    def _summary(self, study, name: str, shown: str, sweep_dir: Path, trained: int, reused: int) -> None:
        from optuna.trial import TrialState

        states = [t.state for t in study.trials]
        count = {s: states.count(s) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
        lines = [f"study {name} ({shown}): {len(states)} trial(s): {count[TrialState.COMPLETE]} complete, "
                 f"{count[TrialState.PRUNED]} pruned, {count[TrialState.FAIL]} failed; this launch trained {trained}, "
                 f"reused {reused} FINISHED run(s)"]
        results = {"name": "optuna", "study": name, "storage": shown, "metric": self.metric}
        complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
        if complete:
            best = study.best_trial
            params = " ".join(search.override(k, v) for k, v in best.params.items())
            lines.append(f"best {self.metric} {100 * best.value:.2f} at trial {best.number} "
                         f"(run {best.user_attrs.get('run_id')}): {params}")
            results.update({"best_params": dict(best.params), "best_value": float(best.value),
                            "best_trial": best.number, "best_run_id": best.user_attrs.get("run_id")})
        print("\n".join(lines), flush=True)
        OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")
