"""samples.txt: what the trained model writes after the openings of held-out documents, so
that a user sees what the loss means."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from budgetlm.config import RunConfig
from budgetlm.data.feed.streams import TrainingData
from budgetlm.data.store.tokenizer import Tokenizer
from budgetlm.model.build import LanguageModel
from budgetlm.model.generate import generate as sample_tokens


def write_samples(
    model: LanguageModel,
    tokenizer: Tokenizer,
    data: TrainingData,
    config: RunConfig,
    path: Path,
    device: torch.device,
) -> None:
    """Generate from the openings of a few held-out documents per domain into samples.txt."""
    cfg = config.samples
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    model.eval()
    blocks = []
    for domain, stream in data.val.items():
        for prompt_ids in document_openings(stream, tokenizer.eos_id, cfg.prompts_per_domain):
            new = sample_tokens(
                model,
                prompt_ids,
                cfg.max_new_tokens,
                cfg.temperature,
                cfg.top_k,
                tokenizer.eos_id,
                generator,
            )
            prompt = tokenizer.decode(prompt_ids)
            blocks.append(f"=== {domain} | prompt: {prompt!r}\n{prompt}{tokenizer.decode(new)}\n")
    path.write_text("\n".join(blocks), encoding="utf-8")


def document_openings(stream: np.ndarray, eos_id: int, count: int, length: int = 12) -> list:
    """The first `length` tokens of the first `count` documents of an EOS-separated stream."""
    if count <= 0:
        return []
    head = np.asarray(stream[: 1 << 20])
    starts = [0] + [int(i) + 1 for i in np.flatnonzero(head == eos_id)]
    openings = []
    for start in starts:
        ids = [int(t) for t in head[start : start + length] if t != eos_id]
        if len(ids) == min(length, len(head) - start) and ids:
            openings.append(ids)
        if len(openings) == count:
            break
    return openings
