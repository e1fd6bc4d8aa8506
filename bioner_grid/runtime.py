"""Where and how a model runs: the device, the numeric precision and the CPU threads, for training
and for tagging alike (``train``, ``tag``, ``export``'s MLflow model and the pipeline call this module
and nothing else for them).

- device: ``auto`` is CUDA when present, else the CPU;
- precision: ``auto`` is bf16 autocast where the hardware computes bf16 natively, else fp32; a
  model is tagged in the precision its run was scored in, where the hardware has it;
- threads: at most the CPUs SLURM gave the job.
"""

from __future__ import annotations

import os

import torch

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def pick_device(requested: str = "auto") -> str:
    """``train.device`` / ``tag.device``: ``auto`` is ``cuda`` when a CUDA device is present, else ``cpu``."""
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device=cuda but no CUDA device is available")
    return requested


def limit_threads() -> int:
    """At most the CPUs SLURM gave the job (``SLURM_CPUS_PER_TASK``) as torch threads: torch
    starts one per core of the node, and two jobs sharing a node without CPU binding then
    oversubscribe it (OpenMP threads waiting on descheduled ones ran a study job here 7x slower).
    Returns the number of threads."""
    given = os.environ.get("SLURM_CPUS_PER_TASK", "")
    if given.isdigit() and 0 < int(given) < torch.get_num_threads():
        torch.set_num_threads(int(given))
    return torch.get_num_threads()


def bf16_native(device: str) -> bool:
    """Does the hardware compute bf16 natively: a CUDA GPU with bf16 (Ampere on), or a CPU with
    AVX512-BF16 or AMX (oneDNN's own check)?"""
    if device == "cuda":
        return torch.cuda.is_bf16_supported()
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return bool(torch.backends.mkldnn.is_available() and check is not None and check())


def pick_precision(requested: str, device: str) -> str:
    """``train.precision``: ``auto`` is bf16 autocast where the hardware computes bf16 natively,
    else fp32, chosen at run time like the device; ``bf16`` forces autocast (slow where emulated);
    ``fp16`` needs CUDA. On this project's CPU, bf16 trains minilm 2.1x faster (bench/throughput.py)."""
    if requested not in PRECISIONS:
        raise ValueError(f"train.precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    if requested == "auto":
        return "bf16" if bf16_native(device) else "fp32"
    if requested == "fp16" and device != "cuda":
        raise ValueError("train.precision=fp16 needs CUDA; use bf16 or fp32 on CPU")
    return requested


def inference_precision(trained: str | None, device: str) -> str:
    """The precision to tag in: the one the run was trained and scored in (``bf16``), so tagging
    reproduces the run's scores, where this hardware has it natively; fp32 otherwise (emulated bf16
    is slower than fp32 and a model saved before precisions were recorded was fp32)."""
    return "bf16" if trained == "bf16" and bf16_native(device) else "fp32"


def for_inference(requested_device: str, trained_precision: str | None) -> tuple[str, str]:
    """(device, precision) to tag with on this machine, torch threads limited as for training (a
    tagging job on SLURM, like a training job, runs no more threads than its CPUs)."""
    device = pick_device(requested_device)
    limit_threads()
    return device, inference_precision(trained_precision, device)

