"""Data sources: parse `[DOMAIN=]LOCATION` specs and stream their documents.

A LOCATION is `builtin:NAME`, a file, a folder (read recursively, hidden entries skipped) or
a glob (`*`, `**`). `.jsonl`/`.json`/`.ndjson` files are JSON lines; anything else is plain
text, one document per file, long files split at paragraph boundaries.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from budgetlm.data.documents import Document
from budgetlm.errors import UserError, closest

JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
MAX_DOCUMENT_CHARS = 64 * 1024  # plain-text files longer than this are split into parts
BINARY_PROBE_BYTES = 8192  # a NUL byte in this many leading bytes marks a binary file
READ_CHUNK_BYTES = 1 << 18
BUILTIN_PREFIX = "builtin:"
GLOB_CHARS = frozenset("*?[")
_DOMAIN_RE = re.compile(r"[A-Za-z0-9_.-]+")
_BLANK_LINE_RE = re.compile(r"\n[^\S\n]*\n")
ICONV_HINT = "re-encode it as UTF-8 (e.g. `iconv -f latin1 -t utf-8 IN > OUT`) or exclude it"


@dataclass
class Source:
    """One parsed source spec: where its documents come from and which domain they join."""

    spec: str  # what the user wrote
    domain: str
    kind: str  # "builtin" | "text" | "jsonl" ("mixed" for a folder/glob holding both)
    paths: list[Path]  # resolved files, sorted (empty for builtin)
    explicit: bool  # True when the user named a single file (not a folder/glob)


@dataclass
class SourceReport:
    """What reading a source found; filled while reading and stored in the manifest."""

    files: int = 0
    documents: int = 0
    bytes: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason"}


def parse_source(spec: str) -> Source:
    """Parse one `[DOMAIN=]LOCATION` spec and resolve its files (UserError on bad input)."""
    domain, location = _split_domain(spec)
    if location.startswith(BUILTIN_PREFIX):
        return _builtin_source(spec, domain, location[len(BUILTIN_PREFIX) :])
    path = Path(location).expanduser()
    if path.is_file():
        source = Source(spec, domain or path.stem, _kind([path]), [path], explicit=True)
    elif path.is_dir():
        source = _folder_source(spec, domain, path)
    elif GLOB_CHARS & set(location):
        source = _glob_source(spec, domain, location)
    else:
        raise UserError(
            f"source '{spec}': no such file or folder '{location}'{_sibling_hint(path)}; "
            "fix: check the path (relative paths start at the current directory)"
        )
    _check_domain(source.domain, spec)
    return source


def parse_sources(specs: list[str]) -> list[Source]:
    """Parse several specs; an empty list is a UserError."""
    if not specs:
        raise UserError(
            "no data sources given; fix: name at least one, e.g. `builtin:prose` "
            "or `mydomain=path/to/folder`"
        )
    return [parse_source(spec) for spec in specs]


def read_documents(
    source: Source, text_field: str = "text", report: SourceReport | None = None
) -> Iterator[Document]:
    """Stream the source's documents (whitespace-only ones skipped), counting into `report`."""
    report = report if report is not None else SourceReport()
    if source.kind == "builtin":
        yield from _read_builtin(source, report)
        return
    for path in source.paths:
        nul_at = _nul_offset(path)
        if nul_at is not None:
            if source.explicit:
                raise UserError(
                    f"{path}: binary file (NUL byte at offset {nul_at}), not text; "
                    "fix: name a UTF-8 text or JSON-lines file instead"
                )
            report.skipped.append({"path": str(path), "reason": f"binary (NUL byte at {nul_at})"})
            continue
        report.files += 1
        report.bytes += path.stat().st_size
        if path.suffix.lower() in JSON_SUFFIXES:
            docs = _read_jsonl(path, source.domain, text_field, report)
        else:
            docs = _read_text(path, source.domain, report)
        for doc in docs:
            report.documents += 1
            yield doc


