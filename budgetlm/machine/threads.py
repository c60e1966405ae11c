"""Intra-op threads from the cores this process may use, shared out between the budgetlm
processes on the machine: processes that oversubscribe the cores were measured 10-50x slower
than ones that share them out."""

from __future__ import annotations

import os

import torch

PROCESSES_ENV = "BUDGETLM_PROCESSES"
"""Set by a parent that runs several budgetlm processes at once on this machine (proxy pools,
sweeps): how many share its cores. torchrun's LOCAL_WORLD_SIZE counts as well."""


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a container's or taskset's share)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def processes_sharing() -> int:
    """How many budgetlm processes share this machine's cores, this one included."""
    local = _positive(os.environ.get("LOCAL_WORLD_SIZE"))
    pool = _positive(os.environ.get(PROCESSES_ENV))
    return local * pool


def threads_per_process(cores: int, processes: int) -> int:
    """An equal share of the cores, at least one thread."""
    return max(1, cores // max(1, processes))


def fit_threads() -> tuple[int, str]:
    """Set torch's intra-op threads to this process's share of its cores; the thread count and a
    line saying how it was chosen."""
    cores, processes = usable_cores(), processes_sharing()
    threads = threads_per_process(cores, processes)
    torch.set_num_threads(threads)
    if processes > 1:
        return threads, f"{threads} threads: {cores} cores shared by {processes} processes"
    return threads, f"{threads} threads ({cores} cores usable)"


def _positive(text: str | None) -> int:
    try:
        return max(1, int(text)) if text else 1
    except ValueError:
        return 1
