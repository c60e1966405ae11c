"""Choose the training precision by measurement: the model's own step timed in fp32 and in
bf16 on the device the run uses, the faster taken. On CPUs the answer differs by an order of
magnitude either way: AMX and AVX512-BF16 make bf16 matmuls several times faster than fp32,
while on AVX2-only CPUs bf16 is emulated and ~90x slower (BENCHMARKS.md)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch

from budgetlm.errors import UserError
from budgetlm.machine.throughput import Throughput, measure_throughput
from budgetlm.model.config import ModelConfig
from budgetlm.train.config import PRECISIONS, TrainConfig

BF16_MARGIN = 0.05
"""bf16 must be this much faster to be chosen: at equal speed fp32 is the more exact."""
GIVE_UP_FACTOR = 4.0
"""A bf16 first step slower than this many fp32 steps (plus a second) ends its measurement."""


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a run uses and why."""

    precision: str
    reason: str
    """'set' (by the user), 'cuda' (from the GPU's capability) or 'measured'."""
    fp32: Throughput | None = None
    bf16: Throughput | None = None

    def describe(self) -> str:
        """'precision bf16 (measured: bf16 0.021 s/step, fp32 0.118 s/step)'."""
        if self.reason == "set":
            return f"precision {self.precision} (train.precision)"
        if self.reason == "cuda":
            why = "supports" if self.precision == "bf16" else "does not support"
            return f"precision {self.precision} (this GPU {why} bf16)"
        assert self.fp32 is not None and self.bf16 is not None
        bf16 = f"{self.bf16.seconds_per_step:.3g} s/step"
        if self.bf16.steps_timed == 0:
            bf16 = f"over {bf16}, given up"
        cached = ", cached" if self.fp32.cached and self.bf16.cached else ""
        return (
            f"precision {self.precision} (measured{cached}: bf16 {bf16}, "
            f"fp32 {self.fp32.seconds_per_step:.3g} s/step)"
        )

    @property
    def measured(self) -> Throughput | None:
        """The measurement of the chosen precision, when there is one."""
        return self.bf16 if self.precision == "bf16" else self.fp32


def faster_precision(fp32_seconds: float, bf16_seconds: float) -> str:
    """'bf16' when its step is more than BF16_MARGIN faster than fp32's, else 'fp32'."""
    return "bf16" if bf16_seconds < (1 - BF16_MARGIN) * fp32_seconds else "fp32"


def choose_precision(
    model: ModelConfig,
    train: TrainConfig,
    device: torch.device,
    cache_file: Path | None = None,
    seconds: float = 1.0,
) -> PrecisionChoice:
    """train.precision when the user set it; for 'auto', bf16 on a CUDA GPU that supports it,
    else the faster of fp32 and bf16 for this model and micro-batch, each timed for about
    `seconds` (or read from `cache_file`)."""
    if train.precision not in PRECISIONS:
        raise UserError(
            f"train.precision must be one of {', '.join(PRECISIONS)}, got '{train.precision}'"
        )
    if train.precision != "auto":
        return PrecisionChoice(train.precision, "set")
    if device.type == "cuda":
        supported = torch.cuda.is_bf16_supported()
        return PrecisionChoice("bf16" if supported else "fp32", "cuda")
    fp32 = measure_throughput(
        model, dataclasses.replace(train, precision="fp32"), device, seconds, cache_file=cache_file
    )
    bf16 = measure_throughput(
        model,
        dataclasses.replace(train, precision="bf16"),
        device,
        seconds,
        cache_file=cache_file,
        give_up_after=GIVE_UP_FACTOR * fp32.seconds_per_step + 1.0,
    )
    chosen = faster_precision(fp32.seconds_per_step, bf16.seconds_per_step)
    return PrecisionChoice(chosen, "measured", fp32, bf16)
