"""Prepare a dataset: stream sources through cleaning and tokenization into append-only token
shards, one train and one val shard per domain, described by manifest.json.

Streaming end to end: documents are read, processed and written in batches, so memory does not
grow with the corpus (except the deduplication index, a few bytes per document; see
`memory_bound`). Durable and resumable: shards only grow; after every COMMIT_CHARS of text and
after each source, the shards are fsynced and the manifest, which records their committed sizes
and how far each source was read, is replaced atomically. A crash loses at most the work since
the last commit, and running the same command again resumes there; adding sources to a
prepared dataset tokenizes only the new ones. Readers refuse a dataset whose manifest is not
marked complete, so a half-written shard never passes for a finished one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

import budgetlm
from budgetlm.data.clean.filters import EXACT_DUPLICATE, CleaningReport, ExactDedup
from budgetlm.data.config import CleaningConfig
from budgetlm.data.ingest.documents import Document
from budgetlm.data.ingest.sources import Source, SourceReport, parse_sources, read_documents
from budgetlm.data.prepare.pipeline import Processed, process_batches
from budgetlm.data.store.manifest import (
    MANIFEST_FILE,
    MANIFEST_FORMAT,
    SPLITS,
    file_sha256,
    unigram_entropy,
)
from budgetlm.data.store.shards import ShardAppender, TokenShard, token_dtype
from budgetlm.data.store.tokenizer import TOKENIZER_FILE, Tokenizer, check_vocab_size
from budgetlm.errors import UserError, closest
from budgetlm.io import Log

BATCH_CHARS = 1 << 20  # text per processing batch (one worker task)
COMMIT_CHARS = 1 << 28  # text between durable commits (~256 MB)
TOKENIZER_SAMPLE_CHARS = 1 << 26  # text a new tokenizer is trained on (~64 MB), split by source
PARALLEL_MIN_BYTES = 1 << 25  # inputs smaller than this (32 MB) are processed in-process
DEDUP_DIR = "dedup"
NEAR_DUPLICATE = "near_duplicate"


def prepare_dataset(
    sources: list[str],
    out_dir: str | Path,
    vocab_size: int = 4096,
    val_fraction: float = 0.05,
    text_field: str = "text",
    seed: int = 0,
    tokenizer: str | Path | None = None,
    cleaning: CleaningConfig | None = None,
    workers: int | None = None,
    log: Log | None = None,
) -> dict:
    """Prepare `sources` into `out_dir` and return its manifest.

    A new folder gets a tokenizer (trained on a sample of the train split, or `tokenizer`
    reused) and every source. A folder that already holds a dataset made with the same
    settings gets the sources it lacks appended, and an interrupted preparation is finished.
    `workers` processes do the per-document work (default: all cores for large inputs)."""
    log = log or _quiet
    cleaning = cleaning or CleaningConfig()
    out = Path(out_dir).expanduser()
    if not 0.0 < val_fraction < 1.0:
        raise UserError(f"val_fraction {val_fraction} must be between 0 and 1; fix: use e.g. 0.05")
    settings = {
        "val_fraction": val_fraction,
        "seed": seed,
        "text_field": text_field,
        "cleaning": dataclasses.asdict(cleaning),
    }
    if tokenizer is None and not (out / MANIFEST_FILE).is_file():
        check_vocab_size(vocab_size)
    elif tokenizer is not None:
        Tokenizer.load(tokenizer)  # a missing or unreadable tokenizer fails before any reading
    parsed = parse_sources(sources)
    _check_quality(cleaning, parsed)
    manifest = _open_or_create(out, settings, tokenizer, vocab_size, parsed, text_field, log)
    tok = Tokenizer.load(out / TOKENIZER_FILE)
    _add_sources(manifest, parsed)
    pending = [s for s in parsed if not _entry(manifest, s)["done"]]
    if not pending and manifest["complete"]:
        log(f"{out} already holds every source")
        return manifest
    manifest["complete"] = False
    _write_manifest(out, manifest)
    workers = workers or _default_workers(pending)
    Builder(out, manifest, tok, cleaning, workers, log).run(pending)
    _finish(out, manifest, tok, log)
    log(f"wrote {out}")
    return manifest


def memory_bound(cleaning: CleaningConfig, workers: int) -> str:
    """What bounds prepare's memory, for the docs and the benchmark: batches in flight, plus
    the deduplication index per kept document."""
    per_doc = (16 if cleaning.exact_dedup else 0) + (1100 if cleaning.near_dedup else 0)
    in_flight = BATCH_CHARS * (workers * 2 + 2)
    return f"~{in_flight / 1e6:.0f} MB of text in flight + {per_doc} bytes per kept document"


def split_key(seed: int, domain: str, doc: Document) -> float:
    """A uniform number in [0, 1) fixed by the seed, domain, document source and text: a
    document goes to validation when it is below val_fraction, whichever run reads it."""
    digest = hashlib.sha1(f"{seed}\0{domain}\0{doc.source}\0{doc.text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class Builder:
    """Streams pending sources into the shards of one dataset folder, committing as it goes."""

    def __init__(
        self,
        out: Path,
        manifest: dict,
        tok: Tokenizer,
        cleaning: CleaningConfig,
        workers: int,
        log: Log,
    ) -> None:
        self.out, self.manifest, self.tok, self.cleaning = out, manifest, tok, cleaning
        self.workers, self.log = workers, log
        self.dtype = np.dtype(manifest["dtype"])
        self.val_fraction, self.seed = manifest["val_fraction"], manifest["seed"]
        self.writers: dict[tuple[str, str], ShardAppender] = {}
        self.exact, self.near = _load_dedup(out, manifest, cleaning)
        self.commits = manifest.get("commits", 0)

    def run(self, pending: list[Source]) -> None:
        """Process each pending source to its end, resuming a partly read one."""
        try:
            for source in pending:
                self._run_source(source)
        finally:
            for writer in self.writers.values():
                writer.close()

    def _run_source(self, source: Source) -> None:
        entry = _entry(self.manifest, source)
        start, skip = time.perf_counter(), entry["read"]
        if skip:
            self.log(f"resuming {source.spec} after {skip:,} documents")
        report = SourceReport()
        cleaning = CleaningReport.from_dict(entry["cleaning"])
        docs = read_documents(source, self.manifest["text_field"], report)
        since_commit = 0
        for batch, (processed, batch_report) in process_batches(
            _batches(docs, skip),
            self.out / TOKENIZER_FILE,
            self.cleaning,
            self.workers,
            self.cleaning.quality_for(source.domain),
        ):
            cleaning.merge(batch_report)
            for doc, item in zip(batch, processed, strict=True):
                if item is not None:
                    self._keep_or_drop(source, entry, doc, item, cleaning)
            entry["read"] += len(batch)
            since_commit += sum(len(doc.text) for doc in batch)
            if since_commit >= COMMIT_CHARS:
                self._commit(entry, report, cleaning, done=False)
                since_commit = 0
        self._commit(entry, report, cleaning, done=True)
        self.log(
            f"{source.spec}: {entry['documents']:,} documents read, {entry['kept']:,} kept, "
            f"{entry['tokens']:,} tokens ({time.perf_counter() - start:.1f}s)"
        )

    def _keep_or_drop(
        self, source: Source, entry: dict, doc: Document, item: Processed, cleaning: CleaningReport
    ) -> None:
        """Drop a duplicate (counted in `cleaning`), else append the document to its split."""
        reason = None
        if self.exact is not None and self.exact.seen(item.text):
            reason = EXACT_DUPLICATE
        elif (
            self.near is not None
            and self.near.add_signature(self.near_id(), item.signature) is not None
        ):
            reason = NEAR_DUPLICATE
        size = len(item.text.encode("utf-8", "surrogatepass"))
        if reason is not None:
            cleaning.count(reason, documents=1, removed_bytes=size)
            cleaning.documents_out -= 1
            cleaning.bytes_out -= size
            return
        split = "val" if split_key(self.seed, source.domain, doc) < self.val_fraction else "train"
        self._writer(split, source.domain).add_document(item.ids, self.tok.eos_id)
        entry["kept"] += 1
        entry["tokens"] += len(item.ids) + 1
        self.manifest["domains"][source.domain][split]["bytes_text"] += size

    def near_id(self) -> int:
        """A running id for the near-duplicate index (documents kept so far)."""
        return sum(e["kept"] for e in self.manifest["sources"])

    def _writer(self, split: str, domain: str) -> ShardAppender:
        key = (split, domain)
        if key not in self.writers:
            entry = self.manifest["domains"][domain][split]
            self.writers[key] = ShardAppender(
                self.out / entry["path"], self.dtype, entry["tokens"], entry["documents"]
            )
        return self.writers[key]

    def _commit(
        self, entry: dict, report: SourceReport, cleaning: CleaningReport, done: bool
    ) -> None:
        """Make the shards durable, save the dedup index, then record it all in the manifest
        (the commit point: a crash before it leaves the previous manifest valid)."""
        for (split, domain), writer in self.writers.items():
            tokens, documents = writer.commit()
            shard = self.manifest["domains"][domain][split]
            shard["tokens"], shard["documents"], shard["sha256"] = tokens, documents, None
        self.commits += 1
        files = _save_dedup(self.out, self.commits, self.exact, self.near)
        entry.update(
            done=done,
            documents=entry["read"],
            files=report.files,
            bytes=report.bytes,
            skipped=report.skipped,
            cleaning=cleaning.to_dict(),
        )
        self.manifest["commits"], old_files = self.commits, self.manifest.get("dedup_files", [])
        self.manifest["dedup_files"] = files
        _write_manifest(self.out, self.manifest)
        for name in set(old_files) - set(files):
            (self.out / DEDUP_DIR / name).unlink(missing_ok=True)


def _check_quality(cleaning: CleaningConfig, sources: list[Source]) -> None:
    """UserError for a per-domain quality preset naming a domain no source has."""
    from budgetlm.data.clean.filters import QualityConfig

    names = cleaning.quality.items() if isinstance(cleaning.quality, dict) else []
    domains = sorted({s.domain for s in sources})
    for domain, preset in names:
        if domain not in domains:
            raise UserError(
                f"quality preset given for domain '{domain}'{closest(domain, domains)}, which no "
                f"source has; domains: {', '.join(domains)}"
            )
        QualityConfig.preset(preset)  # unknown preset names fail here, before any reading
    if isinstance(cleaning.quality, str):
        QualityConfig.preset(cleaning.quality)


def _open_or_create(
    out: Path,
    settings: dict,
    tokenizer: str | Path | None,
    vocab_size: int,
    sources: list[Source],
    text_field: str,
    log: Log,
) -> dict:
    """The manifest of the dataset in `out`, checked against these settings; or a new one, with
    its tokenizer, when `out` is empty or missing."""
    if (out / MANIFEST_FILE).is_file():
        manifest = read_manifest(out)
        for key, value in settings.items():
            if manifest.get(key) != value:
                raise UserError(
                    f"'{out}' was prepared with {key}={manifest.get(key)!r}, not {value!r}; "
                    "sources can only be added with the same settings: use them, or prepare "
                    "into another --out"
                )
        if tokenizer is not None:
            own = Tokenizer.load(out / TOKENIZER_FILE).fingerprint
            if Tokenizer.load(tokenizer).fingerprint != own:
                raise UserError(
                    f"'{out}' was tokenized with another tokenizer than {tokenizer}; prepare "
                    "into another --out to use that tokenizer"
                )
        return manifest
    if out.is_file() or (out.is_dir() and any(out.iterdir())):
        raise UserError(
            f"output folder '{out}' already exists, is not empty and holds no prepared dataset; "
            "fix: choose another --out or delete it"
        )
    if tokenizer is not None:
        tok = Tokenizer.load(tokenizer)
    else:
        check_vocab_size(vocab_size)
        tok = _train_tokenizer(sources, text_field, settings, vocab_size, log)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(out / TOKENIZER_FILE)
    now = datetime.now(UTC).isoformat(timespec="seconds")
    manifest = {
        "format": MANIFEST_FORMAT,
        "budgetlm_version": budgetlm.__version__,
        "created": now,
        "complete": False,
        **settings,
        "tokenizer": {
            "file": TOKENIZER_FILE,
            "vocab_size": tok.vocab_size,
            "eos_id": tok.eos_id,
            "bos_id": tok.bos_id,
            "trained": tokenizer is None,
            "sha256": file_sha256(out / TOKENIZER_FILE),
        },
        "dtype": token_dtype(tok.vocab_size).name,
        "sources": [],
        "domains": {},
    }
    _write_manifest(out, manifest)
    return manifest


def read_manifest(path: Path) -> dict[str, Any]:
    """The parsed manifest.json of a dataset folder (UserError when unreadable or too old)."""
    file = path / MANIFEST_FILE
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(
            f"'{file}' is not valid JSON ({e}); prepare the dataset again into another --out"
        ) from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise UserError(
            f"'{file}' has format {found!r}, this budgetlm reads format {MANIFEST_FORMAT}; "
            "prepare the dataset again with `budgetlm prepare`"
        )
    return manifest


def _add_sources(manifest: dict, sources: list[Source]) -> None:
    """Register sources the manifest does not list yet, and their domains' empty shards."""
    for source in sources:
        if _find_entry(manifest, source) is None:
            manifest["sources"].append(
                {
                    "spec": source.spec,
                    "domain": source.domain,
                    "kind": source.kind,
                    "files": 0,
                    "documents": 0,
                    "bytes": 0,
                    "skipped": [],
                    "read": 0,
                    "kept": 0,
                    "tokens": 0,
                    "cleaning": CleaningReport().to_dict(),
                    "done": False,
                }
            )
        domain = manifest["domains"].setdefault(source.domain, {})
        for split in SPLITS:
            domain.setdefault(
                split,
                {
                    "path": f"{split}/{source.domain}",
                    "tokens": 0,
                    "documents": 0,
                    "sha256": None,
                    "bytes_text": 0,
                },
            )


