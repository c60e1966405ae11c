"""Decide whether torch.compile pays for itself in a run's budget, from the compile time and
speed-up that earlier runs of the same shape measured on this machine (or, before any run has,
from the figures in BENCHMARKS.md); each compiled run records what it measured."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from budgetlm.machine.cache import read_measurements, write_measurement
from budgetlm.machine.fingerprint import settings_key
from budgetlm.model.config import ModelConfig

GAIN_MARGIN = 0.05
"""Compile only when it is expected to buy at least this share more steps."""


@dataclass(frozen=True)
class CompileCost:
    """What compiling a model costs and buys on this machine."""

    compile_seconds: float
    """One-off: the first steps' time above a typical step's."""
    speedup: float
    """Eager step time over compiled step time."""
    measured: bool = False


PRIOR = CompileCost(compile_seconds=30.0, speedup=1.2)
"""Before a run has measured it: compiling took 15-30 s on a CPU and gave 1.26x the tokens of a
2-minute nano run (BENCHMARKS.md)."""


def compile_pays(budget_seconds: float, cost: CompileCost) -> bool:
    """Whether `budget_seconds` of compiled training (less the compile time) does more than
    GAIN_MARGIN more steps than the same budget eager."""
    compiled = (budget_seconds - cost.compile_seconds) * cost.speedup
    return compiled > (1 + GAIN_MARGIN) * budget_seconds


def decide_compile(
    setting: bool | None, budget_seconds: float | None, cost: CompileCost
) -> tuple[bool, str]:
    """train.compile as set, or for auto (None): on when it pays within a time budget; and why."""
    if setting is not None:
        return setting, "train.compile"
    if budget_seconds is None:
        return False, "auto: off for budgets that are not times"
    source = "measured here" if cost.measured else "prior estimate"
    figures = f"{cost.compile_seconds:.0f} s to compile, {cost.speedup:.2f}x faster; {source}"
    if compile_pays(budget_seconds, cost):
        return True, f"auto: pays within the budget ({figures})"
    return False, f"auto: would not pay within the budget ({figures})"


def compile_cost(
    model: ModelConfig, micro_batch_size: int, precision: str, device: torch.device,
    cache_file: Path | None,
) -> CompileCost:  # fmt: skip
    """The cost an earlier run measured for this setting on this machine, else PRIOR."""
    found = read_measurements(cache_file).get(_key(model, micro_batch_size, precision, device))
    if found is None:
        return PRIOR
    try:
        return CompileCost(float(found["compile_seconds"]), float(found["speedup"]), True)
    except (KeyError, TypeError, ValueError):
        return PRIOR


def measured_cost(
    step_seconds: list[float], eager_step_seconds: float, skip: int = 2
) -> CompileCost | None:
    """What a compiled run's step times say: the first `skip` steps' excess over a typical
    later step (the compilation), and the eager time over that typical step; None with too few
    steps to tell."""
    later = sorted(step_seconds[skip:])
    if len(later) < 3 or eager_step_seconds <= 0:
        return None
    typical = later[len(later) // 2]
    compile_seconds = max(0.0, sum(step_seconds[:skip]) - skip * typical)
    return CompileCost(compile_seconds, eager_step_seconds / typical, True)


def record_compile_cost(
    model: ModelConfig, micro_batch_size: int, precision: str, device: torch.device,
    cache_file: Path | None, cost: CompileCost,
) -> None:  # fmt: skip
    """Keep a compiled run's measurement for the next decision on this machine."""
    value = {k: v for k, v in dataclasses.asdict(cost).items() if k != "measured"}
    write_measurement(cache_file, _key(model, micro_batch_size, precision, device), value)


def _key(model: ModelConfig, micro_batch_size: int, precision: str, device: torch.device) -> str:
    setting = {
        "compile": model.key_fields(),
        "micro_batch_size": micro_batch_size,
        "precision": precision,
    }
    return settings_key(setting, device)
