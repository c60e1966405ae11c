"""What a prepared dataset's manifest.json records and how its numbers are computed: the
format version, the splits, each shard's sha256 and unigram entropy. Written by
data/prepare/build.py, read by data/store/dataset.py."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = 2
SPLITS = ("train", "val")
BINCOUNT_CHUNK = 1 << 24  # tokens per bincount call, so a large memmap is never copied whole


def unigram_entropy(tokens: np.ndarray, vocab_size: int) -> float:
    """Entropy in nats/token of the token frequency distribution (0.0 for no tokens)."""
    counts = np.zeros(vocab_size, dtype=np.int64)
    for start in range(0, len(tokens), BINCOUNT_CHUNK):
        counts += np.bincount(tokens[start : start + BINCOUNT_CHUNK], minlength=vocab_size)
    total = counts.sum()
    if total == 0:
        return 0.0
    p = counts[counts > 0] / total
    return float(-(p * np.log(p)).sum())


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