def _split_domain(spec: str) -> tuple[str | None, str]:
    """Split `DOMAIN=LOCATION`; a spec that exists as a path, or whose prefix holds a path
    separator, has no domain."""
    head, sep, rest = spec.partition("=")
    if not sep or Path(spec).expanduser().exists() or "/" in head:
        return None, spec
    if not rest:
        raise UserError(
            f"source '{spec}': nothing after '='; fix: write DOMAIN=PATH or DOMAIN=builtin:NAME"
        )
    _check_domain(head, spec)
    return head, rest


def _check_domain(domain: str, spec: str) -> None:
    """Domains become file names, so they must be plain `[A-Za-z0-9_.-]+` not starting with '.'."""
    if not _DOMAIN_RE.fullmatch(domain) or domain.startswith("."):
        raise UserError(
            f"source '{spec}': domain name '{domain}' is not allowed (use letters, "
            "digits, '_', '-', '.', not starting with '.'); fix: prefix the source "
            "with a name, e.g. `mydomain=...`"
        )


def _builtin_source(spec: str, domain: str | None, name: str) -> Source:
    from budgetlm.data.builtin import BUILTIN_NAMES  # written alongside; imported lazily

    if name not in BUILTIN_NAMES:
        known = ", ".join(f"builtin:{n}" for n in BUILTIN_NAMES)
        raise UserError(
            f"source '{spec}': unknown built-in corpus '{name}'"
            f"{closest(name, BUILTIN_NAMES)}; fix: use one of {known}"
        )
    source = Source(spec, domain or name, "builtin", [], explicit=False)
    _check_domain(source.domain, spec)
    return source


def _folder_source(spec: str, domain: str | None, folder: Path) -> Source:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not _hidden(p, folder))
    if not files:
        raise UserError(
            f"source '{spec}': folder '{folder}' holds no (non-hidden) files; "
            "fix: point at a folder with .txt/.jsonl files"
        )
    return Source(spec, domain or folder.resolve().name, _kind(files), files, explicit=False)


def _glob_source(spec: str, domain: str | None, pattern: str) -> Source:
    parts = Path(pattern).expanduser().parts
    split = next(i for i, part in enumerate(parts) if GLOB_CHARS & set(part))
    base = Path(*parts[:split]) if split else Path(".")
    rest = "/".join(parts[split:])
    found = base.glob(rest) if base.is_dir() else iter(())
    files = sorted(p for p in found if p.is_file() and not _hidden(p, base))
    if not files:
        raise UserError(
            f"source '{spec}': the pattern '{pattern}' matches no files; fix: check "
            "the pattern (use `**/` to search sub-folders) or the folder name"
        )
    return Source(spec, domain or base.resolve().name, _kind(files), files, explicit=False)


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _kind(paths: list[Path]) -> str:
    kinds = {"jsonl" if p.suffix.lower() in JSON_SUFFIXES else "text" for p in paths}
    return kinds.pop() if len(kinds) == 1 else "mixed"


def _sibling_hint(path: Path) -> str:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        return ""
    return closest(path.name, (p.name for p in parent.iterdir()))


def _read_builtin(source: Source, report: SourceReport) -> Iterator[Document]:
    from budgetlm.data.builtin import builtin_documents  # written alongside; imported lazily

    for doc in builtin_documents(source.spec.split(BUILTIN_PREFIX, 1)[1]):
        if not doc.text.strip():
            continue
        report.documents += 1
        report.bytes += len(doc.text.encode("utf-8"))
        yield Document(doc.text, source.domain, doc.source, doc.meta)


def _nul_offset(path: Path) -> int | None:
    with path.open("rb") as f:
        head = f.read(BINARY_PROBE_BYTES)
    at = head.find(b"\0")
    return None if at < 0 else at


