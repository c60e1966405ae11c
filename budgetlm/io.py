"""Small shared I/O pieces: the Log callable every command takes, and atomic text writes."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

Log = Callable[[str], None]
"""Where a command says what it does: `print` by default, a file or a no-op in workers."""


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write a text file so that readers see the old or the new content, never a part."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
