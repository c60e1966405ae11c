"""Muon for the hidden weight matrices, with AdamW for everything else behind one optimizer.

Muon (Jordan, "Muon: An optimizer for hidden layers in neural networks", 2024, as used in
modded-nanogpt) is SGD with Nesterov momentum whose update is replaced by the nearest
semi-orthogonal matrix, computed with a few Newton-Schulz iterations: every direction of the
update gets the same size, so rare directions are not drowned by the dominant ones.

The update is scaled by 0.2 * sqrt(max(rows, cols)) as in "Muon is Scalable for LLM Training"
(Liu et al., 2025): a rows x cols semi-orthogonal matrix has RMS 1 / sqrt(max(rows, cols)), so
the scaled update has RMS 0.2, about the RMS of an AdamW update, and Muon runs at AdamW's learning
rate and weight decay (one `train.lr` for the whole model). Jordan's scale, max(1, rows/cols)^0.5,
gives the update spectral norm ~1 instead, which needs a separate, larger LR (~0.02).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from budgetlm.errors import UserError

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)
"""Quintic Newton-Schulz coefficients (a, b, c) of modded-nanogpt: each step maps a singular
value s to a*s + b*s^3 + c*s^5. The large slope at zero (a) lifts small singular values fast;
the price is that values end in a band around 1 (~[0.7, 1.2]) rather than exactly at 1."""

MATCH_ADAMW_RMS = 0.2
"""Update RMS Muon is scaled to: AdamW's typical update RMS (Liu et al., 2025)."""


def orthogonalize(matrix: Tensor, steps: int = 5) -> Tensor:
    """An approximation of U V^T for matrix = U S V^T: `steps` quintic Newton-Schulz iterations,
    in bf16, on the matrix divided by its Frobenius norm (so every singular value starts <= 1).
    Returns a bf16 tensor of the same shape."""
    a, b, c = NS_COEFFICIENTS
    x = matrix.bfloat16()
    tall = x.size(0) > x.size(1)
    if tall:  # iterate on the wide orientation: its Gram matrix x @ x.T is the smaller one
        x = x.T
    x = x / (x.norm() + 1e-7)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


def update_scale(shape: torch.Size) -> float:
    """Multiplier that gives an orthogonalized update of this shape an RMS of 0.2."""
    return MATCH_ADAMW_RMS * math.sqrt(max(shape[0], shape[1]))


class Muon(torch.optim.Optimizer):
    """MomentUm Orthogonalized by Newton-Schulz, for 2-D weight matrices only.

    Per step, with lr = group["lr"] * group["lr_scale"] (the trainer sets "lr" from the schedule
    for every group; "lr_scale" is train.muon_lr_scale):
    buffer <- lerp(buffer, grad, 1 - momentum); direction <- lerp(grad, buffer, momentum)
    (Nesterov) or buffer; p <- p * (1 - lr * weight_decay) - lr * update_scale * NS(direction).
    """

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        lr: float = 3e-3,
        momentum: float = 0.95,
        nesterov: bool = True,
        weight_decay: float = 0.0,
        lr_scale: float = 1.0,
        ns_steps: int = 5,
    ) -> None:
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "nesterov": nesterov,
            "weight_decay": weight_decay,
            "lr_scale": lr_scale,
            "ns_steps": ns_steps,
        }
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim != 2:
                    raise ValueError(f"Muon takes 2-D matrices only, got shape {tuple(p.shape)}")

    @torch.no_grad()
    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr = group["lr"] * group["lr_scale"]
            beta = group["momentum"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["momentum_buffer"] = torch.zeros_like(p.grad)
                buffer = state["momentum_buffer"]
                buffer.lerp_(p.grad, 1 - beta)
                direction = p.grad.lerp(buffer, beta) if group["nesterov"] else buffer
                update = orthogonalize(direction, group["ns_steps"])
                p.mul_(1 - lr * group["weight_decay"])
                p.add_(update, alpha=-lr * update_scale(p.shape))
        return loss

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore momentum buffers and hyperparameters, except lr_scale, which stays the
        configured one (like the LR, it is the run's config, not the checkpoint's)."""
        scales = [group["lr_scale"] for group in self.param_groups]
        super().load_state_dict(state_dict)
        for group, scale in zip(self.param_groups, scales, strict=True):
            group["lr_scale"] = scale


class MuonAdamW:
    """Muon for the hidden matrices and AdamW for the rest, with the optimizer interface the
    trainer and checkpoints use. `param_groups` lists Muon's groups then AdamW's (the same dicts,
    so setting group["lr"] reaches both); the state dict holds both optimizers' states."""

    def __init__(self, muon: Muon, adamw: torch.optim.Optimizer) -> None:
        self.muon, self.adamw = muon, adamw

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [*self.muon.param_groups, *self.adamw.param_groups]

    @property
    def defaults(self) -> dict[str, Any]:
        return {"muon": self.muon.defaults, "adamw": self.adamw.defaults}

    def step(self, closure: Any = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.muon.step()
        self.adamw.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.muon.zero_grad(set_to_none=set_to_none)
        self.adamw.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if set(state_dict) != {"muon", "adamw"}:
            raise UserError(
                "the checkpoint's optimizer state is not Muon + AdamW (it was saved by a run with "
                "train.optimizer=adamw); continue it with train.optimizer=adamw"
            )
        self.muon.load_state_dict(state_dict["muon"])
        self.adamw.load_state_dict(state_dict["adamw"])
