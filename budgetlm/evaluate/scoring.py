"""Per-document quality scores: the mean next-token loss of a reference model on each document."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
import torch

from budgetlm.data.store.shards import TokenShard

IGNORE = -100
"""Target id the decoder's cross-entropy skips (padding of short windows)."""


@torch.no_grad()
def document_losses(
    model: torch.nn.Module,
    shard: TokenShard,
    seq_len: int,
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    batch_size: int = 32,
    windows: int = 1,
) -> np.ndarray:
    """Mean loss (nats/token) of `model` on every document, over its first `windows` windows of
    seq_len predicted tokens (the first seq_len + 1 tokens by default); documents of a single
    token score NaN. Windows of similar length are batched together, padded with ignored
    targets (causal attention keeps the padding from changing the scored tokens)."""
    was_training = model.training
    model.eval()
    sums = np.zeros(shard.num_documents)
    counts = np.zeros(shard.num_documents, dtype=np.int64)
    pieces = []  # (document, start, length) of every window, length >= 2
    for i in range(shard.num_documents):
        size = int(shard.offsets[i + 1] - shard.offsets[i])
        for start in range(0, min(size - 1, windows * seq_len), seq_len):
            pieces.append((i, start, min(seq_len + 1, size - start)))
    pieces.sort(key=lambda p: -p[2])  # longest first: each batch pads to its first window
    for first in range(0, len(pieces), batch_size):
        chunk = pieces[first : first + batch_size]
        width = chunk[0][2]
        batch = np.zeros((len(chunk), width), dtype=np.int64)
        targets = np.full((len(chunk), width - 1), IGNORE, dtype=np.int64)
        for row, (doc, start, length) in enumerate(chunk):
            tokens = shard.document(doc)[start : start + length]
            batch[row, :length] = tokens
            targets[row, : length - 1] = tokens[1:]
        inputs = torch.from_numpy(batch[:, :-1]).to(device)
        with autocast():
            loss = model(inputs, torch.from_numpy(targets).to(device), reduction="none")
        loss = loss.float().cpu().numpy()
        for row, (doc, _start, length) in enumerate(chunk):
            sums[doc] += loss[row, : length - 1].sum()
            counts[doc] += length - 1
    model.train(was_training)
    with np.errstate(invalid="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
