"""Learning-rate schedules as functions of (step, planned total steps).

The total is a plan that the budget may revise while training runs; each schedule says until
when a revision is harmless (`can_replan`), so a time budget can be met exactly. Every schedule
but 'constant' ends at `min_lr_ratio` of the peak on the planned last step, fully annealed.

    wsd       warmup, constant plateau, decay over the last `decay_fraction` (shape: decay_shape)
    cosine    warmup, then cosine decay over all remaining steps
    linear    warmup, then linear decay over all remaining steps
    rewarm    re-warm from `min_lr_ratio` of the peak, then decay over all remaining steps
    constant  warmup, then the peak LR to the end (no decay: for a run continued later)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from budgetlm.errors import UserError, closest


def _linear(progress: float) -> float:
    return 1.0 - progress


def _cosine(progress: float) -> float:
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def _one_minus_sqrt(progress: float) -> float:
    return 1.0 - math.sqrt(progress)


DECAY_SHAPES = {"linear": _linear, "cosine": _cosine, "1-sqrt": _one_minus_sqrt}
"""Share of the decayed range still left at `progress` in [0, 1] of the decay. '1-sqrt' is the
cooldown of Hägele et al., "Scaling Laws and Compute-Optimal Training Beyond Fixed Training
Durations" (2024), which beat a linear cooldown of the same length there."""


@dataclass(frozen=True)
class WarmupStableDecay:
    """Linear warmup, constant plateau, then decay to min_lr_ratio over the last steps.

    From "MiniCPM: Unveiling the Potential of Small Language Models" (Hu et al., 2024) and
    "Scaling Laws and Compute-Optimal Training Beyond Fixed Training Durations" (Hägele et al.,
    2024): the plateau does not depend on the total, so the total can be re-planned until the
    decay starts, and the plateau's last checkpoint can be continued without re-warming.
    `decay_fraction` 1 decays over everything after the warmup (the 'cosine', 'linear' and
    'rewarm' schedules); `warmup_from` is the factor the warmup starts from.
    """

    warmup_fraction: float = 0.05
    decay_fraction: float = 0.2
    min_lr_ratio: float = 0.0
    decay_shape: str = "linear"
    warmup_from: float = 0.0

    def warmup_steps(self, total: int) -> int:
        return max(1, round(self.warmup_fraction * total))

    def decay_start(self, total: int) -> int:
        return max(self.warmup_steps(total), total - max(1, round(self.decay_fraction * total)))

    def lr_factor(self, step: int, total: int) -> float:
        """Multiplier of the peak LR for the update with 0-based index `step`."""
        warmup, start = self.warmup_steps(total), self.decay_start(total)
        if step < warmup:
            return self.warmup_from + (1.0 - self.warmup_from) * (step + 1) / warmup
        if step < start:
            return 1.0
        progress = min(1.0, (step - start + 1) / max(1, total - start))
        left = DECAY_SHAPES[self.decay_shape](progress)
        return self.min_lr_ratio + (1.0 - self.min_lr_ratio) * left

    def can_replan(self, step: int, total: int) -> bool:
        return step < self.decay_start(total)


def cosine(warmup_fraction: float = 0.05, min_lr_ratio: float = 0.0) -> WarmupStableDecay:
    """Linear warmup then cosine decay to min_lr_ratio at the last step (Loshchilov & Hutter,
    "SGDR: Stochastic Gradient Descent with Warm Restarts"); the total can only change during
    warmup, because every later LR depends on it."""
    return WarmupStableDecay(warmup_fraction, 1.0, min_lr_ratio, "cosine")


def linear_to_zero(warmup_fraction: float = 0.05, min_lr_ratio: float = 0.0) -> WarmupStableDecay:
    """Linear warmup then linear decay to min_lr_ratio (0 by default) at the last step: "Straight
    to Zero: Why Linearly Decaying the Learning Rate to Zero Works Best for LLMs" (Bergsma et al.,
    2025) found it beat cosine at compute-optimal and longer runs."""
    return WarmupStableDecay(warmup_fraction, 1.0, min_lr_ratio, "linear")


