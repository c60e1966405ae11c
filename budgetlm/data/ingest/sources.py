"""Data sources: parse `[DOMAIN=]LOCATION` specs and stream their documents.

A LOCATION is one of
- `builtin:NAME`, a corpus shipped with budgetlm; `builtin:arith/SKILL` is one arithmetic skill
  of `builtin:arith` (its domain defaults to the skill's name, so each skill can be a domain);
- `hf:NAME` or `hf:ORG/NAME[:SPLIT]`, a Hugging Face hub dataset streamed with `datasets` (split
  `train` by default; the only source that uses the network);
- a folder saved by `datasets`' `save_to_disk` (it holds `state.json` and `dataset_info.json`,
  or `dataset_dict.json`, whose `train` split is read);
- a file, a folder (read recursively, hidden entries skipped) or a glob (`*`, `**`).

A file's kind comes from its suffix once a `.gz`/`.zst` suffix is removed (those are
decompressed while reading): `.parquet` files give one document per row of the text column,
`.jsonl`/`.json`/`.ndjson` files one per JSON line, anything else is plain text, one document
per file, long files split at paragraph boundaries. Everything is streamed: no file is ever
read into memory whole.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import re
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any, BinaryIO

from budgetlm.data.ingest.documents import Document
from budgetlm.errors import UserError, closest

JSON_SUFFIXES = (".jsonl", ".json", ".ndjson")
PARQUET_SUFFIX = ".parquet"
COMPRESSION_TOOLS = {".gz": "gzip", ".zst": "zstd"}  # suffix -> the command that checks it
MAX_DOCUMENT_CHARS = 64 * 1024  # plain-text files longer than this are split into parts
BINARY_PROBE_BYTES = 8192  # a NUL byte in this many leading bytes marks a binary file
READ_CHUNK_BYTES = 1 << 18
ROWS_PER_BATCH = 1024  # rows per record batch read from parquet files and HF datasets
ZSTD_MAX_WINDOW = 1 << 31  # accept files made with `zstd --long=31`
BUILTIN_PREFIX = "builtin:"
HUB_PREFIX = "hf:"
HUB_DEFAULT_SPLIT = "train"
HF_DATASET_FILES = ("state.json", "dataset_info.json")  # what save_to_disk writes for a Dataset
HF_DATASET_DICT_FILE = "dataset_dict.json"  # ... and for a DatasetDict, beside a folder per split
GLOB_CHARS = frozenset("*?[")
_DOMAIN_RE = re.compile(r"[A-Za-z0-9_.-]+")
_HUB_ID_RE = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9_.-]*/)?[A-Za-z0-9][A-Za-z0-9_.-]*")
_SPLIT_RE = re.compile(r"[A-Za-z0-9_.-]+")
_BLANK_LINE_RE = re.compile(r"\n[^\S\n]*\n")
ICONV_HINT = "re-encode it as UTF-8 (e.g. `iconv -f latin1 -t utf-8 IN > OUT`) or exclude it"
TEXT_FIELD_HINT = "pass --text-field COLUMN naming the column that holds the text"
DATASETS_HINT = "install it with `pip install 'budgetlm[datasets]'`"


@dataclass
class Source:
    """One parsed source spec: where its documents come from and which domain they join."""

    spec: str  # what the user wrote
    domain: str
    # "builtin" | "hf_hub" | "hf_disk" | "text" | "jsonl" | "parquet" ("mixed" for a
    # folder/glob holding several file kinds)
    kind: str
    # resolved files, sorted: the data files whose size and mtime identify the data (the
    # *.arrow files of an hf_disk folder; empty for builtin and hf_hub)
    paths: list[Path]
    explicit: bool  # True when the user named a single file or dataset (not a folder/glob)
    location: str = ""  # the dataset folder to load (hf_disk) or the hub dataset id (hf_hub)
    split: str = ""  # the hub split to stream (hf_hub)


@dataclass
class SourceReport:
    """What reading a source found; filled while reading and stored in the manifest.

    `bytes` counts the text read: the (decompressed) bytes of text and JSON-lines files, the
    UTF-8 bytes of the text values of parquet files, HF datasets and built-in corpora.
    """

    files: int = 0
    documents: int = 0
    bytes: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"path", "reason"}


def parse_source(spec: str) -> Source:
    """Parse one `[DOMAIN=]LOCATION` spec and resolve its files (UserError on bad input)."""
    domain, location = _split_domain(spec)
    if location.startswith(BUILTIN_PREFIX):
        return _builtin_source(spec, domain, location[len(BUILTIN_PREFIX) :])
    if location.startswith(HUB_PREFIX):
        source = _hub_source(spec, domain, location[len(HUB_PREFIX) :])
        _check_domain(source.domain, spec)
        return source
    path = Path(location).expanduser()
    if path.is_file():
        source = Source(spec, domain or _stem(path), _kind([path]), [path], explicit=True)
    elif path.is_dir() and _is_hf_dataset(path):
        source = _hf_disk_source(spec, domain, path)
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
        docs = _read_builtin(source, report)
    elif source.kind == "hf_hub":
        docs = _read_hf_hub(source, text_field, report)
    elif source.kind == "hf_disk":
        docs = _read_hf_disk(source, text_field, report)
    else:
        docs = _read_files(source, text_field, report)
    for doc in docs:
        report.documents += 1
        yield doc


# --- parsing -------------------------------------------------------------------------------


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
    from budgetlm.data.ingest.builtin import BUILTIN_NAMES  # written alongside; imported lazily

    if name.startswith("arith/"):  # one skill of builtin:arith, as its own domain
        from budgetlm.data.ingest.arith import SKILLS

        skill = name.split("/", 1)[1]
        if skill not in SKILLS:
            raise UserError(
                f"source '{spec}': builtin:arith has no skill '{skill}'{closest(skill, SKILLS)}; "
                f"fix: use one of {', '.join(SKILLS)}"
            )
        source = Source(spec, domain or skill, "builtin", [], explicit=False)
        _check_domain(source.domain, spec)
        return source
    if name not in BUILTIN_NAMES:
        known = ", ".join(f"builtin:{n}" for n in BUILTIN_NAMES)
        raise UserError(
            f"source '{spec}': unknown built-in corpus '{name}'"
            f"{closest(name, BUILTIN_NAMES)}; fix: use one of {known}"
        )
    source = Source(spec, domain or name, "builtin", [], explicit=False)
    _check_domain(source.domain, spec)
    return source


def _hub_source(spec: str, domain: str | None, location: str) -> Source:
    """`hf:ORG/NAME[:SPLIT]`: checked here, opened (over the network) only when read."""
    name, _, split = location.partition(":")
    if not _HUB_ID_RE.fullmatch(name) or not _SPLIT_RE.fullmatch(split or HUB_DEFAULT_SPLIT):
        raise UserError(
            f"source '{spec}': '{HUB_PREFIX}{location}' is not a hub dataset id; fix: write "
            f"{HUB_PREFIX}ORG/NAME or {HUB_PREFIX}ORG/NAME:SPLIT, e.g. "
            f"{HUB_PREFIX}HuggingFaceFW/fineweb-edu:train"
        )
    _require_datasets(spec)
    default_domain = name.rsplit("/", 1)[-1]
    return Source(
        spec,
        domain or default_domain,
        "hf_hub",
        [],
        explicit=True,
        location=name,
        split=split or HUB_DEFAULT_SPLIT,
    )


def _is_hf_dataset(folder: Path) -> bool:
    """True for a folder written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`."""
    return _is_dataset_dict(folder) or all((folder / n).is_file() for n in HF_DATASET_FILES)


def _hf_disk_source(spec: str, domain: str | None, folder: Path) -> Source:
    """A saved HF dataset (a DatasetDict's `train` split); `paths` are its *.arrow files, so
    re-saving it changes the cache key."""
    _require_datasets(spec)
    data_folder = _train_split_folder(spec, folder) if _is_dataset_dict(folder) else folder
    arrow_files = sorted(data_folder.glob("*.arrow"))
    default_domain = folder.resolve().name
    return Source(
        spec,
        domain or default_domain,
        "hf_disk",
        arrow_files,
        explicit=True,
        location=str(data_folder),
    )


def _is_dataset_dict(folder: Path) -> bool:
    """True for a folder written by `DatasetDict.save_to_disk` (one sub-folder per split)."""
    return (folder / HF_DATASET_DICT_FILE).is_file()


def _train_split_folder(spec: str, folder: Path) -> Path:
    """The `train` split's folder of a saved DatasetDict, or a UserError naming its splits."""
    index = folder / HF_DATASET_DICT_FILE
    try:
        splits = list(json.loads(index.read_text(encoding="utf-8")).get("splits", []))
    except (json.JSONDecodeError, AttributeError, UnicodeDecodeError):
        raise UserError(
            f"source '{spec}': {index} is not a valid dataset index; fix: re-save the "
            "dataset with `DatasetDict.save_to_disk`"
        ) from None
    if HUB_DEFAULT_SPLIT not in splits:
        other = folder / splits[0] if splits else folder / "SPLIT"
        raise UserError(
            f"source '{spec}': the dataset '{folder}' has no '{HUB_DEFAULT_SPLIT}' split "
            f"(splits: {', '.join(splits) or 'none'}); fix: name one split's folder, e.g. "
            f"`{other}`"
        )
    return folder / HUB_DEFAULT_SPLIT


def _require_datasets(spec: str) -> None:
    """Hugging Face sources need the optional `datasets` package: say how to install it."""
    if importlib.util.find_spec("datasets") is None:
        raise UserError(
            f"source '{spec}': reading Hugging Face datasets needs the `datasets` package, "
            f"which is not installed; fix: {DATASETS_HINT}"
        )


def _folder_source(spec: str, domain: str | None, folder: Path) -> Source:
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not _hidden(p, folder))
    if not files:
        raise UserError(
            f"source '{spec}': folder '{folder}' holds no (non-hidden) files; "
            "fix: point at a folder with .txt/.jsonl/.parquet files (.gz/.zst too)"
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
    kinds = {_file_kind(p) for p in paths}
    return kinds.pop() if len(kinds) == 1 else "mixed"


def _file_kind(path: Path) -> str:
    """The file's kind ("parquet", "jsonl" or "text") from its suffix once .gz/.zst is removed."""
    suffix = Path(_uncompressed_name(path)).suffix.lower()
    if suffix == PARQUET_SUFFIX:
        return "parquet"
    return "jsonl" if suffix in JSON_SUFFIXES else "text"


def _uncompressed_name(path: Path) -> str:
    """The file name without a .gz/.zst suffix."""
    return path.stem if path.suffix.lower() in COMPRESSION_TOOLS else path.name


def _stem(path: Path) -> str:
    """A file's default domain: `notes` for notes.txt and for notes.jsonl.zst."""
    return Path(_uncompressed_name(path)).stem


def _sibling_hint(path: Path) -> str:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        return ""
    return closest(path.name, (p.name for p in parent.iterdir()))


# --- reading: built-in corpora and files ---------------------------------------------------


def _read_builtin(source: Source, report: SourceReport) -> Iterator[Document]:
    from budgetlm.data.ingest.builtin import builtin_documents  # written alongside; imported lazily

    for doc in builtin_documents(source.spec.split(BUILTIN_PREFIX, 1)[1]):
        if not doc.text.strip():
            continue
        report.bytes += len(doc.text.encode("utf-8"))
        yield Document(doc.text, source.domain, doc.source, doc.meta)


def _read_files(source: Source, text_field: str, report: SourceReport) -> Iterator[Document]:
    """Each file in turn, by its kind; a binary file is skipped in a folder, an error if named.

    A file that is meant as text but broken (not UTF-8, bad JSON, corrupt or truncated .gz/.zst,
    unreadable) is an error even in a folder: skipping it would silently drop data, and a
    truncation shows only at the end, after its first documents were yielded.
    """
    for path in source.paths:
        kind = _file_kind(path)
        nul_at = None if kind == "parquet" else _nul_offset(path)
        if nul_at is not None:
            if source.explicit:
                raise UserError(
                    f"{path}: binary file (NUL byte at offset {nul_at}), not text; "
                    "fix: name a UTF-8 text, JSON-lines or parquet file instead"
                )
            report.skipped.append({"path": str(path), "reason": f"binary (NUL byte at {nul_at})"})
            continue
        report.files += 1
        if kind == "parquet":
            yield from _read_parquet(path, source.domain, text_field, report)
        elif kind == "jsonl":
            yield from _read_jsonl(path, source.domain, text_field, report)
        else:
            yield from _read_text(path, source.domain, report)


@contextmanager
def _reading(path: Path) -> Iterator[BinaryIO]:
    """The file's bytes, decompressed on the fly for .gz/.zst; a file that cannot be read or
    decompressed is a UserError naming it."""
    try:
        raw = path.open("rb")
    except PermissionError:
        raise UserError(
            f"{path}: permission denied; fix: make it readable (`chmod u+r {path}`) or "
            "move it out of the source"
        ) from None
    with raw, _decompressing(raw, path) as stream:
        try:
            yield stream
        except (EOFError, zlib.error, gzip.BadGzipFile) as e:  # raised only by gzip streams
            raise _corrupt(path, str(e)) from None


def _decompressing(raw: BinaryIO, path: Path) -> BinaryIO:
    """A stream of `raw`'s decompressed bytes (`raw` itself for an uncompressed file)."""
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if suffix == ".zst":
        return io.BufferedReader(_ZstdStream(raw, path), READ_CHUNK_BYTES)
    return raw


def _corrupt(path: Path, reason: str) -> UserError:
    """The error for a .gz/.zst file that cannot be decompressed, naming a command to check it."""
    tool = COMPRESSION_TOOLS[path.suffix.lower()]
    return UserError(
        f"{path}: corrupt or truncated {tool} data ({reason}); fix: re-create or re-download "
        f"it (`{tool} -t {path}` checks it), or move it out of the source"
    )


class _ZstdStream(io.RawIOBase):
    """The decompressed bytes of a .zst file, frame after frame. Unlike zstandard's own
    stream_reader it notices a truncated last frame (e.g. a partial download)."""

    def __init__(self, raw: BinaryIO, path: Path) -> None:
        import zstandard  # imported here: only .zst files need it

        self._raw, self._path, self._zstd = raw, path, zstandard
        self._dctx = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
        self._frame: Any = None  # the decompressor of the frame in progress, if any
        self._pending = memoryview(b"")  # decompressed bytes not yet returned

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        """Fill `buffer` with decompressed bytes; 0 at the end of a complete file."""
        while not self._pending:
            data = self._raw.read(READ_CHUNK_BYTES)
            if not data:
                if self._frame is not None:
                    raise _corrupt(self._path, "the file ends inside a frame")
                return 0
            self._pending = memoryview(self._decompress(data))
        n = min(len(buffer), len(self._pending))
        buffer[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def _decompress(self, data: bytes) -> bytes:
        """Decompress `data`, starting a new frame wherever one ends."""
        out = []
        while data:
            if self._frame is None:
                self._frame = self._dctx.decompressobj()
            try:
                out.append(self._frame.decompress(data))
            except self._zstd.ZstdError as e:
                raise _corrupt(self._path, str(e)) from None
            if not self._frame.eof:
                break
            data, self._frame = self._frame.unused_data, None
        return b"".join(out)


def _nul_offset(path: Path) -> int | None:
    """Where the first NUL byte is in the file's leading (decompressed) bytes, if anywhere."""
    with _reading(path) as f:
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


def _text_chunks(path: Path, report: SourceReport) -> Iterator[str]:
    """Stream a file as decoded text without splitting a multi-byte character, counting the
    bytes read into `report`."""
    offset, carry = 0, b""
    with _reading(path) as f:
        while chunk := f.read(READ_CHUNK_BYTES):
            report.bytes += len(chunk)
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
    for chunk in _text_chunks(path, report):
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
    with _reading(path) as f:
        for lineno, raw in enumerate(f, start=1):
            report.bytes += len(raw)
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
            f"{type(obj).__name__} ({_file_kind_suffix(path)} files are read as JSON lines: "
            "one object per line); fix: write one object per line"
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


def _file_kind_suffix(path: Path) -> str:
    """The suffix that decided a file's kind (`.jsonl` for x.jsonl.gz)."""
    return Path(_uncompressed_name(path)).suffix


# --- reading: tables (parquet files, HF datasets on disk and on the hub) -------------------


def _read_parquet(
    path: Path, domain: str, text_field: str, report: SourceReport
) -> Iterator[Document]:
    """One document per row of the text column, read one record batch at a time."""
    import pyarrow as pa  # imported here: only parquet sources need it (0.3 s to import)
    import pyarrow.parquet as pq

    with _reading(path) as f:
        try:
            parquet = pq.ParquetFile(f)
            _check_column(parquet.schema_arrow.names, text_field, f"{path}: the parquet file")
            batches = parquet.iter_batches(batch_size=ROWS_PER_BATCH, columns=[text_field])
            columns = (batch.column(0).to_pylist() for batch in batches)
            yield from _text_rows(columns, str(path), domain, text_field, report)
        except pa.ArrowException as e:
            raise UserError(
                f"{path}: not a readable parquet file ({_one_line(e)}); fix: re-create or "
                "re-download it, or move it out of the source"
            ) from None


def _read_hf_disk(source: Source, text_field: str, report: SourceReport) -> Iterator[Document]:
    """One document per row of the text column of a dataset saved with `save_to_disk`
    (memory-mapped by `datasets`, read in batches)."""
    datasets = _import_datasets(source.spec)
    where = source.location
    try:
        dataset = datasets.load_from_disk(where)
    except (OSError, ValueError) as e:
        raise UserError(
            f"{where}: not a loadable Hugging Face dataset folder ({_one_line(e)}); fix: "
            "re-save it with `Dataset.save_to_disk`"
        ) from None
    _check_column(dataset.column_names, text_field, f"{where}: the dataset")
    report.files += len(source.paths)
    rows = dataset.select_columns([text_field]).with_format(None)
    columns = (batch[text_field] for batch in rows.iter(batch_size=ROWS_PER_BATCH))
    yield from _text_rows(columns, where, source.domain, text_field, report)


def _read_hf_hub(source: Source, text_field: str, report: SourceReport) -> Iterator[Document]:
    """One document per row of the text column of a hub dataset, streamed (nothing is
    downloaded beyond the rows read)."""
    datasets = _import_datasets(source.spec)
    where = f"{HUB_PREFIX}{source.location}:{source.split}"
    fix = (
        f"fix: check the id and split at https://huggingface.co/datasets/{source.location}, "
        "your network connection, and that HF_HUB_OFFLINE / HF_DATASETS_OFFLINE are not set"
    )
    try:
        dataset = datasets.load_dataset(source.location, split=source.split, streaming=True)
        if dataset.column_names is not None:
            _check_column(dataset.column_names, text_field, f"{where}: the dataset")
        columns = _hub_columns(dataset.iter(batch_size=ROWS_PER_BATCH), text_field, where)
        yield from _text_rows(columns, where, source.domain, text_field, report)
    except (OSError, ValueError) as e:  # network, authentication, unknown id or split
        reason = _one_line(e)
        raise UserError(f"{where}: cannot stream this hub dataset ({reason}); {fix}") from None


def _hub_columns(
    batches: Iterable[dict[str, list[Any]]], text_field: str, where: str
) -> Iterator[list[Any]]:
    """The text column of each streamed batch (a hub dataset may not declare its columns)."""
    for batch in batches:
        _check_column(list(batch), text_field, f"{where}: the dataset")
        yield batch[text_field]


def _import_datasets(spec: str) -> Any:
    """The `datasets` module, or a UserError saying how to install it."""
    _require_datasets(spec)
    import datasets  # imported here: optional, and slow to import

    return datasets


def _check_column(columns: list[str], text_field: str, where: str) -> None:
    """A UserError listing the columns present (and the closest) when the text one is missing."""
    if text_field not in columns:
        shown = ", ".join(columns[:20]) or "none"
        raise UserError(
            f"{where} has no column '{text_field}'{closest(text_field, columns)} (columns: "
            f"{shown}); fix: {TEXT_FIELD_HINT}"
        )


def _text_rows(
    columns: Iterable[list[Any]], where: str, domain: str, text_field: str, report: SourceReport
) -> Iterator[Document]:
    """One document per value of a text column given in batches (`where#rowN`, N from 0);
    nulls and blank texts are skipped and counted, a non-string value is a UserError."""
    last, nulls, blank = -1, 0, 0  # last: the index of the last row read
    for last, value in enumerate(chain.from_iterable(columns)):
        if value is None:
            nulls += 1
            continue
        if not isinstance(value, str):
            raise UserError(
                f"{where}#row{last}: column '{text_field}' holds {type(value).__name__}, "
                f"not text; fix: {TEXT_FIELD_HINT}"
            )
        report.bytes += len(value.encode("utf-8", "surrogatepass"))
        if value.strip():
            yield Document(value, domain, f"{where}#row{last}")
        else:
            blank += 1
    reasons = [
        (last < 0, "empty (no rows)"),
        (nulls > 0, f"{nulls} null values"),
        (blank > 0, f"{blank} rows with empty text"),
    ]
    report.skipped.extend({"path": where, "reason": reason} for hit, reason in reasons if hit)


def _one_line(error: BaseException) -> str:
    """An exception's message on one line (the CLI prints a UserError as one line)."""
    return " ".join(str(error).split()) or type(error).__name__