def _find_entry(manifest: dict, source: Source) -> dict | None:
    return next(
        (
            e
            for e in manifest["sources"]
            if e["spec"] == source.spec and e["domain"] == source.domain
        ),
        None,
    )


def _entry(manifest: dict, source: Source) -> dict:
    entry = _find_entry(manifest, source)
    assert entry is not None, f"{source.spec} was not registered"
    return entry


def _finish(out: Path, manifest: dict, tok: Tokenizer, log: Log) -> None:
    """Check every domain has documents in both splits (moving one document if needed), hash
    the shards and compute their statistics, and mark the dataset complete."""
    for domain, entry in manifest["domains"].items():
        _balance_splits(out, manifest, domain, entry)
    for domain, entry in manifest["domains"].items():
        for split in SPLITS:
            shard = entry[split]
            if shard["sha256"] is None:
                shard["sha256"] = file_sha256(out / f"{shard['path']}.bin")
        tokens = TokenShard(out / entry["train"]["path"], np.dtype(manifest["dtype"])).tokens
        entry["unigram_entropy"] = unigram_entropy(tokens, tok.vocab_size)
        log(f"{domain}: {entry['train']['tokens']:,} train + {entry['val']['tokens']:,} val tokens")
    manifest["complete"] = True
    manifest["updated"] = datetime.now(UTC).isoformat(timespec="seconds")
    _write_manifest(out, manifest)


