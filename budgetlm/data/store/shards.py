"""Token shards: a flat token file (`PREFIX.bin`, read with numpy.memmap as in nanoGPT) and a
document index (`PREFIX.idx`: uint64 start offsets, one per document plus the total)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from budgetlm.errors import UserError

OFFSET_DTYPE = np.dtype("<u8")
REPREPARE_HINT = "fix: prepare the dataset again with `budgetlm prepare`"


def token_dtype(vocab_size: int) -> np.dtype:
    """Smallest token dtype for the vocabulary: uint16 up to 65536 ids, else uint32."""
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")


def shard_files(prefix: Path) -> tuple[Path, Path]:
    """The token file and index file of a shard prefix."""
    return prefix.with_name(prefix.name + ".bin"), prefix.with_name(prefix.name + ".idx")


@dataclass
class ShardInfo:
    """What a closed shard holds; `sha256` is the hash of its .bin file."""

    path: str
    tokens: int
    documents: int
    sha256: str


class ShardWriter:
    """Append documents to a shard as one packed, EOS-separated token stream.

    Files are written under temporary names and renamed on `close()`; as a context manager an
    exception discards them.
    """

    def __init__(self, prefix: Path, dtype: np.dtype) -> None:
        self.prefix = Path(prefix)
        self.dtype = np.dtype(dtype)
        self._bin, self._idx = shard_files(self.prefix)
        self._tmp_bin = _tmp_name(self._bin)
        self.prefix.parent.mkdir(parents=True, exist_ok=True)
        self._file = self._tmp_bin.open("wb")
        self._hash = hashlib.sha256()
        self._offsets = [0]

    def add_document(self, ids: Sequence[int], eos_id: int) -> None:
        """Write the document's ids followed by `eos_id`."""
        tokens = np.empty(len(ids) + 1, dtype=self.dtype)
        wide = np.asarray(ids, dtype=np.int64)
        if len(wide) and (wide.min() < 0 or wide.max() > np.iinfo(self.dtype).max):
            raise ValueError(f"token id out of range for {self.dtype.name}")
        tokens[:-1] = wide
        tokens[-1] = eos_id
        data = tokens.tobytes()
        self._file.write(data)
        self._hash.update(data)
        self._offsets.append(self._offsets[-1] + len(tokens))

    def close(self) -> ShardInfo:
        """Finish both files (temp names, then os.replace) and describe the shard."""
        self._file.close()
        tmp_idx = _tmp_name(self._idx)
        np.asarray(self._offsets, dtype=OFFSET_DTYPE).tofile(tmp_idx)
        os.replace(self._tmp_bin, self._bin)
        os.replace(tmp_idx, self._idx)
        return ShardInfo(
            str(self.prefix), self._offsets[-1], len(self._offsets) - 1, self._hash.hexdigest()
        )

    def abort(self) -> None:
        """Discard what was written."""
        self._file.close()
        self._tmp_bin.unlink(missing_ok=True)

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self.abort()


