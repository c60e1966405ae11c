"""The JSON file that keeps measurements of this machine between runs (a damaged file is only
a cache: it is measured again)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from budgetlm.data.prepare.cache import default_cache_dir

MEASUREMENTS_FILE = "machine.json"


def default_measurements_file() -> Path:
    """Where measurements are cached: machine.json in the budgetlm cache directory."""
    return default_cache_dir() / MEASUREMENTS_FILE


def read_measurements(path: Path | None) -> dict:
    if path is None or not path.is_file():
        return {}
    try:
        cache = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return cache if isinstance(cache, dict) else {}


def write_measurement(path: Path | None, key: str, value: dict) -> None:
    """Add one measurement, atomically (temp file, then rename)."""
    if path is None:
        return
    cache = read_measurements(path)
    cache[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(cache, indent=1), encoding="utf-8")
    os.replace(tmp, path)
