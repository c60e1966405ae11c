"""Learning-rate schedules as functions of (step, planned total steps).

The total is a plan that the budget may revise while training runs; each schedule says until
when a revision is harmless (`can_replan`), so a time budget can be met exactly."""

from __future__ import annotations

import math
from dataclasses import dataclass

from budgetlm.errors import UserError, closest


@dataclass(frozen=True)
class WarmupStableDecay:
    """Linear warmup, constant plateau, then decay to min_lr_ratio over the last steps.

    From "MiniCPM: Unveiling the Potential of Small Language Models" (Hu et al., 2024) and
    "Scaling Laws and Compute-Optimal Training Beyond Fixed Training Durations" (Hägele et al.,
    2024): the plateau does not depend on the total, so the total can be re-planned until the
    decay starts, and the plateau's last checkpoint can be continued without re-warming.
    """

    warmup_fraction: float = 0.05
    decay_fraction: float = 0.2
    min_lr_ratio: float = 0.0

    def warmup_steps(self, total: int) -> int:
        return max(1, round(self.warmup_fraction * total))

    def decay_start(self, total: int) -> int:
        return max(self.warmup_steps(total), total - max(1, round(self.decay_fraction * total)))

    def lr_factor(self, step: int, total: int) -> float:
        """Multiplier of the peak LR for the update with 0-based index `step`."""
        warmup, start = self.warmup_steps(total), self.decay_start(total)
        if step < warmup:
            return (step + 1) / warmup
        if step < start:
            return 1.0
        progress = min(1.0, (step - start + 1) / max(1, total - start))
        return 1.0 - (1.0 - self.min_lr_ratio) * progress

    def can_replan(self, step: int, total: int) -> bool:
        return step < self.decay_start(total)


@dataclass(frozen=True)
class Cosine:
    """Linear warmup then cosine decay to min_lr_ratio at the last step (Loshchilov & Hutter,
    "SGDR: Stochastic Gradient Descent with Warm Restarts"); the total can only change during
    warmup, because every later LR depends on it."""

    warmup_fraction: float = 0.05
    min_lr_ratio: float = 0.0

    def warmup_steps(self, total: int) -> int:
        return max(1, round(self.warmup_fraction * total))

    def decay_start(self, total: int) -> int:
        return self.warmup_steps(total)

    def lr_factor(self, step: int, total: int) -> float:
        warmup = self.warmup_steps(total)
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup + 1) / max(1, total - warmup))
        return self.min_lr_ratio + (1 - self.min_lr_ratio) * 0.5 * (
            1 + math.cos(math.pi * progress)
        )

    def can_replan(self, step: int, total: int) -> bool:
        return step < self.warmup_steps(total)


SCHEDULES = ("wsd", "cosine")


def build_schedule(
    name: str, warmup_fraction: float, decay_fraction: float, min_lr_ratio: float
) -> WarmupStableDecay | Cosine:
    """The schedule named in the config (`train.schedule`)."""
    if not 0 <= warmup_fraction < 1 or not 0 < decay_fraction <= 1 or not 0 <= min_lr_ratio <= 1:
        raise UserError(
            "train.warmup_fraction must be in [0, 1), train.decay_fraction in (0, 1] and "
            "train.min_lr_ratio in [0, 1]"
        )
    if name == "wsd":
        return WarmupStableDecay(warmup_fraction, decay_fraction, min_lr_ratio)
    if name == "cosine":
        return Cosine(warmup_fraction, min_lr_ratio)
    raise UserError(
        f"unknown train.schedule '{name}'{closest(name, SCHEDULES)}; use one of {SCHEDULES}"
    )