def _balance_splits(out: Path, manifest: dict, domain: str, entry: dict) -> None:
    """A domain needs a document in each split; with two or more documents, move the last one
    of the fuller split when the other is empty."""
    counts = {split: entry[split]["documents"] for split in SPLITS}
    if sum(counts.values()) < 2:
        specs = ", ".join(f"'{e['spec']}'" for e in manifest["sources"] if e["domain"] == domain)
        raise UserError(
            f"domain '{domain}' (from {specs}) has {sum(counts.values())} document(s) after "
            "cleaning, but needs at least 2 so one can be held out for validation; fix: add "
            "another file or document to it, or give the source the same DOMAIN= prefix as "
            "another source"
        )
    empty = next((split for split in SPLITS if counts[split] == 0), None)
    if empty is None:
        return
    full = "train" if empty == "val" else "val"
    dtype = np.dtype(manifest["dtype"])
    source = ShardAppender(out / entry[full]["path"], dtype, **_sizes(entry[full]))
    target = ShardAppender(out / entry[empty]["path"], dtype, **_sizes(entry[empty]))
    tokens = source.pop_document()
    target.add_document(tokens[:-1], int(tokens[-1]))
    for split, writer in ((full, source), (empty, target)):
        entry[split]["tokens"], entry[split]["documents"] = writer.close()
        entry[split]["sha256"] = None


