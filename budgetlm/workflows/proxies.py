"""Short proxy runs for the workflows that learn from many small trainings (the mixture
search's trials, the scaling sweep's grid): one way to train them, in a pool of worker
processes each with its share of the CPU threads, and one reuse rule. A run whose
metrics.jsonl has its end record is read, not trained again; an unfinished one is started over
(proxies keep no intermediate checkpoints, they are short). Whether a finished run was trained
as wanted is decided by `differences` between the saved and the wanted config.

Only local processes: there is no torch.distributed or Ray backend for spreading proxies over
a cluster.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import multiprocessing
import os
import shutil
from pathlib import Path
from typing import Any

from budgetlm.config import RunConfig
from budgetlm.io import Log
from budgetlm.machine.threads import (
    PROCESSES_ENV,
    fit_threads,
    processes_sharing,
    threads_per_process,
    usable_cores,
)
from budgetlm.run.directory import run_dir_of
from budgetlm.run.records import finished_record
from budgetlm.workflows.pretrain import pretrain


def differences(saved: Any, wanted: Any, where: str = "") -> list[str]:
    """Dotted keys whose values differ between two config trees (dicts of dicts). Keys only one
    side has are skipped: a newer budgetlm may have added config keys since a run was saved,
    and a key the saved run lacks cannot tell it apart."""
    if isinstance(saved, dict) and isinstance(wanted, dict):
        return [
            x
            for k in sorted(set(saved) & set(wanted))
            for x in differences(saved[k], wanted[k], f"{where}.{k}" if where else k)
        ]
    return [] if saved == wanted else [where]


def worker_threads(workers: int) -> int:
    """Torch threads per worker: this process's cores shared out (at least one each)."""
    return threads_per_process(usable_cores(), workers * processes_sharing())


def run_proxies(configs: list[RunConfig], workers: int, log: Log) -> dict[str, dict[str, Any]]:
    """Train every config not finished yet (`workers` at a time, in-process when 1); returns
    each run's end record by run name. Worker output goes to RUN_DIR.log beside the run."""
    results: dict[str, dict[str, Any]] = {}
    pending = []
    for config in configs:
        run_dir = run_dir_of(config)
        end = finished_record(run_dir)
        if end is not None:
            results[str(config.name)] = end
            continue
        if run_dir.exists():  # killed before its end: nothing to resume from, start over
            shutil.rmtree(run_dir)
        pending.append(config)
    if results:
        log(f"{len(results)} of {len(configs)} proxy runs already finished; not training them")
    done = len(results)
    if not pending:
        return results
    if workers == 1:
        for config in pending:
            results[str(config.name)] = train_proxy(config, str(run_dir_of(config)) + ".log")
            done += 1
            _report(config, results[str(config.name)], done, len(configs), log)
        return results
    threads = worker_threads(workers)
    log(f"training {len(pending)} proxies in {workers} processes x {threads} threads")
    context = multiprocessing.get_context("spawn")  # fork after torch threads is unsafe
    with concurrent.futures.ProcessPoolExecutor(
        workers,
        mp_context=context,
        initializer=_init_worker,
        initargs=(workers * processes_sharing(),),
    ) as pool:
        futures = {pool.submit(train_proxy, c, str(run_dir_of(c)) + ".log"): c for c in pending}
        try:
            for future in concurrent.futures.as_completed(futures):
                config = futures[future]
                results[str(config.name)] = future.result()
                done += 1
                _report(config, results[str(config.name)], done, len(configs), log)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return results


def train_proxy(config: RunConfig, log_file: str) -> dict[str, Any]:
    """Pre-train one proxy run and return its end record; its output goes to `log_file`."""
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    with (
        open(log_file, "w", encoding="utf-8") as out,
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(out),
    ):
        pretrain(config, log=print)
    return finished_record(run_dir_of(config)) or {}


def _init_worker(processes: int) -> None:
    """Each worker's runs take their share of the cores (machine/threads.py reads this)."""
    os.environ[PROCESSES_ENV] = str(processes)
    fit_threads()


def _report(config: RunConfig, end: dict[str, Any], done: int, total: int, log: Log) -> None:
    losses = ", ".join(f"{d} {v:.3f}" for d, v in end.get("val_loss", {}).items())
    log(f"proxy {done}/{total} {config.name}: {losses}")
