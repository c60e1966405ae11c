"""Sampling a continuation from a model (either backend), for samples and generative evals.

No KV cache: each step re-runs the context cropped to `seq_len`. For the small models this
project trains that costs little, and it stays obviously correct when the context slides.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def generate(
    model: nn.Module,
    prompt: list[int],
    max_new_tokens: int,
    temperature: float = 0.8,
    top_k: int | None = 50,
    eos_id: int | None = None,
    generator: torch.Generator | None = None,
) -> list[int]:
    """The sampled continuation of `prompt` (new tokens only, at most `max_new_tokens`).

    temperature 0 is greedy (argmax, top_k ignored); top_k None samples from the full
    distribution. Sampling stops when `eos_id` is drawn; eos itself is not returned, so a result
    shorter than `max_new_tokens` means generation stopped at eos. `generator` seeds sampling.
    """
    if not prompt:
        raise ValueError("generate needs a non-empty prompt (e.g. a BOS token)")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k <= 0:
        raise ValueError(f"top_k must be positive or None, got {top_k}")
    seq_len = model.config.seq_len
    device = next(model.parameters()).device
    tokens = torch.tensor([prompt], dtype=torch.long, device=device)
    new: list[int] = []
    for _ in range(max_new_tokens):
        logits = model(tokens[:, -seq_len:])[0, -1].float()
        if temperature == 0:
            next_id = int(logits.argmax())
        else:
            logits = logits / temperature
            if top_k is not None and top_k < logits.numel():
                kth = torch.topk(logits, top_k).values[-1]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = torch.softmax(logits, dim=-1)
            next_id = int(torch.multinomial(probs, 1, generator=generator))
        if next_id == eos_id:
            break
        new.append(next_id)
        tokens = torch.cat([tokens, tokens.new_tensor([[next_id]])], dim=1)
    return new
