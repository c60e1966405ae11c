"""A cache of prepared datasets keyed by their sources and settings, so that repeated runs on
the same text (e.g. the built-in default) do not re-tokenize it."""

from __future__ import annotations

import hashlib
import json
import os
import platform
from collections.abc import Callable
from pathlib import Path

from budgetlm import __version__
from budgetlm.data.prepare import prepare_dataset
from budgetlm.data.sources import parse_sources
from budgetlm.data.tokenizer import Tokenizer
from budgetlm.errors import UserError


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
    log: Callable[[str], None] = print,
    tokenizer: str | Path | None = None,
) -> Path:
    """The prepared dataset for these sources, built on first use (atomically) and reused;
    with `tokenizer`, tokenized by that tokenizer instead of a newly trained one."""
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    key = cache_key(sources, vocab_size, val_fraction, text_field, seed, tokenizer)
    path = root / "prepared" / key
    if (path / "manifest.json").is_file():
        log(f"using prepared data from {path}")
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    log(f"preparing {' '.join(sources)} into {path}")
    try:
        prepare_dataset(
            sources,
            path,
            vocab_size=vocab_size,
            val_fraction=val_fraction,
            text_field=text_field,
            seed=seed,
            tokenizer=tokenizer,
            log=log,
        )
    except (OSError, UserError):
        if not (path / "manifest.json").is_file():  # another process may have won the race
            raise
    return path