def _sizes(shard: dict) -> dict[str, int]:
    return {"tokens": shard["tokens"], "documents": shard["documents"]}


def _train_tokenizer(
    sources: list[Source], text_field: str, settings: dict, vocab_size: int, log: Log
) -> Tokenizer:
    """Train a BPE on up to TOKENIZER_SAMPLE_CHARS of training-split text, an equal share from
    the start of each source, so validation text never shapes the vocabulary and memory stays
    bounded."""
    from budgetlm.data.clean.filters import normalize

    start = time.perf_counter()
    share = TOKENIZER_SAMPLE_CHARS // max(1, len(sources))
    form = settings["cleaning"]["normalize"]

    read = 0

    def texts() -> Iterator[str]:
        nonlocal read
        for source in sources:
            taken = 0
            for doc in read_documents(source, text_field, SourceReport()):
                read += 1
                if split_key(settings["seed"], source.domain, doc) < settings["val_fraction"]:
                    continue
                yield normalize(doc.text, form) if form else doc.text
                taken += len(doc.text)
                if taken >= share:
                    break

    tok = Tokenizer.train(texts(), vocab_size)
    if read == 0:
        specs = ", ".join(f"'{s.spec}'" for s in sources)
        raise UserError(
            f"no documents found in {specs} (every file was empty, whitespace or skipped); "
            "fix: point at files that contain text"
        )
    log(f"trained tokenizer: {tok.vocab_size} tokens ({time.perf_counter() - start:.1f}s)")
    return tok


