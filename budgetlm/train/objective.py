"""The training objective of one micro-batch: next-token cross-entropy, as the model's mean, or
sample-reweighted by each sequence's loss (reweight.py), optionally plus a z-loss."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from budgetlm.train.reweight import sample_weights


def step_losses(
    forward: Callable[..., Tensor],
    micro: Tensor,
    strategy: str = "none",
    delta: float = 1.0,
    temperature: float = 1.0,
    z_loss: float = 0.0,
    context_splits: int = 1,
) -> tuple[Tensor, Tensor]:
    """(loss to log, loss to backpropagate) of one micro-batch of [B, T + 1] token windows:
    both the model's mean loss for 'none' (the forward the trainer always made); else the
    unweighted mean and the sample-weighted sum of per-sequence mean losses. A positive
    `z_loss` adds z_loss * mean(logsumexp(logits)^2) to the second only, so logged losses stay
    comparable (Chowdhery et al., 2022, "PaLM", section 5, use 1e-4). `context_splits` k cuts
    each row's inputs and targets into k shorter rows (the context warm-up, ramps.py)."""
    inputs, targets = micro[:, :-1], micro[:, 1:]
    if context_splits > 1:
        length = inputs.shape[1] // context_splits
        inputs, targets = inputs.reshape(-1, length), targets.reshape(-1, length)
    penalty: Tensor | None = None
    if z_loss:
        # One float32 logsumexp serves both terms: cross-entropy is log Z - the target's logit
        logits = forward(inputs).float()
        log_z = torch.logsumexp(logits, dim=-1)
        scored = targets != -100
        target_logit = logits.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        per_token_loss = (log_z - target_logit) * scored
        count = scored.sum().clamp(min=1)
        penalty = z_loss * (log_z.square() * scored).sum() / count

        def forward(_: Tensor, targets: Tensor, reduction: str = "mean") -> Tensor:
            if reduction == "none":
                return per_token_loss
            total = per_token_loss.sum()
            return total / count if reduction == "mean" else total

    if strategy == "none":
        loss = forward(inputs, targets)
        return loss, loss if penalty is None else loss + penalty
    per_token = forward(inputs, targets, reduction="none")
    per_sequence = per_token.mean(dim=1)
    weights = sample_weights(per_sequence.detach(), strategy, delta, temperature)
    objective = (weights * per_sequence).sum()
    return per_token.mean(), objective if penalty is None else objective + penalty
