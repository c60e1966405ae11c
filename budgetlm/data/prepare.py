"""Prepare a dataset: read sources, split train/val per domain, train a tokenizer, write
token shards and manifest.json, all built in a temporary folder and renamed into place."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import budgetlm
from budgetlm.data.documents import Document
from budgetlm.data.shards import ShardInfo, ShardWriter, TokenShard, token_dtype
from budgetlm.data.sources import Source, SourceReport, parse_sources, read_documents
from budgetlm.data.tokenizer import TOKENIZER_FILE, Tokenizer, check_vocab_size
from budgetlm.errors import UserError

MANIFEST_FILE = "manifest.json"
MANIFEST_FORMAT = 1
SPLITS = ("train", "val")
BATCH_CHARS = 1 << 21  # text per encode_batch call: big enough to use every core
BINCOUNT_CHUNK = 1 << 24  # tokens per bincount call, so a large memmap is never copied whole

Log = Callable[[str], None]


def prepare_dataset(
    sources: list[str],
    out_dir: str | Path,
    vocab_size: int = 4096,
    val_fraction: float = 0.05,
    text_field: str = "text",
    seed: int = 0,
    tokenizer: str | Path | None = None,
    log: Log | None = None,
) -> dict:
    """Read sources, split by document into train/val per domain, train (or load) a BPE
    tokenizer on the train split, tokenize, write shards and manifest.json; returns the manifest."""
    log = log or _quiet
    out = Path(out_dir).expanduser()
    _check_out_dir(out)
    if not 0.0 < val_fraction < 1.0:
        raise UserError(f"val_fraction {val_fraction} must be between 0 and 1; fix: use e.g. 0.05")
    loaded = Tokenizer.load(tokenizer) if tokenizer is not None else None
    if loaded is None:
        check_vocab_size(vocab_size)
    parsed = parse_sources(sources)
    by_domain, reports = _read_sources(parsed, text_field, log)
    splits = {
        domain: split_documents(docs, domain, seed, val_fraction, _specs(parsed, domain))
        for domain, docs in by_domain.items()
    }
    del by_domain  # the split lists now hold the only references to the documents
    settings = {"val_fraction": val_fraction, "seed": seed, "text_field": text_field}
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    try:
        manifest = _build(tmp, splits, loaded, vocab_size, parsed, reports, settings, log)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log(f"wrote {out}")
    return manifest


def split_documents(
    docs: list[Document], domain: str, seed: int, val_fraction: float, specs: str = ""
) -> tuple[list[Document], list[Document]]:
    """Split one domain's documents into (train, val) by a deterministic per-document hash,
    moving a document if needed so both splits are non-empty."""
    if len(docs) < 2:
        raise UserError(
            f"domain '{domain}' (from {specs or 'its sources'}) has {len(docs)} document(s), but "
            "needs at least 2 so one can be held out for validation; fix: add another file or "
            "document to it, or give the source the same DOMAIN= prefix as another source"
        )
    keys = [_split_key(seed, domain, doc) for doc in docs]
    order = sorted(range(len(docs)), key=keys.__getitem__)
    is_val = [key < val_fraction for key in keys]
    is_val[order[0]] = True  # lowest hash: the document most entitled to be in val
    is_val[order[-1]] = False  # highest hash: the one most entitled to be in train
    train = [doc for doc, v in zip(docs, is_val, strict=True) if not v]
    val = [doc for doc, v in zip(docs, is_val, strict=True) if v]
    return train, val


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


def _quiet(_message: str) -> None:
    """The default log: say nothing."""


def _check_out_dir(out: Path) -> None:
    if out.is_file() or (out.is_dir() and any(out.iterdir())):
        raise UserError(
            f"output folder '{out}' already exists and is not empty; fix: choose "
            "another --out or delete it"
        )


def _specs(sources: list[Source], domain: str) -> str:
    return ", ".join(f"'{s.spec}'" for s in sources if s.domain == domain)


def _split_key(seed: int, domain: str, doc: Document) -> float:
    """A uniform number in [0, 1) fixed by the seed, domain, document source and text."""
    digest = hashlib.sha1(f"{seed}\0{domain}\0{doc.source}\0{doc.text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _read_sources(
    sources: list[Source], text_field: str, log: Log
) -> tuple[dict[str, list[Document]], list[SourceReport]]:
    """All documents grouped by domain (first-seen order), plus one report per source."""
    by_domain: dict[str, list[Document]] = {}
    reports = []
    for source in sources:
        start, report = time.perf_counter(), SourceReport()
        docs = by_domain.setdefault(source.domain, [])
        docs.extend(read_documents(source, text_field, report))
        reports.append(report)
        log(
            f"read {source.spec}: {report.documents} documents, {report.files} files, "
            f"{report.bytes / 1e6:.1f} MB, {len(report.skipped)} skipped "
            f"({time.perf_counter() - start:.1f}s)"
        )
    if not any(by_domain.values()):
        specs = ", ".join(f"'{s.spec}'" for s in sources)
        raise UserError(
            f"no documents found in {specs} (every file was empty, whitespace or "
            "skipped); fix: point at files that contain text"
        )
    return by_domain, reports


def _build(
    tmp: Path,
    splits: dict[str, tuple[list[Document], list[Document]]],
    loaded: Tokenizer | None,
    vocab_size: int,
    sources: list[Source],
    reports: list[SourceReport],
    settings: dict[str, Any],
    log: Log,
) -> dict:
    """Write tokenizer, shards and manifest into the empty folder `tmp`; return the manifest."""
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    tok = loaded or _train_tokenizer(splits, vocab_size, log)
    tok.save(tmp / TOKENIZER_FILE)
    dtype = token_dtype(tok.vocab_size)
    domains = {}
    for domain, split_docs in splits.items():
        start = time.perf_counter()
        domains[domain] = _write_domain(tmp, domain, split_docs, tok, dtype)
        log(
            f"tokenized {domain}: {domains[domain]['train']['tokens']} train + "
            f"{domains[domain]['val']['tokens']} val tokens ({time.perf_counter() - start:.1f}s)"
        )
    manifest = {
        "format": MANIFEST_FORMAT,
        "budgetlm_version": budgetlm.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "sources": [_source_entry(s, r) for s, r in zip(sources, reports, strict=True)],
        "tokenizer": {
            "file": TOKENIZER_FILE,
            "vocab_size": tok.vocab_size,
            "eos_id": tok.eos_id,
            "bos_id": tok.bos_id,
            "trained": loaded is None,
            "sha256": file_sha256(tmp / TOKENIZER_FILE),
        },
        "dtype": dtype.name,
        **settings,
        "domains": domains,
    }
    (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _train_tokenizer(
    splits: dict[str, tuple[list[Document], list[Document]]], vocab_size: int, log: Log
) -> Tokenizer:
    """Train on the train split only, so validation text never shapes the vocabulary."""
    start = time.perf_counter()
    texts = (doc.text for train, _val in splits.values() for doc in train)
    tok = Tokenizer.train(texts, vocab_size)
    log(f"trained tokenizer: {tok.vocab_size} tokens ({time.perf_counter() - start:.1f}s)")
    return tok


def _write_domain(
    root: Path,
    domain: str,
    split_docs: tuple[list[Document], list[Document]],
    tok: Tokenizer,
    dtype: np.dtype,
) -> dict[str, Any]:
    """Write the train and val shards of one domain; return its manifest entry."""
    entry: dict[str, Any] = {}
    for split, docs in zip(SPLITS, split_docs, strict=True):
        info = _write_shard(root / split / domain, docs, tok, dtype)
        entry[split] = {
            "path": f"{split}/{domain}",
            "tokens": info.tokens,
            "documents": info.documents,
            "sha256": info.sha256,
            "bytes_text": sum(len(doc.text.encode()) for doc in docs),
        }
    train_tokens = TokenShard(root / "train" / domain, dtype).tokens
    entry["unigram_entropy"] = unigram_entropy(train_tokens, tok.vocab_size)
    return entry


def _write_shard(prefix: Path, docs: list[Document], tok: Tokenizer, dtype: np.dtype) -> ShardInfo:
    """Tokenize `docs` in parallel batches into one EOS-separated shard (each document also
    preceded by BOS when the tokenizer frames texts with one, as Llama's does)."""
    bos = tok.bos_id
    with ShardWriter(prefix, dtype) as writer:
        for batch in _batches(docs):
            for ids in tok.encode_batch([doc.text for doc in batch]):
                writer.add_document(ids if bos is None else [bos, *ids], tok.eos_id)
        return writer.close()


def _batches(docs: list[Document]) -> Iterator[list[Document]]:
    """Consecutive groups of documents holding about BATCH_CHARS characters each."""
    batch: list[Document] = []
    chars = 0
    for doc in docs:
        batch.append(doc)
        chars += len(doc.text)
        if chars >= BATCH_CHARS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


def _source_entry(source: Source, report: SourceReport) -> dict[str, Any]:
    return {
        "spec": source.spec,
        "domain": source.domain,
        "kind": source.kind,
        "files": report.files,
        "documents": report.documents,
        "bytes": report.bytes,
        "skipped": report.skipped,
    }
