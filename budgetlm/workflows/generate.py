"""`budgetlm generate`: continue a prompt with a run's trained model."""

from __future__ import annotations

from pathlib import Path

import torch

from budgetlm.model.generate import generate as sample_tokens
from budgetlm.workflows.trained import load_model, load_tokenizer


def generate(
    run_dir: str | Path,
    prompt: str,
    max_new_tokens: int = 200,
    temperature: float = 0.8,
    top_k: int | None = 50,
    seed: int = 0,
) -> str:
    """Continue `prompt` with a trained run's model; returns the new text only."""
    model = load_model(run_dir)
    tokenizer = load_tokenizer(run_dir)
    ids = tokenizer.encode(prompt)
    if tokenizer.bos_id is not None:
        ids = [tokenizer.bos_id, *ids]
    ids = ids or [tokenizer.eos_id]
    generator = torch.Generator().manual_seed(seed)
    new = sample_tokens(model, ids, max_new_tokens, temperature, top_k, tokenizer.eos_id, generator)
    return tokenizer.decode(new)