def _batches(docs: Iterator[Document], skip: int) -> Iterator[tuple[list[Document], list[str]]]:
    """(documents, texts) groups of about BATCH_CHARS characters, after skipping `skip`
    documents already processed by an interrupted run."""
    batch: list[Document] = []
    chars = 0
    for i, doc in enumerate(docs):
        if i < skip:
            continue
        batch.append(doc)
        chars += len(doc.text)
        if chars >= BATCH_CHARS:
            yield batch, [d.text for d in batch]
            batch, chars = [], 0
    if batch:
        yield batch, [d.text for d in batch]


def _default_workers(sources: list[Source]) -> int:
    """All cores for inputs of PARALLEL_MIN_BYTES or more; one (in-process, where the Rust
    tokenizer still uses every core) for small ones, where starting worker processes would
    cost more than it saves."""
    size = sum(p.stat().st_size for s in sources for p in s.paths if p.is_file())
    return 1 if size < PARALLEL_MIN_BYTES else os.cpu_count() or 1


def _load_dedup(out: Path, manifest: dict, cleaning: CleaningConfig) -> tuple[Any, Any]:
    """The exact and near-duplicate indexes as of the last commit (empty for a new dataset)."""
    from budgetlm.data.clean.minhash import MinHashConfig, NearDedup

    files = manifest.get("dedup_files", [])
    exact = near = None
    if cleaning.exact_dedup:
        saved = [f for f in files if f.startswith("exact")]
        exact = (
            ExactDedup.from_state(dict(np.load(out / DEDUP_DIR / saved[0])))
            if saved
            else ExactDedup()
        )
    if cleaning.near_dedup:
        saved = [f for f in files if f.startswith("near")]
        near = (
            NearDedup.from_state(dict(np.load(out / DEDUP_DIR / saved[0])))
            if saved
            else NearDedup(MinHashConfig())
        )
    return exact, near


def _save_dedup(out: Path, commit: int, exact: Any, near: Any) -> list[str]:
    """Save the indexes under names unique to this commit (written before the manifest that
    names them, so a crash in between leaves the previous commit's files in force)."""
    files = []
    for name, index in (("exact", exact), ("near", near)):
        if index is None:
            continue
        (out / DEDUP_DIR).mkdir(exist_ok=True)
        file = f"{name}-{commit:06d}.npz"
        tmp = out / DEDUP_DIR / f".{file}.tmp"
        with tmp.open("wb") as f:
            np.savez(f, **index.state())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out / DEDUP_DIR / file)
        files.append(file)
    return files


def _write_manifest(out: Path, manifest: dict) -> None:
    """Replace manifest.json atomically (temp file, fsync, rename)."""
    tmp = out / f".{MANIFEST_FILE}.tmp-{os.getpid()}"
    with tmp.open("w", encoding="utf-8") as f:
        f.write(json.dumps(manifest, indent=2) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, out / MANIFEST_FILE)


def _quiet(_message: str) -> None:
    """The default log: say nothing."""
