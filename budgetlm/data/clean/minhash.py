"""Near-duplicate document removal with MinHash signatures and LSH banding.

A document is the set of its shingles (runs of `shingle` consecutive tokens); the fraction
of equal MinHash values between two documents estimates the Jaccard similarity of those sets
(Broder, "On the resemblance and containment of documents", 1997). Splitting a signature
into `bands` bands of `rows` values and looking up each band finds the pairs likely to be
similar without comparing all pairs (Leskovec, Rajaraman & Ullman, "Mining of Massive
Datasets", ch. 3); each candidate is then verified on the full signature. Lee et al.,
"Deduplicating Training Data Makes Language Models Better", run this setup on LLM corpora
with 5-gram shingles and a 0.8 threshold.

Everything is hashed with fixed functions of the text and `seed` (BLAKE2b for tokens,
SplitMix64 mixing and multiply-add-shift for the permutations), never Python's salted
`hash()`, so signatures are identical across processes, runs and machines: workers can
compute them (`minhash_signatures`) and one process decide (`NearDedup.add_signature`).

    dedup = NearDedup()
    kept = [doc for i, doc in enumerate(docs) if dedup.add(i, doc.text) is None]

benchmarks/dedup.py measures precision and recall against exact Jaccard similarities.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from budgetlm.errors import UserError

TOKEN = re.compile(r"\w+|\S")
"""A token is a run of word characters or one other non-space character (punctuation, an
operator); whitespace only separates tokens, so re-indented or re-wrapped text is unchanged.
Scripts written without spaces (Chinese, Japanese) get whole phrases as tokens."""

HASH_CHUNK = 1024
"""Shingles hashed per numpy pass: the temporary (HASH_CHUNK x num_perm) uint64 array, 1 MiB
at 128 permutations, stays in cache (4x faster than 64k-shingle passes) and bounds memory."""

REBUILD_CHUNK = 1 << 16
"""Kept documents whose bands are re-entered per pass when the band table grows."""

EMPTY = np.uint32(0xFFFF_FFFF)
"""Marks a free slot in the band table."""

MAX_LOAD = 0.5
"""The band table doubles when more than this share of its slots is used, keeping linear
probing short (Knuth, TAOCP 6.4: 2.5 probes per unsuccessful search at load 0.5)."""


@dataclass(frozen=True)
class MinHashConfig:
    """MinHash + LSH settings. The defaults flag pairs whose 5-token shingle sets have Jaccard
    similarity >= 0.8, as Lee et al. do, at ~0.7 KB of memory per kept document."""

    num_perm: int = 128
    """Hash functions per signature: the Jaccard estimate has standard deviation
    sqrt(J(1-J)/num_perm), 0.035 at J = 0.8."""
    bands: int = 16
    """LSH bands; a pair becomes a candidate when all `rows` values of some band agree."""
    rows: int = 8
    """Values per band (bands * rows <= num_perm). 16 x 8 puts the S-curve's midpoint
    (1/bands)^(1/rows) at 0.71, below `threshold`, so banding misses few true pairs (5% at
    J = 0.8, 0.6% at 0.85) and the signature check restores precision."""
    threshold: float = 0.8
    """Estimated Jaccard similarity at or above which a document is a near-duplicate."""
    shingle: int = 5
    """Tokens per shingle. Tokens split at punctuation, so 5 tokens span ~4 words of prose
    or an expression of code (`x = f(a)` is 6); documents shorter than this are one shingle."""
    seed: int = 0
    """Seed of the hash functions; signatures are only comparable under the same seed."""

    def __post_init__(self) -> None:
        if self.num_perm < 1 or self.bands < 1 or self.rows < 1 or self.shingle < 1:
            raise UserError(
                f"MinHash num_perm, bands, rows and shingle must be >= 1, got {self}; "
                "use the defaults (128, 16, 8, 5) if unsure"
            )
        if self.bands * self.rows > self.num_perm:
            raise UserError(
                f"MinHash bands * rows = {self.bands * self.rows} exceeds num_perm = "
                f"{self.num_perm}; lower bands or rows, or raise num_perm"
            )
        if not 0 < self.threshold <= 1:
            raise UserError(f"MinHash threshold {self.threshold} must be in (0, 1], e.g. 0.8")


def candidate_probability(jaccard: float, bands: int, rows: int) -> float:
    """Chance that a pair with this Jaccard similarity shares at least one LSH band: the
    S-curve 1 - (1 - J^rows)^bands (Mining of Massive Datasets, 3.4.2)."""
    return 1.0 - (1.0 - jaccard**rows) ** bands


def shingle_hashes(text: str, shingle: int) -> np.ndarray:
    """uint32 hashes of the text's runs of `shingle` consecutive tokens (with repeats); a text
    with fewer tokens is one shingle of all of them, so short and empty texts match exactly."""
    tokens = TOKEN.findall(text)
    distinct = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    positions = np.fromiter(map(distinct.__getitem__, tokens), np.int64, len(tokens))
    token_hashes = _token_hashes(list(distinct))[positions]
    width = min(shingle, len(tokens))
    windows = max(1, len(tokens) - shingle + 1)
    combined = np.full(windows, np.uint64(width))
    with np.errstate(over="ignore"):
        for offset in range(width):
            combined = _mix64(combined + token_hashes[offset : offset + windows])
    return (combined >> np.uint64(32)).astype(np.uint32)


def minhash_signatures(texts: Sequence[str], config: MinHashConfig) -> np.ndarray:
    """uint32 MinHash signatures [len(texts), num_perm]: the minimum of each hash function over
    a document's shingles. Many short texts share each numpy pass, so batches are faster."""
    a, b = _permutation_params(config)
    pieces, owners = [], []
    for doc, text in enumerate(texts):
        hashes = shingle_hashes(text, config.shingle)
        for start in range(0, len(hashes), HASH_CHUNK):
            pieces.append(hashes[start : start + HASH_CHUNK])
            owners.append(doc)
    piece_minima = np.concatenate(
        [_piece_minima(group, a, b) for group in _fill_chunks(pieces, HASH_CHUNK)]
        or [np.empty((0, config.num_perm), np.uint64)]
    )
    first_piece = np.searchsorted(np.asarray(owners, np.int64), np.arange(len(texts)))
    signatures = np.minimum.reduceat(piece_minima, first_piece) if len(texts) else piece_minima
    return (signatures >> np.uint64(32)).astype(np.uint32)


