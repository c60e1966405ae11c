"""A cache of prepared datasets keyed by their sources and settings, so that repeated runs on
the same text (e.g. the built-in default) do not re-tokenize it."""

from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import json
import os
import platform
from pathlib import Path

from budgetlm import __version__
from budgetlm.data.config import CleaningConfig
from budgetlm.data.ingest.sources import parse_sources
from budgetlm.data.prepare.build import MANIFEST_FORMAT, prepare_dataset, read_manifest
from budgetlm.data.store.tokenizer import Tokenizer
from budgetlm.errors import UserError
from budgetlm.io import Log


def default_cache_dir() -> Path:
    """$BUDGETLM_CACHE, else ~/.cache/budgetlm."""
    env = os.environ.get("BUDGETLM_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "budgetlm"


def cache_key(
    sources: list[str],
    vocab_size: int,
    val_fraction: float,
    text_field: str,
    seed: int,
    tokenizer: str | Path | None = None,
    cleaning: CleaningConfig | None = None,
) -> str:
    """A hash of everything that determines the prepared data: the settings, the tokenizer file
    when one is reused, and each source file's path, size and modification time (the Python
    version, for built-in corpora)."""
    items = []
    for source in parse_sources(sources):
        stats = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in source.paths]
        items.append({"spec": source.spec, "domain": source.domain, "files": stats})
    blob = {
        "sources": items,
        "vocab_size": vocab_size,
        "val_fraction": val_fraction,
        "text_field": text_field,
        "seed": seed,
        "cleaning": dataclasses.asdict(cleaning or CleaningConfig()),
        "format": MANIFEST_FORMAT,
        "tokenizer": Tokenizer.load(tokenizer).fingerprint if tokenizer is not None else None,
        "python": platform.python_version(),
        "budgetlm": __version__,
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:20]


def prepare_cached(
    sources: list[str],
    vocab_size: int,
    val_fraction: float,
    text_field: str,
    seed: int,
    cache_dir: str | Path | None = None,
    log: Log = print,
    tokenizer: str | Path | None = None,
    cleaning: CleaningConfig | None = None,
) -> Path:
    """The prepared dataset for these sources, built on first use and reused; with
    `tokenizer`, tokenized by that tokenizer instead of a newly trained one. An interrupted
    preparation is resumed; concurrent runs wait for each other on a lock file."""
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    key = cache_key(sources, vocab_size, val_fraction, text_field, seed, tokenizer, cleaning)
    path = root / "prepared" / key
    if _complete(path):
        log(f"using prepared data from {path}")
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{key}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run preparing the same data: wait for it
        if not _complete(path):
            log(f"preparing {' '.join(sources)} into {path}")
            prepare_dataset(
                sources,
                path,
                vocab_size=vocab_size,
                val_fraction=val_fraction,
                text_field=text_field,
                seed=seed,
                tokenizer=tokenizer,
                cleaning=cleaning,
                log=log,
            )
    return path


def _complete(path: Path) -> bool:
    try:
        return bool(read_manifest(path).get("complete"))
    except (OSError, UserError):
        return False
