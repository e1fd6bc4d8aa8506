"""Hydra launchers for bioner-grid sweeps.

They are Hydra's own launchers (basic; submitit local and SLURM) with these additions, all driven
by the top-level ``grid`` config:
- ``grid.preflight``: every model resolves offline and every dataset file exists, else nothing is
  launched and every missing thing is listed;
- ``grid.skip_finished``: configurations whose run key is FINISHED in the tracking store are not
  launched again (the log says how many were skipped);
- submitit only: jobs are grouped by their model's ``resources`` (memory, time, GPUs), one SLURM
  job array per group; ``grid.wait=false`` submits and returns without waiting for results
  (read them from MLflow);
- basic launcher: ``grid.on_error: continue`` (default) runs the remaining jobs after one fails,
  ``stop`` stops at the first failure; either way the sweep ends with a summary of the failed jobs
  and their one-line reasons, and exits 1.
- SLURM only: a sweep asking for GPUs on a partition without GPU GRES stops before sbatch.
Each launch is one MLflow parent run with the jobs as its children (``bioner_grid.sweep``).
A preflight failure (every job's config checked by ``spec.problems``, the function the job runs;
then its model and files) prints every problem in one line and exits 2, as bad input to a single
run does; so does a job whose overrides do not compose (``train.lrr=1e-4,3e-4``, refused by Hydra's
sweeper, which composes every job of the batch first): nothing is launched or submitted.

Requeue of a preempted or timed-out SLURM job is submitit's (the launcher resubmits itself with the
same arguments); the job then resumes from its last checkpoint (``bioner_grid.pipeline``).

Hydra imports this module whenever it discovers plugins (any Hydra app in the environment), so
``bioner_grid.store`` (mlflow, ~1.3 s) is imported only where a launch uses the store.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Sequence

import submitit
from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra._internal.grammar.utils import escape_special_characters
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus, configure_log, filter_overrides, run_job, setup_globals
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher, SlurmLauncher
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict, read_write

from bioner_grid import cli, compose, console, errors, redact, spec  # cli: the ${bioner_grid_groups:} of hydra.help
from bioner_grid.grid import gpu_problem, select_jobs
from bioner_grid.sweep import PARENT_ENV, SweepRun, varying_keys

spec.register()  # ${safe_name:} in hydra.sweep.subdir is resolved in the job's process too

log = logging.getLogger(__name__)


def create_experiments(configs) -> None:
    """Create each tracking experiment once, here, before the jobs fan out (not by racing jobs)."""
    from bioner_grid.store import RunStore

    for tcfg in {(c.tracking.uri, c.tracking.experiment): c.tracking for c in configs}.values():
        RunStore.from_config(tcfg).experiment_id()


def _is_http(uri) -> bool:
    return isinstance(uri, str) and uri.startswith(("http://", "https://"))


def _replace_strings(node, pairs: dict[str, str]) -> None:
    """Every string leaf of a config (interpolations left unresolved) with each key of ``pairs``
    replaced by its value, in place."""
    for key in (node.keys() if isinstance(node, DictConfig) else range(len(node))):
        child = node._get_node(key)
        if isinstance(child, (DictConfig, ListConfig)) and not child._is_interpolation():
            if not child._is_none() and not child._is_missing():
                _replace_strings(child, pairs)
            continue
        old = child._value()
        if not isinstance(old, str):
            continue
        new = old
        for secret, clean in pairs.items():
            new = new.replace(secret, clean)
        if new != old:
            with read_write(node), open_dict(node):
                node[key] = new


def move_credentials(config, job_overrides: Sequence[Sequence[str]]) -> list[list[str]]:
    """Credentials leave a sweep here, at the start of a launch, before anything is written, printed
    or pickled: ``user:pass@`` of an http(s) ``tracking.uri`` moves to MLflow's environment variables
    (``tracking.split_credentials``; every job inherits them, and variables already holding other
    credentials are refused, exit 2), and every job gets the clean URI, in its overrides (its
    ``.hydra/*.yaml`` and submitit's pickles of its arguments) and in the sweep's config (``config``,
    changed in place: ``multirun.yaml``, the launcher and Hydra's state that submitit pickles, which
    each job recomposes its config from). Returns the jobs' overrides."""
    from bioner_grid import tracking

    multirun = Path(str(config.hydra.sweep.dir)) / "multirun.yaml"  # the sweeper saved it before the launch

    def clean(uri: str) -> str:
        try:
            return tracking.split_credentials(uri)
        except errors.BionerError as e:
            redact.rewrite(multirun)  # refused: nothing launched, nothing kept
            raise errors.fail(e) from None

    parser = OverridesParser.create()
    master = OmegaConf.select(config, "tracking.uri", default=None)  # resolved: a file or ${oc.env:} may hold it
    moved: dict[str, str] = {}  # each form of a URI with credentials -> the same form without
    clean_uris: set[str] = set()

    def sets_uri(line: str) -> bool:
        return "tracking.uri" in line and parser.parse_override(line).key_or_group == "tracking.uri"

    def moved_uri(line: str) -> str | None:
        """The clean URI of a ``tracking.uri=`` override carrying credentials (else None); every form
        of it (as typed, as Hydra escapes it) goes into ``moved``."""
        value = parser.parse_override(line).value() if sets_uri(line) else None
        if not _is_http(value) or clean(value) == value:
            return None
        moved[value] = clean(value)
        clean_uris.add(clean(value))
        moved[escape_special_characters(value)] = escape_special_characters(clean(value))
        typed = line.split("=", 1)[1]
        if typed != value:  # typed escaped, or quoted (override_dirname holds it so)
            moved[typed] = escape_special_characters(clean(value))
        return clean(value)

    if _is_http(master) and clean(master) != master:
        moved[master] = clean(master)
        clean_uris.add(clean(master))
    for line in OmegaConf.to_container(config.hydra.overrides.task):  # as typed (unresolved: ${oc.env:} stays)
        moved_uri(line)
    jobs = []
    for overrides in job_overrides:
        overrides, given = list(overrides), False
        for i, line in enumerate(overrides):
            if not sets_uri(line):
                continue
            given, uri = True, moved_uri(line)
            if uri is None and master in moved and not _is_http(parser.parse_override(line).value()):
                uri = moved[master]  # an interpolation (${oc.env:...}) resolving to the sweep's URI
            if uri is not None:
                overrides[i] = f"{line.split('=', 1)[0]}={escape_special_characters(uri)}"
        if not given and master in moved:  # the URI comes from a config file: the job's override wins
            overrides.append(f"tracking.uri={escape_special_characters(moved[master])}")
        jobs.append(overrides)
    if moved:
        # longest first: a typed form may hold the bare URI
        _replace_strings(config, dict(sorted(moved.items(), key=lambda kv: -len(kv[0]))))
        if master in moved:
            with read_write(config.tracking), open_dict(config.tracking):
                config.tracking.uri = moved[master]  # an interpolation resolving to it, too
        HydraConfig.instance().set_config(config)  # submitit pickles Hydra's state with each job
        if multirun.exists():
            OmegaConf.save(config, multirun)
        log.info("tracking.uri: credentials moved to %s; the jobs get %s", " / ".join(tracking.CREDENTIAL_ENV),
                 ", ".join(sorted(clean_uris)))
    return jobs


def fail(message: str) -> None:
    """Bad input to a sweep: the message on stderr (``errors.fail``) and exit 2, before anything starts."""
    raise errors.fail(errors.InputError(message))


class GridLauncherMixin:
    def setup(self, *, hydra_context, task_function, config) -> None:
        super().setup(hydra_context=hydra_context, task_function=task_function, config=config)
        # The sweeper (which sets this launcher up) composes every job to check it, then _select
        # needs the same configs: both through bioner_grid.compose (each file parsed once, the
        # swept groups' nodes reused), the sweeper's configs handed over rather than composed again.
        compose.install(hydra_context.config_loader)

    def _job_configs(self, job_overrides):
        # Hydra's sweeper has composed every job once already (validate_batch_is_legal): overrides
        # that do not compose (train.lrr=1e-4,3e-4) stop the sweep there, as one line (__main__.main).
        # compose.install hands those configs over here.
        return [self.hydra_context.config_loader.load_sweep_config(self.config, list(o)) for o in job_overrides]

    def _select(self, job_overrides: Sequence[Sequence[str]]):
        """(overrides, config) of the jobs to launch, after preflight and skip-finished."""
        grid = self.config.grid
        redact.install_log_filter()
        redact.rewrite(Path(str(self.config.hydra.sweep.dir)) / "multirun.yaml")  # saved by the sweeper, secrets and all
        configs = self._job_configs(job_overrides)
        counts: dict = {}
        # rules and files, then each store answers (one line, exit 1 if not), then skip-finished
        todo = errors.guarded(select_jobs, configs, check=grid.preflight, skip_finished=grid.skip_finished, counts=counts)
        self._sweep = (configs, counts, len(todo))
        return [(list(job_overrides[i]), configs[i]) for i in todo]

    def _sweep_run(self):
        """The MLflow parent run of this launch (``bioner_grid.sweep``), around the jobs."""
        configs, counts, launched = self._sweep
        if not configs or not launched or os.environ.get(PARENT_ENV):  # an adaptive search's parent holds the jobs
            return contextlib.nullcontext()
        grid = self.config.grid
        wait = grid.wait if isinstance(self, GridSubmititMixin) else True
        return SweepRun(configs[0].tracking, grid.name, len(configs), counts.get("FINISHED", 0),
                        counts.get("IN FLIGHT", 0), launched, wait, varying_keys(configs))


class GridBasicLauncher(GridLauncherMixin, BasicLauncher):
    """Hydra's basic launcher (one job after another, in this process), going on past a failed job
    (``grid.on_error``)."""

    def launch(self, job_overrides, initial_job_idx):
        job_overrides = move_credentials(self.config, job_overrides)
        jobs = self._select(job_overrides)
        if not jobs:
            return []
        from bioner_grid import preempt  # transformers (seconds): only where a sweep runs

        create_experiments(cfg for _, cfg in jobs)
        with preempt.between_jobs(), self._sweep_run():  # a signal between two jobs stops the sweep there
            runs, failures, not_run = self._run_all(jobs, initial_job_idx)
        if failures:
            self._fail(failures, len(jobs), self.config.grid.on_error, not_run)
        return runs

    def _run_all(self, jobs, initial_job_idx):
        """Run the jobs one after another: (their JobReturns, one-line failures, jobs not run)."""
        on_error = self.config.grid.on_error
        setup_globals()
        self._configure_log()
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        runs, failures, not_run = [], [], 0
        shared = set.intersection(*(set(o) for o, _ in jobs)) if len(jobs) > 1 else set()
        started = time.monotonic()
        from bioner_grid import preempt

        for n, (overrides, _) in enumerate(jobs):
            preempt.stop_before_next_job(n, len(jobs))  # SIGTERM/SIGINT since the last job: no new one
            idx = initial_job_idx + n
            # `job 3/4  scheme=welt train.lr=0.0003  elapsed 1m02s, about 0m31s left`: what tells it apart
            swept = [o for o in filter_overrides(overrides) if o not in shared]
            log.info(console.job_line(n + 1, len(jobs), started, " ".join(swept)))
            ret, reason = self._run_one(overrides, idx)
            self._configure_log()
            if reason is None:
                runs.append(ret)
                continue
            failures.append(f"#{idx} {' '.join(swept)}: {reason}")
            if on_error == "stop":
                not_run = len(jobs) - n - 1
                break
        return runs, failures, not_run

    def _configure_log(self) -> None:
        configure_log(self.config.hydra.hydra_logging, self.config.hydra.verbose)
        redact.install_log_filter()

    def _run_one(self, overrides, idx) -> tuple[JobReturn | None, str | None]:
        """Run one job; returns (its JobReturn, None) or (None, the one-line reason it failed)."""
        config = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(config):
            config.hydra.job.id = idx
            config.hydra.job.num = idx
        try:
            ret = run_job(hydra_context=self.hydra_context, task_function=self.task_function, config=config,
                          job_dir_key="hydra.sweep.dir", job_subdir_key="hydra.sweep.subdir")
        except errors.JobFailed as e:  # bad input or environment: already printed in one line
            return None, e.reason
        if ret.status == JobStatus.FAILED:  # an unexpected error: keep its traceback in the log
            error = ret._return_value
            log.error("job #%d failed", idx, exc_info=(type(error), error, error.__traceback__))
            return None, redact.text(f"{type(error).__name__}: {errors.one_line(error)}")
        return ret, None

    @staticmethod
    def _fail(failures: list[str], n_jobs: int, on_error: str, not_run: int) -> None:
        """The end-of-sweep summary on stderr, then exit 1."""
        lines = [f"sweep: {len(failures)} of {n_jobs} jobs failed (grid.on_error={on_error}):", *(f"  {f}" for f in failures)]
        if not_run:
            lines.append(f"  stopped at the first failure: {not_run} job(s) not run")
        print("\n".join(lines), file=sys.stderr, flush=True)
        sys.exit(1)


@contextlib.contextmanager
def _submitted_only():
    """Make submitit's ``Job.results`` return at once: jobs are submitted, results come from MLflow."""
    original = submitit.Job.results

    def submitted(job):
        log.info("submitted as SLURM job %s (not waiting; results land in the tracking store)", job.job_id)
        return [JobReturn(status=JobStatus.COMPLETED, _return_value=f"submitted as SLURM job {job.job_id}")]

    submitit.Job.results = submitted
    try:
        yield
    finally:
        submitit.Job.results = original


class GridSubmititMixin(GridLauncherMixin):
    def _check_resources(self, params: dict) -> None:
        """Things the cluster cannot give, found before anything is submitted (SLURM only)."""

    def _check_time(self, jobs, params: dict) -> None:
        """Time limits below the jobs' expected training time, before anything is submitted (SLURM only)."""

    def launch(self, job_overrides, initial_job_idx):
        job_overrides = move_credentials(self.config, job_overrides)
        jobs = self._select(job_overrides)
        compose.uninstall(self.hydra_context.config_loader)  # submitit pickles this launcher and its loader
        groups: dict[str, list] = {}
        for overrides, cfg in jobs:  # one job array per distinct resource request
            resources = cfg.model.get("resources")
            resources = OmegaConf.to_container(resources, resolve=True) if resources else {}
            groups.setdefault(repr(sorted(resources.items())), []).append((overrides, resources))
        base, results, idx = dict(self.params), [], initial_job_idx
        for members in groups.values():
            self._check_resources({**base, **members[0][1]})
        self._check_time(jobs, base)
        wait = self.config.grid.wait
        if not jobs:
            return []
        create_experiments(cfg for _, cfg in jobs)
        try:
            with self._sweep_run():
                for members in groups.values():
                    self.params = {**base, **members[0][1]}
                    log.info("job array of %d with %s", len(members), members[0][1] or "the launcher's resources")
                    with contextlib.nullcontext() if wait else _submitted_only():
                        results += super().launch([o for o, _ in members], idx)
                    idx += len(members)
        finally:
            self.params = base
        return results


class GridSlurmLauncher(GridSubmititMixin, SlurmLauncher):
    """submitit SLURM launcher: sbatch job arrays."""

    def _check_resources(self, params: dict) -> None:
        problem = gpu_problem(params.get("partition"), int(params.get("gpus_per_node") or 0))
        if problem:
            fail(problem)

    def _check_time(self, jobs, params: dict) -> None:
        """A job whose expected training time (``bioner_grid.estimate``, from the store's finished
        runs) exceeds its ``timeout_min`` (the launcher's, or its model's ``resources``) would loop
        through requeues: warned about before anything is submitted, or refused with
        ``grid.on_timeout_below_estimate=fail`` (exit 2)."""
        if not jobs:
            return
        from bioner_grid import estimate
        from bioner_grid.grid import store_runs

        runs = store_runs([cfg for _, cfg in jobs])
        known = {where: estimate.samples(found) for where, found in runs.items()}
        device = "cuda" if int(params.get("gpus_per_node") or 0) > 0 else "cpu"
        over = []
        for overrides, cfg in jobs:
            resources = cfg.model.get("resources")
            limit = (resources.get("timeout_min") if resources else None) or params.get("timeout_min")
            e = estimate.estimate(cfg, known[(cfg.tracking.uri, cfg.tracking.experiment)],
                                  device=device if cfg.train.device == "auto" else None)
            if limit and e.seconds is not None and e.seconds / 60 > float(limit):
                over.append(f"{' '.join(overrides)}: ~{e.seconds / 60:.0f} min > timeout_min={limit}")
        if not over:
            return
        message = (f"hydra.launcher.timeout_min: {len(over)} job(s) expected to train longer than their time limit "
                   f"(estimated from the store's finished runs): " + "; ".join(over))
        if self.config.grid.on_timeout_below_estimate == "fail":
            fail(message + " (grid.on_timeout_below_estimate=fail: nothing submitted)")
        print(redact.text(f"warning: {message} (submitting anyway: grid.on_timeout_below_estimate=warn)"),
              file=sys.stderr, flush=True)


class GridSubmititLocalLauncher(GridSubmititMixin, LocalLauncher):
    """submitit local launcher: jobs as local processes (for trying a sweep without a cluster)."""
