"""Activation checkpointing: keep only each block's input in the forward pass and recompute the
block's activations in the backward pass ("Training Deep Nets with Sublinear Memory Cost", Chen
et al., 2016). It trades one more forward per step (~1/3 more compute) for activation memory
that no longer grows with the depth of the blocks' insides, which is what lets a large model or
micro-batch fit on one GPU."""

from __future__ import annotations

import functools

from torch import nn
from torch.utils.checkpoint import checkpoint


def checkpoint_blocks(model: nn.Module) -> None:
    """Recompute every block of `model.blocks` (the native decoder's blocks or a transformers
    model's decoder layers) in backward. The weights and their names are unchanged, so
    checkpoints and sharding see the same model."""
    for block in model.blocks:
        if getattr(block, "_budgetlm_recomputed", False):
            continue
        block.forward = functools.partial(checkpoint, block.forward, use_reentrant=False)
        block._budgetlm_recomputed = True