class ShardAppender:
    """Append documents to a shard in place, committing durable prefixes: `prepare` grows shards
    source by source (and resumes after a crash) without rewriting what is already there.

    Opening truncates both files to the last committed size (`tokens`, `documents`), which
    discards whatever a crashed run appended after its last commit; `commit()` flushes and
    fsyncs and returns the new committed sizes, which the caller records in its manifest.
    """

    def __init__(self, prefix: Path, dtype: np.dtype, tokens: int = 0, documents: int = 0) -> None:
        self.prefix = Path(prefix)
        self.dtype = np.dtype(dtype)
        self.prefix.parent.mkdir(parents=True, exist_ok=True)
        bin_path, idx_path = shard_files(self.prefix)
        self._bin = _open_truncated(bin_path, tokens * self.dtype.itemsize)
        # An empty shard's index is the single offset 0, written afresh.
        index_bytes = (documents + 1) * OFFSET_DTYPE.itemsize if documents else 0
        self._idx = _open_truncated(idx_path, index_bytes)
        if documents == 0:
            self._idx.write(np.zeros(1, dtype=OFFSET_DTYPE).tobytes())
        self.tokens = tokens
        self.documents = documents

    def add_document(self, ids: np.ndarray | Sequence[int], eos_id: int) -> None:
        """Append the document's ids followed by `eos_id`."""
        tokens = np.empty(len(ids) + 1, dtype=self.dtype)
        tokens[:-1] = ids
        tokens[-1] = eos_id
        self._bin.write(tokens.tobytes())
        self.tokens += len(tokens)
        self.documents += 1
        self._idx.write(np.asarray([self.tokens], dtype=OFFSET_DTYPE).tobytes())

    def pop_document(self) -> np.ndarray:
        """Remove the last document and return its tokens (EOS included); used to move one
        document between splits so that neither is empty."""
        if self.documents == 0:
            raise IndexError("the shard has no document to remove")
        self.commit()
        bin_path, _ = shard_files(self.prefix)
        offsets = np.fromfile(shard_files(self.prefix)[1], dtype=OFFSET_DTYPE)
        start = int(offsets[self.documents - 1])
        tokens = np.fromfile(bin_path, dtype=self.dtype, offset=start * self.dtype.itemsize)
        self.tokens, self.documents = start, self.documents - 1
        for file, size in (
            (self._bin, self.tokens * self.dtype.itemsize),
            (self._idx, (self.documents + 1) * OFFSET_DTYPE.itemsize),
        ):
            file.truncate(size)
            file.seek(size)
        return tokens

    def commit(self) -> tuple[int, int]:
        """Make everything appended so far durable; returns (tokens, documents)."""
        for file in (self._bin, self._idx):
            file.flush()
            os.fsync(file.fileno())
        return self.tokens, self.documents

    def close(self) -> tuple[int, int]:
        """Commit and close the files."""
        sizes = self.commit()
        self._bin.close()
        self._idx.close()
        return sizes


def _open_truncated(path: Path, size: int):
    """Open `path` for appending at byte `size`, cutting off anything after it; UserError when
    the file is shorter than that (it lost committed data)."""
    file = path.open("r+b" if path.exists() else "w+b")
    actual = file.seek(0, os.SEEK_END)
    if actual < size:
        file.close()
        raise UserError(
            f"shard file '{path}' has {actual} bytes but {size} were committed (it was "
            f"truncated or replaced); {REPREPARE_HINT}"
        )
    file.truncate(size)
    file.seek(size)
    return file


class TokenShard:
    """A shard opened for reading: memmapped tokens plus document offsets."""

    def __init__(self, prefix: Path, dtype: np.dtype) -> None:
        self.prefix = Path(prefix)
        self.dtype = np.dtype(dtype)
        bin_path, idx_path = shard_files(self.prefix)
        for path in (bin_path, idx_path):
            if not path.is_file():
                raise UserError(f"shard file '{path}' is missing; {REPREPARE_HINT}")
        self.offsets = _read_offsets(idx_path)
        self.tokens = _map_tokens(bin_path, self.dtype)
        if self.offsets[-1] != len(self.tokens):
            raise UserError(
                f"shard '{bin_path}' holds {len(self.tokens)} tokens but its index "
                f"'{idx_path}' says {self.offsets[-1]} (truncated?); {REPREPARE_HINT}"
            )
        self.num_documents = len(self.offsets) - 1

    def document(self, i: int) -> np.ndarray:
        """Tokens of document `i`, including its trailing EOS."""
        if not 0 <= i < self.num_documents:
            raise IndexError(f"document {i} out of range 0..{self.num_documents - 1}")
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _read_offsets(idx_path: Path) -> np.ndarray:
    size = idx_path.stat().st_size
    if size < OFFSET_DTYPE.itemsize or size % OFFSET_DTYPE.itemsize:
        raise UserError(f"shard index '{idx_path}' is truncated ({size} bytes); {REPREPARE_HINT}")
    offsets = np.fromfile(idx_path, dtype=OFFSET_DTYPE)
    if offsets[0] != 0 or np.any(np.diff(offsets.astype(np.int64)) < 1):
        raise UserError(
            f"shard index '{idx_path}' is corrupt (offsets must start at 0 and "
            f"increase); {REPREPARE_HINT}"
        )
    return offsets


def _map_tokens(bin_path: Path, dtype: np.dtype) -> np.ndarray:
    size = bin_path.stat().st_size
    if size % dtype.itemsize:
        raise UserError(
            f"shard '{bin_path}' is {size} bytes, not a whole number of "
            f"{dtype.name} tokens (truncated?); {REPREPARE_HINT}"
        )
    if size == 0:  # mmap cannot map an empty file
        empty = np.empty(0, dtype=dtype)
        empty.flags.writeable = False
        return empty
    return np.memmap(bin_path, dtype=dtype, mode="r")
