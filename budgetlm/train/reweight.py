"""Online loss-based sample reweighting ("Dynamic Loss-Based Sample Reweighting for Improved
Large Language Model Pretraining", Sow et al., ICLR 2025): each sequence's loss in a
micro-batch is mapped to [-delta, delta] by the batch's min and max, passed through a strategy
g, and the weights are softmax(g / temperature) over the micro-batch, so they sum to one and
the weighted loss is on the scale of the mean. The weights are constants (no gradient flows
through them); the logged training loss stays the unweighted mean.

Strategies (x = normalized loss in [-delta, delta]):
- linupper: g = min(x + delta, delta): weight grows with the loss up to the batch's midpoint
  loss and is flat above it, so easy (already learned) sequences count less while the
  highest-loss ones (often noise) are not favoured over the middle;
- quadratic: g = 1 - x^2 / delta^2: favours middling losses, down-weights both extremes;
- extremes: g = |x|: favours the easiest and the hardest sequences.

Weights are computed per micro-batch (and per process in data-parallel training), so they need
a few sequences per micro-batch to mean anything: train.micro_batch_size >= 4.
"""

from __future__ import annotations

import torch
from torch import Tensor

from budgetlm.errors import UserError, closest

STRATEGIES = ("none", "linupper", "quadratic", "extremes")


def check_weighting(strategy: str, delta: float, temperature: float) -> None:
    """UserError for an unknown strategy or a non-positive delta or temperature."""
    if strategy not in STRATEGIES:
        raise UserError(
            f"train.sample_weighting '{strategy}'{closest(strategy, STRATEGIES)} is unknown; "
            f"use one of {', '.join(STRATEGIES)}"
        )
    for key, value in (
        ("train.sample_weighting_delta", delta),
        ("train.sample_weighting_temperature", temperature),
    ):
        if not value > 0:
            raise UserError(f"{key} must be positive, got {value}")


def normalize_losses(losses: Tensor, delta: float = 1.0) -> Tensor:
    """Losses mapped linearly to [-delta, delta] (lowest -> -delta, highest -> delta); all zeros
    when the losses are equal."""
    low, high = losses.min(), losses.max()
    span = (high - low).clamp_min(1e-6)
    return delta * (2 * losses - (high + low)) / span


def strategy_values(normalized: Tensor, strategy: str, delta: float = 1.0) -> Tensor:
    """g(x) of a strategy on normalized losses (see the module docstring)."""
    if strategy == "linupper":
        return torch.minimum(normalized + delta, torch.full_like(normalized, delta))
    if strategy == "quadratic":
        return 1 - normalized**2 / delta**2
    if strategy == "extremes":
        return normalized.abs()
    if strategy == "none":
        return torch.zeros_like(normalized)
    raise ValueError(f"unknown sample weighting strategy {strategy!r}")


@torch.no_grad()
def sample_weights(
    losses: Tensor, strategy: str, delta: float = 1.0, temperature: float = 1.0
) -> Tensor:
    """Weights of the sequences with these [B] losses: softmax(g(normalized) / temperature),
    summing to one ('none': all 1/B)."""
    values = strategy_values(normalize_losses(losses.float(), delta), strategy, delta)
    return torch.softmax(values / temperature, dim=0)
