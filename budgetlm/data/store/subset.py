"""A token stream made of a chosen subset of a shard's documents."""

from __future__ import annotations

import numpy as np

from budgetlm.data.store.shards import TokenShard
from budgetlm.errors import UserError


def lowest_scoring(scores: np.ndarray, fraction: float) -> np.ndarray:
    """Indices of the `fraction` of documents with the lowest finite scores, in document order."""
    if not 0 < fraction <= 1:
        raise UserError(f"subset fraction {fraction} must be in (0, 1]")
    finite = np.flatnonzero(np.isfinite(scores))
    keep = max(1, round(fraction * len(finite)))
    chosen = finite[np.argsort(scores[finite], kind="stable")[:keep]]
    return np.sort(chosen)


def subset_stream(shard: TokenShard, documents: np.ndarray) -> np.ndarray:
    """The chosen documents (each with its trailing EOS) concatenated into one stream."""
    if len(documents) == 0:
        raise UserError(f"no documents chosen from {shard.prefix}")
    return np.concatenate([np.asarray(shard.document(int(i))) for i in documents])
