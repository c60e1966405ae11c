"""Per-document quality scores: the mean next-token loss of a reference model on each document."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
import torch

from budgetlm.data.shards import TokenShard


@torch.no_grad()
def document_losses(
    model: torch.nn.Module,
    shard: TokenShard,
    seq_len: int,
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    batch_size: int = 32,
) -> np.ndarray:
    """Mean loss (nats/token) of `model` on the first seq_len + 1 tokens of every document;
    documents of a single token score NaN."""
    was_training = model.training
    model.eval()
    scores = np.full(shard.num_documents, np.nan)
    by_length: dict[int, list[int]] = {}
    for i in range(shard.num_documents):
        length = min(seq_len + 1, int(shard.offsets[i + 1] - shard.offsets[i]))
        if length >= 2:
            by_length.setdefault(length, []).append(i)
    for length, ids in by_length.items():
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            batch = np.stack([shard.document(i)[:length] for i in chunk]).astype(np.int64)
            batch = torch.from_numpy(batch).to(device)
            with autocast():
                loss = model(batch[:, :-1], batch[:, 1:], reduction="none")
            scores[chunk] = loss.float().mean(dim=1).cpu().numpy()
    model.train(was_training)
    return scores