def _decode(data: bytes, path: Path, offset: int) -> str:
    """Strict UTF-8 decode; the error names the file and absolute byte offset."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(
            f"{path}: not valid UTF-8 at byte {offset + e.start} ({e.reason}); fix: {ICONV_HINT}"
        ) from None


def _text_chunks(path: Path) -> Iterator[str]:
    """Stream a file as decoded text without splitting a multi-byte character."""
    offset, carry = 0, b""
    with path.open("rb") as f:
        while chunk := f.read(READ_CHUNK_BYTES):
            data = carry + chunk
            cut = _complete_prefix(data)
            yield _decode(data[:cut], path, offset)
            offset, carry = offset + cut, data[cut:]
    if carry:
        yield _decode(carry, path, offset)


def _complete_prefix(data: bytes) -> int:
    """Length of `data` without a trailing, still-incomplete UTF-8 sequence."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # a lead or ASCII byte
            needed = 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else 4
            incomplete = byte >= 0xC0 and back < needed
            return len(data) - back if incomplete else len(data)
    return len(data)


def _read_text(path: Path, domain: str, report: SourceReport) -> Iterator[Document]:
    """One document per file; files over MAX_DOCUMENT_CHARS split at blank lines (`path#partN`)."""
    buffer, parts = "", 0
    for chunk in _text_chunks(path):
        buffer += chunk
        while len(buffer) > MAX_DOCUMENT_CHARS:
            cut = _paragraph_cut(buffer)
            parts += 1
            if buffer[:cut].strip():
                yield Document(buffer[:cut], domain, f"{path}#part{parts}")
            buffer = buffer[cut:]
    if parts:
        parts += 1
        if buffer.strip():
            yield Document(buffer, domain, f"{path}#part{parts}")
    elif buffer.strip():
        yield Document(buffer, domain, str(path))
    else:
        report.skipped.append({"path": str(path), "reason": "empty (whitespace only)"})


def _paragraph_cut(text: str) -> int:
    """Where to end a part of at most MAX_DOCUMENT_CHARS: after the last blank line, else the
    last newline, else the last space, else hard at the limit."""
    window = text[:MAX_DOCUMENT_CHARS]
    blanks = list(_BLANK_LINE_RE.finditer(window))
    if blanks:
        return blanks[-1].end()
    for sep in ("\n", " "):
        at = window.rfind(sep)
        if at > 0:
            return at + 1
    return MAX_DOCUMENT_CHARS


def _read_jsonl(
    path: Path, domain: str, text_field: str, report: SourceReport
) -> Iterator[Document]:
    """One document per JSON line (streamed); blank lines ignored, empty texts counted."""
    offset, empty = 0, 0
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            line = _decode(raw, path, offset)
            offset += len(raw)
            if not line.strip():
                continue
            text = _json_text(line, path, lineno, text_field)
            if text.strip():
                yield Document(text, domain, f"{path}:{lineno}")
            else:
                empty += 1
    if empty:
        report.skipped.append({"path": str(path), "reason": f"{empty} lines with empty text"})


def _json_text(line: str, path: Path, lineno: int, text_field: str) -> str:
    """The text field of one JSON line, or a UserError naming file:line, the field and the fix."""
    where = f"{path}:{lineno}"
    try:
        obj: Any = json.loads(line.rstrip("\r\n"))
    except json.JSONDecodeError as e:
        raise UserError(
            f"{where}: not valid JSON ({e.msg} at column {e.colno}); "
            "fix: correct or remove that line"
        ) from None
    if not isinstance(obj, dict):
        raise UserError(
            f"{where}: expected a JSON object with a '{text_field}' field, got "
            f"{type(obj).__name__} ({path.suffix} files are read as JSON lines: one "
            "object per line); fix: write one object per line"
        )
    if text_field not in obj:
        keys = ", ".join(sorted(obj)[:20]) or "none"
        raise UserError(
            f"{where}: no '{text_field}' field{closest(text_field, obj)} (keys "
            f"present: {keys}); fix: pass --text-field KEY naming the text field"
        )
    text = obj[text_field]
    if not isinstance(text, str):
        raise UserError(
            f"{where}: field '{text_field}' is {type(text).__name__}, not a string; "
            "fix: pass --text-field KEY naming a field that holds text"
        )
    return text
