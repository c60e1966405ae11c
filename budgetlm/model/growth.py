"""Depthwise model growth: the weights of a deeper decoder made by stacking a trained shallower
one's blocks, G_stack of Du et al., "Stacking Your Transformers: A Closer Look at Model Growth
for Efficient LLM Pre-Training" (2024). The whole small model is repeated g times (blocks
0..L-1, 0..L-1, ...); embeddings, final norm and head are copied. Pure: state dicts in and out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from torch import Tensor

from budgetlm.errors import UserError
from budgetlm.model.config import ModelConfig, swiglu_hidden

WIDTH_FIELDS = (
    "vocab_size",
    "d_model",
    "n_heads",
    "n_kv_heads",
    "ffn_hidden",
    "tie_embeddings",
    "qkv_bias",
    "qk_norm",
    "mlp",
    "document_mask",
)
"""The fields that fix the shape of every tensor except the number of blocks: they must match."""

_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(.+)$")


def growth_factor(small: ModelConfig, large: ModelConfig) -> int:
    """How many times G_stack repeats `small` to make `large` (both resolved); a UserError
    naming the shapes and the model keys to set when the widths differ or the depth is not a
    multiple (at least 2x) of the small model's."""
    if small.value_embeddings or large.value_embeddings:
        raise UserError(
            "cannot grow a model with value embeddings (model.value_embeddings): its blocks "
            "are not alike, so stacking them has no meaning; grow a model trained without them"
        )
    differ = [k for k in WIDTH_FIELDS if getattr(small, k) != getattr(large, k)]
    factor, rest = divmod(large.n_layers, small.n_layers)
    if not differ and not rest and factor >= 2:
        return factor
    if differ:
        shown = ", ".join(f"model.{k} {getattr(small, k)} vs {getattr(large, k)}" for k in differ)
        problem = f"the widths differ ({shown}), and stacking keeps every width"
    else:
        problem = (
            f"model.n_layers {large.n_layers} is not a multiple (2x or more) of the small "
            f"model's {small.n_layers}"
        )
    raise UserError(
        f"cannot grow a {small.n_layers}-layer model (d_model {small.d_model}) into a "
        f"{large.n_layers}-layer one (d_model {large.d_model}): {problem}; for 2x depth set "
        f"{stack_flags(small, 2)}"
        + (" and train on data with the small run's tokenizer" if "vocab_size" in differ else "")
    )


def stack_flags(small: ModelConfig, factor: int) -> str:
    """The --model.* flags that describe `small` grown `factor` times deeper."""
    flags = {
        "size": "custom",
        "d_model": small.d_model,
        "n_heads": small.n_heads,
        "n_kv_heads": small.n_kv_heads,
        "n_layers": small.n_layers * factor,
    }
    if small.mlp != "swiglu":
        flags["mlp"] = small.mlp
    default_hidden = swiglu_hidden(small.d_model) if small.mlp == "swiglu" else 4 * small.d_model
    if small.ffn_hidden != default_hidden:
        flags["ffn_hidden"] = small.ffn_hidden
    for key, default in (
        ("tie_embeddings", True),
        ("qkv_bias", False),
        ("qk_norm", False),
        ("document_mask", False),
    ):
        if getattr(small, key) != default:
            flags[key] = str(getattr(small, key)).lower()
    return " ".join(f"--model.{k} {v}" for k, v in flags.items())


def stack_layers(
    small_state: Mapping[str, Tensor], small: ModelConfig, large: ModelConfig
) -> dict[str, Tensor]:
    """The state dict of `large` whose block i is a copy of `small`'s block i mod L_small, and
    whose embedding, final norm and head are copies of `small`'s (G_stack)."""
    factor = growth_factor(small, large)
    grown: dict[str, Tensor] = {}
    for key, tensor in small_state.items():
        match = _BLOCK_KEY.match(key)
        if match is None:
            grown[key] = tensor.detach().clone()
            continue
        index, rest = int(match.group(1)), match.group(2)
        if index >= small.n_layers:
            raise ValueError(f"state dict has block {index}; its config {small.n_layers} layers")
        for copy in range(factor):
            grown[f"blocks.{copy * small.n_layers + index}.{rest}"] = tensor.detach().clone()
    return grown
