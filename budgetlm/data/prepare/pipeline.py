"""The per-document work of `prepare`: normalise, quality-filter, fingerprint and tokenize a
batch of texts, in the calling process or in a pool of worker processes.

Everything here is a pure function of the text, so it parallelises; the decisions that need
the whole corpus (deduplication, the train/val split, writing) stay in `prepare.py`. Batches
come back in input order, and at most a few batches per worker are in flight, so memory stays
bounded however large the corpus is.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np

from budgetlm.data.clean.filters import CleaningReport, clean_document
from budgetlm.data.config import CleaningConfig
from budgetlm.data.store.tokenizer import Tokenizer

T = TypeVar("T")
IN_FLIGHT_PER_WORKER = 2


@dataclass
class Processed:
    """One kept document after the per-document steps."""

    text: str
    """The cleaned text (what is deduplicated and tokenized)."""
    ids: np.ndarray
    """Token ids (BOS included when the tokenizer adds one, EOS not)."""
    signature: np.ndarray | None = None
    """MinHash signature for near-duplicate detection, when enabled."""


class DocumentProcessor:
    """Cleans and tokenizes texts with one tokenizer and cleaning configuration."""

    def __init__(
        self, tokenizer_path: str | Path, cleaning: CleaningConfig, quality: str | None = None
    ) -> None:
        from budgetlm.data.clean.filters import QualityConfig
        from budgetlm.data.clean.minhash import MinHashConfig

        self.tokenizer = Tokenizer.load(tokenizer_path)
        self.cleaning = cleaning
        self.quality = QualityConfig.preset(quality) if quality else None
        self.minhash = MinHashConfig() if cleaning.near_dedup else None

    def __call__(self, texts: list[str]) -> tuple[list[Processed | None], CleaningReport]:
        """Per text: the kept document, or None when a cleaning rule dropped it; and the
        batch's cleaning report (deduplication is left to the caller, who sees all batches)."""
        from budgetlm.data.clean.minhash import minhash_signature

        report = CleaningReport()
        cleaned = [
            clean_document(text, report, self.cleaning.normalize, self.quality) for text in texts
        ]
        kept = [text for text in cleaned if text is not None]
        encoded = iter(self.tokenizer.encode_batch(kept))
        bos = self.tokenizer.bos_id
        out: list[Processed | None] = []
        for text in cleaned:
            if text is None:
                out.append(None)
                continue
            ids = next(encoded)
            signature = minhash_signature(text, self.minhash) if self.minhash else None
            out.append(Processed(text, np.asarray(ids if bos is None else [bos, *ids]), signature))
        return out, report


def process_batches(
    batches: Iterable[tuple[T, list[str]]],
    tokenizer_path: str | Path,
    cleaning: CleaningConfig,
    workers: int,
    quality: str | None = None,
) -> Iterator[tuple[T, tuple[list[Processed | None], CleaningReport]]]:
    """(tag, texts) batches -> (tag, (processed, report)) in input order, on `workers`
    processes (in this process when workers <= 1). The tag carries what the caller needs;
    `quality` is the quality preset of these texts (see data/filters.py)."""
    if workers <= 1:
        processor = DocumentProcessor(tokenizer_path, cleaning, quality)
        for tag, texts in batches:
            yield tag, processor(texts)
        return
    context = multiprocessing.get_context("spawn")  # fork + Rust thread pools can deadlock
    with context.Pool(workers, _start_worker, (str(tokenizer_path), cleaning, quality)) as pool:
        pending: deque = deque()
        for tag, texts in batches:
            pending.append((tag, pool.apply_async(_work, (texts,))))
            if len(pending) >= workers * IN_FLIGHT_PER_WORKER:
                tag, result = pending.popleft()
                yield tag, result.get()
        while pending:
            tag, result = pending.popleft()
            yield tag, result.get()


# One processor per worker process, made by the pool's initializer: process-local state is how
# multiprocessing hands a worker its expensive setup (the tokenizer) once.
_processor: DocumentProcessor | None = None


def _start_worker(tokenizer_path: str, cleaning: CleaningConfig, quality: str | None) -> None:
    global _processor
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # one thread per worker: the pool is the split
    os.environ["RAYON_NUM_THREADS"] = "1"
    _processor = DocumentProcessor(tokenizer_path, cleaning, quality)


def _work(texts: list[str]) -> tuple[list[Processed | None], CleaningReport]:
    assert _processor is not None, "worker started without its initializer"
    return _processor(texts)
