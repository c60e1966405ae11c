"""Token shards: dtype choice, packed EOS-separated stream, index, memmap reads, bad files."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from budgetlm.data.store.shards import ShardWriter, TokenShard, token_dtype
from budgetlm.errors import UserError

EOS = 0
DOCS = [[5, 6, 7], [], [300, 1]]


def write_shard(prefix: Path, docs: list[list[int]], dtype: np.dtype) -> None:
    writer = ShardWriter(prefix, dtype)
    for ids in docs:
        writer.add_document(ids, EOS)
    writer.close()


def test_token_dtype_boundary() -> None:
    assert token_dtype(65536) == np.uint16  # ids 0..65535 fit
    assert token_dtype(65537) == np.uint32
    assert token_dtype(300).name == "uint16"


@pytest.mark.parametrize("dtype", [np.dtype(np.uint16), np.dtype(np.uint32)])
def test_write_then_read(tmp_path: Path, dtype: np.dtype) -> None:
    prefix = tmp_path / "train" / "code"
    writer = ShardWriter(prefix, dtype)
    for ids in DOCS:
        writer.add_document(ids, EOS)
    info = writer.close()

    stream = [5, 6, 7, EOS, EOS, 300, 1, EOS]
    assert (info.path, info.tokens, info.documents) == (str(prefix), len(stream), 3)
    bin_bytes = (tmp_path / "train" / "code.bin").read_bytes()
    assert info.sha256 == hashlib.sha256(bin_bytes).hexdigest()
    assert len(bin_bytes) == len(stream) * dtype.itemsize
    assert sorted(p.name for p in prefix.parent.iterdir()) == ["code.bin", "code.idx"]

    shard = TokenShard(prefix, dtype)
    assert shard.tokens.tolist() == stream
    assert shard.tokens.dtype == dtype and shard.tokens.ndim == 1
    assert not shard.tokens.flags.writeable
    assert shard.offsets.tolist() == [0, 4, 5, 8]
    assert shard.num_documents == 3
    for i, ids in enumerate(DOCS):
        assert shard.document(i).tolist() == [*ids, EOS]
    with pytest.raises(IndexError):
        shard.document(3)


def test_uint32_holds_large_ids_and_uint16_refuses_them(tmp_path: Path) -> None:
    write_shard(tmp_path / "big", [[70000, 65536]], np.dtype(np.uint32))
    assert TokenShard(tmp_path / "big", np.dtype(np.uint32)).tokens.tolist() == [70000, 65536, 0]
    writer = ShardWriter(tmp_path / "small", np.dtype(np.uint16))
    with pytest.raises(ValueError, match="out of range"):
        writer.add_document([65536], EOS)
    writer.abort()


def test_failed_writer_leaves_no_files(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), ShardWriter(tmp_path / "s", np.dtype(np.uint16)) as writer:
        writer.add_document([1, 2], EOS)
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_empty_shard_reads(tmp_path: Path) -> None:
    write_shard(tmp_path / "e", [], np.dtype(np.uint16))
    shard = TokenShard(tmp_path / "e", np.dtype(np.uint16))
    assert (len(shard.tokens), shard.num_documents) == (0, 0)


def test_missing_files(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"shard file '.*nope\.bin' is missing.*budgetlm prepare"):
        TokenShard(tmp_path / "nope", np.dtype(np.uint16))
    write_shard(tmp_path / "s", DOCS, np.dtype(np.uint16))
    (tmp_path / "s.idx").unlink()
    with pytest.raises(UserError, match=r"s\.idx' is missing"):
        TokenShard(tmp_path / "s", np.dtype(np.uint16))


def test_truncated_bin(tmp_path: Path) -> None:
    write_shard(tmp_path / "s", DOCS, np.dtype(np.uint16))
    bin_path = tmp_path / "s.bin"
    bin_path.write_bytes(bin_path.read_bytes()[:-2])  # drop one token
    with pytest.raises(UserError, match=r"s\.bin' holds 7 tokens but its index .* says 8"):
        TokenShard(tmp_path / "s", np.dtype(np.uint16))
    bin_path.write_bytes(bin_path.read_bytes()[:-1])  # half a token
    with pytest.raises(UserError, match=r"s\.bin' is 13 bytes, not a whole number"):
        TokenShard(tmp_path / "s", np.dtype(np.uint16))


def test_wrong_dtype_is_detected(tmp_path: Path) -> None:
    write_shard(tmp_path / "s", DOCS, np.dtype(np.uint16))  # 8 tokens = 16 bytes
    with pytest.raises(UserError, match="holds 4 tokens"):
        TokenShard(tmp_path / "s", np.dtype(np.uint32))


def test_corrupt_index(tmp_path: Path) -> None:
    write_shard(tmp_path / "s", DOCS, np.dtype(np.uint16))
    idx = tmp_path / "s.idx"
    idx.write_bytes(idx.read_bytes()[:-3])
    with pytest.raises(UserError, match=r"s\.idx' is truncated"):
        TokenShard(tmp_path / "s", np.dtype(np.uint16))
    np.asarray([0, 5, 4, 8], dtype=np.uint64).tofile(idx)
    with pytest.raises(UserError, match=r"s\.idx' is corrupt"):
        TokenShard(tmp_path / "s", np.dtype(np.uint16))
