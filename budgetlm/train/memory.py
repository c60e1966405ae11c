"""Choose a micro-batch that fits in memory: estimate what one sequence costs in training,
compare with the memory this device has free, and lower the micro-batch until it fits, keeping
the global batch by gradient accumulation.

The activation estimate follows Korthikanti et al., "Reducing Activation Recomputation in Large
Transformer Models" (2022), section 4.1: per layer and token, 34*h bytes of 16-bit activations
plus 5*a*s bytes for the attention scores (a heads, s tokens); SDPA's fused attention does not
keep the s*s scores, so that term is counted only for the math fallback. budgetlm adds the fp32
logits (the vocabulary is large next to the width of small models) and a safety factor.

That count is for a GPT-style block; the blocks transformers ships differ (SwiGLU, QK-norm, LoRA's
extra inputs) and it undercounted them by up to 1.4x in fp32. So when memory is tight, the fit
measures instead: train/activation_probe runs the model's forward and backward on fake tensors and
takes the peak of the live activations (`measured_sequence_bytes`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from budgetlm.model.config import ModelConfig

SAFETY = 1.5
"""Headroom over the estimate (allocator fragmentation, temporaries)."""

PROBE_MARGIN = 4
"""Measure the activations (a second or more) only when the formula's estimate times this
margin does not fit: below it, no plausible error of the formula changes the fit."""


def activation_bytes(
    config: ModelConfig, sequences: int, recompute: bool = False, value_bytes: int = 2
) -> int:
    """Estimated bytes of activations that a forward+backward over `sequences` keeps; with
    `recompute` (activation checkpointing) each block keeps only its 16-bit input, and one
    block's activations at a time are rebuilt in backward (Korthikanti et al., section 4.2).
    Their counts assume 16-bit activations; `value_bytes` 4 scales them for fp32 training."""
    s, h, a = config.seq_len, config.d_model, config.n_heads
    scale = value_bytes / 2
    per_layer_token = scale * (34 * h + (5 * a * s if not _fused_attention() else 0))
    if recompute:
        layers = config.n_layers * scale * 2 * h + per_layer_token
    else:
        layers = config.n_layers * per_layer_token
    per_token = layers + 4 * 3 * config.vocab_size  # fp32 logits, their softmax and its gradient
    return int(SAFETY * sequences * s * per_token)


def measured_sequence_bytes(
    config: ModelConfig, recompute: bool = False, value_bytes: int = 2
) -> int | None:
    """Bytes of activations one sequence keeps, as activation_bytes counts them (safety factor
    included), but measured on fake tensors for this exact model (fp32, scaled to
    `value_bytes`); None when the model's forward cannot run on fake tensors."""
    from budgetlm.train.activation_probe import peak_activation_bytes

    try:
        peak = peak_activation_bytes(config, 1, recompute)
    except Exception:  # any model's own code runs here: fall back to the formula
        return None
    return int(SAFETY * peak * value_bytes / 4)


def state_bytes(parameters: int, trainable: int | None = None) -> int:
    """fp32 weights (4 bytes per parameter) and, for each trainable one, its gradient and
    AdamW's two moments (12 more): 16 bytes per parameter in full training, ~4 with LoRA."""
    trainable = parameters if trainable is None else trainable
    return 4 * parameters + 12 * trainable


def optimizer_step_bytes(trainable: int, device: torch.device) -> int:
    """Transient bytes of one AdamW step: on CUDA, torch's multi-tensor (foreach) AdamW makes
    one fp32 temporary per trainable parameter (the square roots of the second moments);
    the CPU's per-tensor loop keeps only one parameter's worth at a time, counted as none.
    Activations are freed by then, so this competes with them for the peak instead of adding."""
    return 4 * trainable if device.type == "cuda" else 0


def available_bytes(device: torch.device) -> int | None:
    """Free memory on `device`: CUDA's free bytes, or the OS's MemAvailable for the CPU; None
    when unknown."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    meminfo = Path("/proc/meminfo")
    if not meminfo.is_file():
        return None
    for line in meminfo.read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def fit_micro_batch(
    requested: int,
    per_rank_batch: int,
    per_sequence: int,
    fixed: int,
    available: int | None,
) -> int:
    """The largest micro-batch <= `requested` that divides `per_rank_batch` and whose
    activations plus the `fixed` bytes (weights, optimizer) fit in `available` (1 if none
    does: the caller then reports the shortfall); `requested` when memory is unknown."""
    if available is None:
        return requested
    size = requested
    while size > 1 and (per_rank_batch % size or fixed + size * per_sequence > available):
        size -= 1
    return size


def activation_value_bytes(precision: str) -> int:
    """Bytes per activation value for train.precision: 2 under bf16 autocast, 4 in fp32 (and
    for 'auto', not decided yet when memory is fitted: the larger, to be safe)."""
    return 2 if precision == "bf16" else 4


def _fused_attention() -> bool:
    """True when SDPA can use a kernel that does not materialise the attention scores."""
    return hasattr(torch.nn.functional, "scaled_dot_product_attention")
