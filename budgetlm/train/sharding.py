"""Sharded data-parallel training with FSDP2 (`fully_shard`): each rank keeps 1/N of the
parameters, gradients and optimizer state (ZeRO-3, Rajbhandari et al., "ZeRO: Memory
Optimizations Toward Training Trillion Parameter Models"), gathering a block's weights just
before it runs.

Checkpoints stay in the one-file format of unsharded runs (model.safetensors plus an optimizer
state keyed by parameter index), so a run sharded over N processes resumes unsharded, with DDP,
or over another number of processes. Writing one gathers the full state on rank 0 (into a plain
host copy of the model), which costs rank 0 one unsharded copy of the weights in CPU memory.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.distributed.tensor import DTensor

PARALLEL_MODES = ("ddp", "fsdp")

_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def shard_model(model: nn.Module) -> None:
    """Shard every transformer block, then the rest (embeddings, final norm, head) as one unit:
    blocks are gathered one at a time in forward and backward, which bounds the memory of
    unsharded weights to about one block. Tied embeddings stay tied (both uses are in the root
    unit)."""
    for block in model.blocks:
        fully_shard(block)
    fully_shard(model)


def is_sharded(model: nn.Module) -> bool:
    return isinstance(model, FSDPModule)


def set_gradient_sync(model: nn.Module, sync: bool) -> None:
    """Skip (False) or do (True) the gradient reduce-scatter of the next backward: accumulating
    micro-batches unsynchronised and reducing once is what DDP's no_sync does."""
    model.set_requires_gradient_sync(sync)


def local_value(tensor: Tensor) -> Tensor:
    """A plain tensor from a (replicated) DTensor, such as the gradient norm of a sharded model."""
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def gather_weights(model: nn.Module) -> dict[str, Tensor]:
    """The full, unsharded weights on CPU on rank 0 (an empty dict on the other ranks). Every
    rank must call it: it is a collective."""
    return get_model_state_dict(model, options=_FULL)


def gather_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The full optimizer state on rank 0 in `optimizer.state_dict()`'s format of an unsharded
    model (states keyed by parameter index); empty on the other ranks. A collective."""
    by_name = get_optimizer_state_dict(model, optimizer, options=_FULL)
    if not by_name:
        return {}
    index = {name: i for i, name in enumerate(_parameter_order(model, optimizer))}
    return {
        "state": {index[name]: value for name, value in by_name["state"].items()},
        "param_groups": [
            dict(group, params=[index[name] for name in group["params"]])
            for group in by_name["param_groups"]
        ],
    }


def load_full_state(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    weights: dict[str, Tensor] | None,
    optimizer_state: dict[str, Any] | None,
) -> None:
    """Shard full weights and/or an index-keyed optimizer state (as saved by an unsharded run
    or `gather_optimizer`) into this rank's parts. Every rank passes the full state."""
    if weights is not None:
        set_model_state_dict(model, weights, options=StateDictOptions(full_state_dict=True))
    if optimizer is None or not optimizer_state or not optimizer_state.get("state"):
        return
    order = _parameter_order(model, optimizer)
    by_name = {
        "state": {order[i]: value for i, value in optimizer_state["state"].items()},
        "param_groups": [
            dict(group, params=[order[i] for i in group["params"]])
            for group in optimizer_state["param_groups"]
        ],
    }
    set_optimizer_state_dict(
        model, optimizer, by_name, options=StateDictOptions(full_state_dict=True)
    )


def _parameter_order(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """Parameter names in the order `optimizer.state_dict()` numbers them."""
    name_of = {id(p): name for name, p in model.named_parameters()}
    return [name_of[id(p)] for group in optimizer.param_groups for p in group["params"]]
