"""The manifest's numbers: unigram entropy computed in chunks equals the whole-array value."""

import math

import numpy as np
import pytest

from budgetlm.data.store import manifest
from budgetlm.data.store.manifest import file_sha256, unigram_entropy


def test_unigram_entropy_chunked(monkeypatch) -> None:
    monkeypatch.setattr(manifest, "BINCOUNT_CHUNK", 3)
    tokens = np.arange(8, dtype=np.uint16)  # uniform over 8 ids
    assert unigram_entropy(tokens, 8) == pytest.approx(math.log(8))


def test_unigram_entropy_of_nothing_is_zero() -> None:
    assert unigram_entropy(np.zeros(0, dtype=np.uint16), 8) == 0.0


def test_file_sha256_matches_hashlib(tmp_path) -> None:
    import hashlib

    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * (3 << 20))  # several read chunks
    assert file_sha256(path) == hashlib.sha256(b"x" * (3 << 20)).hexdigest()