def minhash_signature(text: str, config: MinHashConfig) -> np.ndarray:
    """The uint32 MinHash signature [num_perm] of one text (see minhash_signatures)."""
    return minhash_signatures([text], config)[0]


def band_keys(signatures: np.ndarray, config: MinHashConfig) -> np.ndarray:
    """uint64 key [n, bands] of each band of each signature [n, num_perm]: a mixed weighted sum
    of the band's values, its index included so equal values in different bands differ."""
    bands = signatures[:, : config.bands * config.rows].reshape(-1, config.bands, config.rows)
    weights = _mix64(np.arange(1, config.rows + 1, dtype=np.uint64)) | np.uint64(1)
    with np.errstate(over="ignore"):
        sums = (bands.astype(np.uint64) * weights).sum(axis=2, dtype=np.uint64)
        return _mix64(sums + np.arange(config.bands, dtype=np.uint64))


@dataclass
class DedupStats:
    """Documents NearDedup has seen and how many of them it flagged as near-duplicates."""

    seen: int = 0
    removed: int = 0

    @property
    def kept(self) -> int:
        """Documents remembered for later comparisons."""
        return self.seen - self.removed


class NearDedup:
    """Streaming near-duplicate filter: a document is flagged when a document kept before it,
    found through a shared LSH band, agrees on >= threshold of the signature; else it is kept.

    Memory per kept document (flagged ones cost nothing): its signature, 4 * num_perm bytes;
    its id, 8 bytes; and `bands` uint32 slots of an open-addressing table kept 25-50% full,
    8-16 bytes per band. At the defaults that is 648-776 bytes, plus at most a quarter more
    for the spare rows of the signature array (it grows by 1.25x): at most 910 bytes, after
    ~0.5 MB allocated up front. benchmarks/dedup.py measures 745 bytes at 100,000 documents.
    """

    def __init__(self, config: MinHashConfig | None = None) -> None:
        self.config = config or MinHashConfig()
        self.stats = DedupStats()
        self._signatures = np.empty((1024, self.config.num_perm), np.uint32)
        self._doc_ids = np.empty(1024, np.int64)
        self._table = np.full(1024, EMPTY, np.uint32)

    def add(self, doc_id: int, text: str) -> int | None:
        """The id of a kept document that `text` near-duplicates, or None after keeping it."""
        return self.add_signature(doc_id, minhash_signature(text, self.config))

    def add_many(self, doc_ids: Sequence[int], texts: Sequence[str]) -> list[int | None]:
        """`add` for each document in order, with their signatures computed in one batch."""
        signatures = minhash_signatures(texts, self.config)
        return [self.add_signature(i, s) for i, s in zip(doc_ids, signatures, strict=True)]

    def add_signature(self, doc_id: int, signature: np.ndarray) -> int | None:
        """`add` for a signature computed elsewhere (e.g. by worker processes)."""
        self.stats.seen += 1
        keys = band_keys(signature[None, :], self.config)[0].tolist()
        rows = self._candidates(keys)
        if rows:
            agreement = np.count_nonzero(self._signatures[rows] == signature, axis=1)
            best = int(np.argmax(agreement))
            if agreement[best] / self.config.num_perm >= self.config.threshold:
                self.stats.removed += 1
                return int(self._doc_ids[rows[best]])
        self._keep(doc_id, signature, keys)
        return None

    def nbytes(self) -> int:
        """Bytes held by the signatures, ids and band table (spare capacity included)."""
        return self._signatures.nbytes + self._doc_ids.nbytes + self._table.nbytes

    def state(self) -> dict[str, np.ndarray]:
        """Everything needed to resume, as numpy arrays (for np.savez; ~the memory above)."""
        kept = self.stats.kept
        return {
            "config": _config_array(self.config),
            "counts": np.array([self.stats.seen, self.stats.removed], np.int64),
            "signatures": self._signatures[:kept].copy(),
            "doc_ids": self._doc_ids[:kept].copy(),
            "table": self._table.copy(),
        }

    @classmethod
    def from_state(
        cls, state: dict[str, np.ndarray], config: MinHashConfig | None = None
    ) -> NearDedup:
        """A NearDedup that continues from `state()` with the settings saved in it; a given
        `config` must equal them, since signatures made under other settings never match."""
        saved = _config_from_array(state["config"])
        if config is not None and config != saved:
            raise UserError(
                f"near-dedup state was saved with {saved}, not {config}; resume with the "
                "saved settings or prepare again from scratch"
            )
        dedup = cls(saved)
        dedup.stats = DedupStats(*(int(n) for n in state["counts"]))
        dedup._signatures = np.array(state["signatures"], np.uint32)
        dedup._doc_ids = np.array(state["doc_ids"], np.int64)
        dedup._table = np.array(state["table"], np.uint32)
        return dedup

    def _candidates(self, keys: list[int]) -> list[int]:
        """Rows on the probe chains of the band keys: every kept document sharing a band with
        the query (and the few others that sit in between, which verification rejects)."""
        table, mask = self._table, len(self._table) - 1
        rows = []
        for key in keys:
            slot = key & mask
            while (row := int(table[slot])) != EMPTY:
                rows.append(row)
                slot = (slot + 1) & mask
        return rows

    def _keep(self, doc_id: int, signature: np.ndarray, keys: list[int]) -> None:
        """Remember a document: append its signature and id, enter its band keys in the table."""
        row = self.stats.kept - 1  # stats already count it
        if row == len(self._signatures):
            self._signatures = _resized(self._signatures, row + row // 4)
            self._doc_ids = _resized(self._doc_ids, row + row // 4)
        self._signatures[row] = signature
        self._doc_ids[row] = doc_id
        if (row + 1) * self.config.bands > MAX_LOAD * len(self._table):
            self._table = self._rebuilt_table(2 * len(self._table), row)
        _place(self._table, row, keys)

    def _rebuilt_table(self, size: int, rows: int) -> np.ndarray:
        """A table of `size` slots holding the band keys of the first `rows` kept documents,
        whose keys are recomputed a chunk of documents at a time to bound temporary memory."""
        table = np.full(size, EMPTY, np.uint32)
        for start in range(0, rows, REBUILD_CHUNK):
            keys = band_keys(
                self._signatures[start : min(rows, start + REBUILD_CHUNK)], self.config
            )
            for row, row_keys in enumerate(keys.tolist(), start):
                _place(table, row, row_keys)
        return table


def _place(table: np.ndarray, row: int, keys: list[int]) -> None:
    """Store `row` in the first free slot at or after each key's home slot (linear probing)."""
    mask = len(table) - 1
    for key in keys:
        slot = key & mask
        while table[slot] != EMPTY:
            slot = (slot + 1) & mask
        table[slot] = row


def _resized(array: np.ndarray, capacity: int) -> np.ndarray:
    """A copy of `array` with room for `capacity` rows, the first len(array) rows copied."""
    grown = np.empty((capacity, *array.shape[1:]), array.dtype)
    grown[: len(array)] = array
    return grown


def _config_array(config: MinHashConfig) -> np.ndarray:
    """The settings as UTF-8 JSON in a uint8 array, so a state is all numpy arrays."""
    return np.frombuffer(json.dumps(asdict(config)).encode("utf-8"), np.uint8).copy()


def _config_from_array(array: np.ndarray) -> MinHashConfig:
    """The settings stored by _config_array."""
    return MinHashConfig(**json.loads(bytes(np.asarray(array, np.uint8)).decode("utf-8")))


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (Steele et al., "Fast splittable pseudorandom number
    generators"): a bijection on uint64 that spreads every input bit over all output bits."""
    with np.errstate(over="ignore"):
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _token_hashes(tokens: list[str]) -> np.ndarray:
    """Stable 64-bit hashes of distinct tokens: 8-byte BLAKE2b digests of their UTF-8 bytes."""
    digests = b"".join(
        hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=8).digest() for t in tokens
    )
    return np.frombuffer(digests, "<u8").astype(np.uint64)


def _permutation_params(config: MinHashConfig) -> tuple[np.ndarray, np.ndarray]:
    """Multipliers (odd) and offsets of the num_perm hash functions h(x) = (a*x + b) mod 2^64,
    whose top 32 bits are a universal family on 32-bit x (Dietzfelbinger, "Universal hashing
    and k-wise independent random variables via integer multiplication")."""
    steps = np.arange(1, 2 * config.num_perm + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        stream = _mix64(np.uint64(config.seed % 2**64) + steps * np.uint64(0x9E3779B97F4A7C15))
    return stream[0::2] | np.uint64(1), stream[1::2]


def _fill_chunks(pieces: list[np.ndarray], limit: int) -> list[list[np.ndarray]]:
    """Consecutive groups of pieces, each group holding at most `limit` values (pieces are
    already no longer than `limit`)."""
    groups: list[list[np.ndarray]] = []
    size = 0
    for piece in pieces:
        if not groups or size + len(piece) > limit:
            groups.append([])
            size = 0
        groups[-1].append(piece)
        size += len(piece)
    return groups


def _piece_minima(pieces: list[np.ndarray], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Minimum over each piece's values x of (a*x + b) mod 2^64, for every hash function."""
    values = np.concatenate(pieces).astype(np.uint64)
    starts = np.cumsum([0] + [len(p) for p in pieces[:-1]])
    with np.errstate(over="ignore"):
        hashed = values[:, None] * a + b
    return np.minimum.reduceat(hashed, starts, axis=0)
