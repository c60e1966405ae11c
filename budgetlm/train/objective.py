"""The training objective of one micro-batch: next-token cross-entropy, as the model's mean, or
sample-reweighted by each sequence's loss (reweight.py)."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from budgetlm.train.reweight import sample_weights


def step_losses(
    forward: Callable[..., Tensor],
    micro: Tensor,
    strategy: str = "none",
    delta: float = 1.0,
    temperature: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """(loss to log, loss to backpropagate) of one micro-batch of [B, T + 1] token windows:
    both the model's mean loss for 'none' (the forward the trainer always made); else the
    unweighted mean and the sample-weighted sum of per-sequence mean losses."""
    inputs, targets = micro[:, :-1], micro[:, 1:]
    if strategy == "none":
        loss = forward(inputs, targets)
        return loss, loss
    per_token = forward(inputs, targets, reduction="none")
    per_sequence = per_token.mean(dim=1)
    weights = sample_weights(per_sequence.detach(), strategy, delta, temperature)
    return per_token.mean(), (weights * per_sequence).sum()
