"""Optimizer construction: AdamW, or Muon for the hidden matrices with AdamW for the rest."""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import torch
from torch import nn

from budgetlm.errors import UserError, closest
from budgetlm.model.config import NATIVE_BACKEND, ModelConfig
from budgetlm.train.config import TrainConfig
from budgetlm.train.muon import Muon, MuonAdamW

OPTIMIZERS = ("adamw", "muon")
AUTO = "auto"
MUON_MOMENTUM = 0.95
"""Nesterov momentum of Muon (Jordan, 2024; also Liu et al., 2025)."""


class ParameterSplit(NamedTuple):
    """A model's trainable parameters by the optimizer treatment they get (each tensor once,
    so tied embeddings appear once)."""

    hidden: list[nn.Parameter]
    """2-D weights of hidden layers (attention and MLP projections): Muon's."""
    matrices: list[nn.Parameter]
    """Other weights of 2 or more dims (token embedding, output head): AdamW with decay."""
    vectors: list[nn.Parameter]
    """Norm gains and biases: AdamW without weight decay."""


def split_parameters(model: nn.Module) -> ParameterSplit:
    """Sort parameters: embeddings (nn.Embedding) and the output head (a module named `lm_head`)
    are not hidden layers, whatever their shape; every other 2-D weight is."""
    io = _io_parameters(model)
    split = ParameterSplit([], [], [])
    for p in model.parameters():
        if not p.requires_grad:
            continue
        if p.ndim < 2:
            split.vectors.append(p)
        elif p.ndim == 2 and id(p) not in io:
            split.hidden.append(p)
        else:
            split.matrices.append(p)
    return split


def choose_optimizer(train: TrainConfig, model: ModelConfig, continued: bool = False) -> str:
    """`train.optimizer`, with 'auto' decided: Muon for budgetlm's native decoder trained from
    scratch, where it beat AdamW at equal wall-clock at both sizes measured (BENCHMARKS.md,
    issue 16); AdamW for a model that continues one pre-trained with AdamW (`continued`, a
    transformers model), for LoRA adapters and for FSDP, which splits the matrices Muon
    orthogonalises."""
    if train.optimizer != AUTO:
        return train.optimizer
    other = continued or model.backend != NATIVE_BACKEND or model.adapter != "none"
    return "adamw" if other or train.parallel == "fsdp" else "muon"


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer | MuonAdamW:
    """The optimizer named by `train.optimizer`: AdamW for everything ('adamw'), or Muon for the
    hidden matrices and AdamW for embeddings, head, gains and biases ('muon'); 'auto' as
    `choose_optimizer` decides for a run from scratch (a job decides it once, before). Every
    parameter group's "lr" follows the schedule; Muon's groups multiply it by
    `train.muon_lr_scale`."""
    if config.optimizer not in (*OPTIMIZERS, AUTO):
        raise UserError(
            f"unknown train.optimizer '{config.optimizer}'{closest(config.optimizer, OPTIMIZERS)}"
            f"; use one of {', '.join(OPTIMIZERS)} or {AUTO}"
        )
    if config.optimizer == AUTO:
        shape = getattr(model, "config", None)  # either backend's ModelConfig, if it has one
        chosen = choose_optimizer(config, shape) if isinstance(shape, ModelConfig) else "adamw"
        config = dataclasses.replace(config, optimizer=chosen)
    if not config.muon_lr_scale > 0:
        raise UserError(f"train.muon_lr_scale must be > 0, got {config.muon_lr_scale}")
    if config.optimizer == "adamw":
        return build_adamw(model, config)
    split = split_parameters(model)
    muon = Muon(
        split.hidden,
        lr=config.lr,
        momentum=MUON_MOMENTUM,
        weight_decay=config.weight_decay,
        lr_scale=config.muon_lr_scale,
    )
    adamw = _adamw(
        [
            {"params": split.matrices, "weight_decay": config.weight_decay},
            {"params": split.vectors, "weight_decay": 0.0},
        ],
        config,
    )
    return MuonAdamW(muon, adamw)


def build_adamw(
    model: nn.Module, config: TrainConfig, device: torch.device | None = None
) -> torch.optim.AdamW:
    """AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization") with weight decay on
    matrices only (not on norm gains), fused where this torch supports it (CUDA; CPU from 2.4).
    `device` is unused (the parameters' device decides) and kept for existing callers."""
    if not config.embedding_lr_scale >= 0:
        raise UserError(f"train.embedding_lr_scale must be >= 0, got {config.embedding_lr_scale}")
    params = [p for p in model.parameters() if p.requires_grad]
    io = _io_parameters(model) if config.embedding_lr_scale != 1.0 else set()
    groups = [
        {
            "params": [p for p in params if p.dim() >= 2 and id(p) not in io],
            "weight_decay": config.weight_decay,
        },
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    if io:  # their own group only when their LR differs: the default keeps two groups
        groups.append(
            {
                "params": [p for p in params if p.dim() >= 2 and id(p) in io],
                "weight_decay": config.weight_decay,
                "lr_multiplier": config.embedding_lr_scale,
            }
        )
    return _adamw(groups, config)


def _io_parameters(model: nn.Module) -> set[int]:
    """ids of the parameters of the token embedding(s) and the output head (`lm_head`)."""
    io = set()
    for name, module in model.named_modules():
        if isinstance(module, nn.Embedding) or name.rsplit(".", 1)[-1] == "lm_head":
            io.update(id(p) for p in module.parameters())
    return io


def _adamw(groups: list[dict[str, Any]], config: TrainConfig) -> torch.optim.AdamW:
    """torch's fused AdamW (one kernel for all parameters, ~3.5x faster than foreach for the nano
    model on CPU), or the default implementation where fused is not supported."""
    kwargs = {"lr": config.lr, "betas": (config.beta1, config.beta2)}
    try:  # copies: a failed constructor leaves its defaults (fused=True) in the group dicts
        return torch.optim.AdamW([dict(g) for g in groups], fused=True, **kwargs)
    except RuntimeError:  # the device (or this torch's CPU) has no fused kernel
        return torch.optim.AdamW([dict(g) for g in groups], **kwargs)