def rewarm(
    warmup_fraction: float = 0.02, min_lr_ratio: float = 0.0, decay_shape: str = "cosine"
) -> WarmupStableDecay:
    """For continual pre-training of a decayed model: re-warm linearly from min_lr_ratio of the
    peak (where a run decayed to min_lr_ratio ended, so the LR does not jump) to the peak, then
    re-decay over the rest ("Continual Pre-Training of Large Language Models: How to (re)warm your
    model?", Gupta et al., 2023; "Simple and Scalable Strategies to Continually Pre-train Large
    Language Models", Ibrahim et al., 2024, both with a cosine re-decay)."""
    return WarmupStableDecay(warmup_fraction, 1.0, min_lr_ratio, decay_shape, min_lr_ratio)


@dataclass(frozen=True)
class Constant:
    """Linear warmup, then the peak LR until the end: never annealed, so only for a run that
    will be continued (e.g. decayed later by a 'wsd' continuation). The total can always change;
    there is no decay, so no pre-decay checkpoint is written."""

    warmup_fraction: float = 0.05

    def warmup_steps(self, total: int) -> int:
        return max(1, round(self.warmup_fraction * total))

    def decay_start(self, total: int) -> int:
        return total

    def lr_factor(self, step: int, total: int) -> float:
        warmup = self.warmup_steps(total)
        return (step + 1) / warmup if step < warmup else 1.0

    def can_replan(self, step: int, total: int) -> bool:
        return True


Schedule = WarmupStableDecay | Constant

SCHEDULES = ("wsd", "cosine", "linear", "rewarm", "constant")
DEFAULT_DECAY_SHAPE = {"wsd": "linear", "cosine": "cosine", "linear": "linear", "rewarm": "cosine"}
"""The decay shape of each schedule when `train.decay_shape` is not set; 'wsd' and 'rewarm'
accept any of DECAY_SHAPES, the others only their own."""


def build_schedule(
    name: str,
    warmup_fraction: float,
    decay_fraction: float,
    min_lr_ratio: float,
    decay_shape: str | None = None,
) -> Schedule:
    """The schedule named in the config (`train.schedule`, `train.decay_shape`)."""
    if not 0 <= warmup_fraction < 1 or not 0 < decay_fraction <= 1 or not 0 <= min_lr_ratio <= 1:
        raise UserError(
            "train.warmup_fraction must be in [0, 1), train.decay_fraction in (0, 1] and "
            "train.min_lr_ratio in [0, 1]"
        )
    if name not in SCHEDULES:
        raise UserError(
            f"unknown train.schedule '{name}'{closest(name, SCHEDULES)}; use one of "
            f"{', '.join(SCHEDULES)}"
        )
    if decay_shape is not None and decay_shape not in DECAY_SHAPES:
        raise UserError(
            f"unknown train.decay_shape '{decay_shape}'{closest(decay_shape, DECAY_SHAPES)}; "
            f"use one of {', '.join(DECAY_SHAPES)}"
        )
    fixed = name in ("cosine", "linear", "constant")
    if fixed and decay_shape not in (None, DEFAULT_DECAY_SHAPE.get(name)):
        raise UserError(
            f"train.decay_shape '{decay_shape}' does not apply to train.schedule '{name}', which "
            f"has a fixed shape; use train.schedule=wsd (or rewarm) with that decay shape"
        )
    if name == "constant":
        return Constant(warmup_fraction)
    shape = decay_shape or DEFAULT_DECAY_SHAPE[name]
    if name == "wsd":
        return WarmupStableDecay(warmup_fraction, decay_fraction, min_lr_ratio, shape)
    if name == "rewarm":
        return rewarm(warmup_fraction, min_lr_ratio, shape)
    if name == "cosine":
        return cosine(warmup_fraction, min_lr_ratio)
    return linear_to_zero(warmup_fraction, min_lr_ratio)
