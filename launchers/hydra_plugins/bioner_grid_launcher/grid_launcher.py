"""Hydra launchers for bioner-grid sweeps.

They are Hydra's own launchers (basic; submitit local and SLURM) with three additions before
anything is started, all driven by the top-level ``grid`` config:
- ``grid.preflight``: every model resolves offline and every dataset file exists, else nothing is
  launched and every missing thing is listed;
- ``grid.skip_finished``: configurations whose run key is FINISHED in the tracking store are not
  launched again (the log says how many were skipped);
- submitit only: jobs are grouped by their model's ``resources`` (memory, time, GPUs), one SLURM
  job array per group; ``grid.wait=false`` submits and returns without waiting for results
  (read them from MLflow);
- SLURM only: a sweep asking for GPUs on a partition without GPU GRES stops before sbatch.
Each launch is one MLflow parent run with the jobs as its children (``bioner_grid.sweep``).
A preflight failure prints its list and exits 2, as bad input to a single run does.

Requeue of a preempted or timed-out SLURM job is submitit's (the launcher resubmits itself with the
same arguments); the job then resumes from its last checkpoint (``bioner_grid.pipeline``).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Sequence

from hydra._internal.core_plugins.basic_launcher import BasicLauncher
from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import LocalLauncher, SlurmLauncher
from omegaconf import OmegaConf

log = logging.getLogger(__name__)


def create_experiments(configs) -> None:
    """Create each tracking experiment once, here, before the jobs fan out (not by racing jobs)."""
    from bioner_grid import tracking

    for tcfg in {(c.tracking.uri, c.tracking.experiment): c.tracking for c in configs}.values():
        tracking.setup(tcfg)


def fail(message: str) -> None:
    """Bad input to a sweep: the message on stderr and exit 2 (no traceback), before anything starts."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


class GridLauncherMixin:
    def _job_configs(self, job_overrides):
        return [self.hydra_context.config_loader.load_sweep_config(self.config, list(o)) for o in job_overrides]

    def _select(self, job_overrides: Sequence[Sequence[str]]):
        """(overrides, config) of the jobs to launch, after preflight and skip-finished."""
        from bioner_grid.grid import PreflightError, select_jobs

        grid = self.config.get("grid") or {}
        configs = self._job_configs(job_overrides)
        counts: dict = {}
        try:
            todo = select_jobs(configs, check=grid.get("preflight", True), skip_finished=grid.get("skip_finished", True),
                               counts=counts)
        except PreflightError as e:
            fail(str(e))
        self._sweep = (configs, counts, len(todo))
        return [(list(job_overrides[i]), configs[i]) for i in todo]

    def _sweep_run(self):
        """The MLflow parent run of this launch (``bioner_grid.sweep``), around the jobs."""
        from bioner_grid.sweep import SweepRun, varying_keys

        configs, counts, launched = self._sweep
        if not configs or not launched:
            return contextlib.nullcontext()
        grid = self.config.get("grid") or {}
        wait = grid.get("wait", True) if isinstance(self, GridSubmititMixin) else True
        return SweepRun(configs[0].tracking, str(grid.get("name", "adhoc")), len(configs), counts.get("FINISHED", 0),
                        counts.get("IN FLIGHT", 0), launched, wait, varying_keys(configs))


class GridBasicLauncher(GridLauncherMixin, BasicLauncher):
    """Hydra's basic launcher (one job after another, in this process)."""

    def launch(self, job_overrides, initial_job_idx):
        jobs = self._select(job_overrides)
        if not jobs:
            return []
        create_experiments(cfg for _, cfg in jobs)
        with self._sweep_run():
            return super().launch([o for o, _ in jobs], initial_job_idx)


@contextlib.contextmanager
def _submitted_only():
    """Make submitit's ``Job.results`` return at once: jobs are submitted, results come from MLflow."""
    import submitit

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

    def launch(self, job_overrides, initial_job_idx):
        jobs = self._select(job_overrides)
        groups: dict[str, list] = {}
        for overrides, cfg in jobs:  # one job array per distinct resource request
            resources = cfg.model.get("resources")
            resources = OmegaConf.to_container(resources, resolve=True) if resources else {}
            groups.setdefault(repr(sorted(resources.items())), []).append((overrides, resources))
        base, results, idx = dict(self.params), [], initial_job_idx
        for members in groups.values():
            self._check_resources({**base, **members[0][1]})
        wait = (self.config.get("grid") or {}).get("wait", True)
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
        from bioner_grid.grid import gpu_problem

        problem = gpu_problem(params.get("partition"), int(params.get("gpus_per_node") or 0))
        if problem:
            fail(problem)


class GridSubmititLocalLauncher(GridSubmititMixin, LocalLauncher):
    """submitit local launcher: jobs as local processes (for trying a sweep without a cluster)."""
