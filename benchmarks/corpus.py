"""Deterministic synthetic corpora for the data benchmarks (prepare_speed, prepare_memory).

Documents are cut from the built-in prose and code (~6 MB of text): each is a unique header
line, then one to four line-aligned passages of 200-3,000 characters taken at random offsets,
separated by lines of words drawn at random from the prose's vocabulary. Every document is
distinct (exact dedup keeps them all), passages are recombined at random so the text is not
one repeated block, and the same seed always gives byte-identical files.
"""

from __future__ import annotations

import bisect
import json
import random
import re
import sys
from collections.abc import Iterator
from pathlib import Path

# Benchmark this checkout's code, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from budgetlm.data.ingest.builtin import builtin_documents  # noqa: E402

MIN_PASSAGE, MAX_PASSAGE = 200, 3000
FILLER_WORDS = (4, 24)


class DocumentMaker:
    """Makes distinct documents from the built-in corpora, deterministically from `seed`."""

    def __init__(self, seed: int = 0) -> None:
        prose = [d.text for d in builtin_documents("prose")]
        code = [d.text for d in builtin_documents("code")]
        self.pool = "\n".join(prose + code)
        self.line_starts = [0] + [m.end() for m in re.finditer("\n", self.pool)]
        self.words = sorted(set(re.findall(r"[A-Za-z]{3,14}", "\n".join(prose))))
        self.rng = random.Random(seed)

    def document(self, number: int) -> str:
        """Document `number`: its header makes it unique, the rest is recombined text."""
        rng = self.rng
        parts = [f"Record {number}: {' '.join(rng.choices(self.words, k=3))}\n\n"]
        lines = self.line_starts
        for _ in range(rng.randint(1, 4)):
            start = lines[rng.randrange(len(lines) - 1)]
            want = start + rng.randint(MIN_PASSAGE, MAX_PASSAGE)
            end = lines[min(len(lines) - 1, bisect.bisect(lines, want))]
            parts.append(self.pool[start:end])
            parts.append(" ".join(rng.choices(self.words, k=rng.randint(*FILLER_WORDS))) + ".\n")
        return "".join(parts)

    def documents(self, start: int = 0) -> Iterator[str]:
        """Documents start, start + 1, ... without end."""
        number = start
        while True:
            yield self.document(number)
            number += 1


def write_jsonl(path: Path, target_bytes: int, maker: DocumentMaker, start: int = 0) -> dict:
    """Write documents start, start + 1, ... as {"text": ...} lines to `path` until it holds
    `target_bytes` (streamed: memory does not grow with the file); returns {"documents",
    "bytes", "text_bytes"} (text_bytes: UTF-8 bytes of the texts alone)."""
    documents = size = text_bytes = 0
    with path.open("wb") as f:
        for text in maker.documents(start):
            line = (json.dumps({"text": text}, ensure_ascii=False) + "\n").encode("utf-8")
            f.write(line)
            size += len(line)
            text_bytes += len(text.encode("utf-8"))
            documents += 1
            if size >= target_bytes:
                break
    return {"documents": documents, "bytes": size, "text_bytes": text_bytes}


def write_corpus(
    folder: Path, total_bytes: int, file_bytes: int = 256 << 20, seed: int = 0
) -> dict:
    """A folder of JSONL files of about `file_bytes` each, `total_bytes` in all (documents
    distinct across files); returns {"files", "documents", "bytes", "text_bytes"}."""
    folder.mkdir(parents=True, exist_ok=True)
    maker = DocumentMaker(seed)
    totals = {"files": 0, "documents": 0, "bytes": 0, "text_bytes": 0}
    while totals["bytes"] < total_bytes:
        path = folder / f"part-{totals['files']:05d}.jsonl"
        want = min(file_bytes, total_bytes - totals["bytes"])
        counts = write_jsonl(path, want, maker, totals["documents"])
        totals["files"] += 1
        for key, value in counts.items():
            totals[key] += value
    return totals
