"""Source specs, file discovery, document reading and every user error they can raise."""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from budgetlm.data.ingest import sources
from budgetlm.data.ingest.documents import Document
from budgetlm.data.ingest.sources import (
    MAX_DOCUMENT_CHARS,
    SourceReport,
    parse_source,
    parse_sources,
    read_documents,
)
from budgetlm.errors import UserError


def write(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def read_all(spec: str, **kwargs) -> tuple[list[Document], SourceReport]:
    report = SourceReport()
    docs = list(read_documents(parse_source(spec), report=report, **kwargs))
    return docs, report


@pytest.fixture
def fake_builtin(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stand-in for budgetlm.data.ingest.builtin, so these tests do not depend on its corpora."""

    def builtin_documents(name: str) -> Iterator[Document]:
        yield Document("first prose text", "prose", "builtin:prose/0")
        yield Document("   \n", "prose", "builtin:prose/1")
        yield Document("second prose text", "prose", "builtin:prose/2", {"k": "v"})

    module = types.ModuleType("budgetlm.data.ingest.builtin")
    module.BUILTIN_NAMES = ("code", "prose", "arith")
    module.builtin_documents = builtin_documents
    monkeypatch.setitem(sys.modules, "budgetlm.data.ingest.builtin", module)


# --- parsing -------------------------------------------------------------------------------


def test_single_file_default_domain_is_stem(tmp_path: Path) -> None:
    path = write(tmp_path / "notes.txt", "hello")
    source = parse_source(str(path))
    assert (source.domain, source.kind, source.paths, source.explicit) == (
        "notes",
        "text",
        [path],
        True,
    )


def test_domain_prefix_overrides_default(tmp_path: Path) -> None:
    path = write(tmp_path / "notes.jsonl", '{"text": "x"}\n')
    source = parse_source(f"legal={path}")
    assert (source.domain, source.kind, source.spec) == ("legal", "jsonl", f"legal={path}")


def test_folder_is_recursive_sorted_and_skips_hidden(tmp_path: Path) -> None:
    folder = tmp_path / "books"
    b = write(folder / "b.txt", "b")
    a = write(folder / "sub" / "a.jsonl", '{"text": "a"}\n')
    write(folder / ".hidden.txt", "h")
    write(folder / ".git" / "config", "h")
    source = parse_source(str(folder))
    assert source.paths == sorted([a, b])
    assert (source.domain, source.kind, source.explicit) == ("books", "mixed", False)


def test_glob_star_and_recursive_star_star(tmp_path: Path) -> None:
    top = write(tmp_path / "corpus" / "x.txt", "x")
    deep = write(tmp_path / "corpus" / "deep" / "y.txt", "y")
    write(tmp_path / "corpus" / "z.md", "z")
    write(tmp_path / "corpus" / ".cache" / "w.txt", "w")
    assert parse_source(str(tmp_path / "corpus" / "*.txt")).paths == [top]
    source = parse_source(str(tmp_path / "corpus" / "**" / "*.txt"))
    assert source.paths == sorted([top, deep])
    assert source.domain == "corpus"  # the last directory before the first glob part


def test_builtin_spec(fake_builtin: None) -> None:
    source = parse_source("builtin:prose")
    assert (source.domain, source.kind, source.paths) == ("prose", "builtin", [])
    assert parse_source("stories=builtin:prose").domain == "stories"


def test_one_arith_skill_is_a_source_whose_domain_is_the_skill() -> None:
    assert parse_source("builtin:arith/add_2digit").domain == "add_2digit"
    assert parse_source("x=builtin:arith/add_2digit").domain == "x"
    docs, _ = read_all("builtin:arith/mul_1digit")
    assert len(docs) == 400 and {d.meta["skill"] for d in docs} == {"mul_1digit"}
    assert {d.domain for d in docs} == {"mul_1digit"}
    with pytest.raises(UserError, match=r"builtin:arith has no skill 'add_2digits' \(did you"):
        parse_source("builtin:arith/add_2digits")


def test_builtin_documents_take_the_source_domain(fake_builtin: None) -> None:
    docs, report = read_all("stories=builtin:prose")
    assert [d.text for d in docs] == ["first prose text", "second prose text"]
    assert {d.domain for d in docs} == {"stories"}
    assert docs[1].meta == {"k": "v"}
    assert (report.files, report.documents) == (0, 2)
    assert report.bytes == len("first prose text") + len("second prose text")


def test_parse_sources_needs_at_least_one() -> None:
    with pytest.raises(UserError, match="no data sources"):
        parse_sources([])


# --- parse errors --------------------------------------------------------------------------


def test_missing_path_names_it_and_suggests_sibling(tmp_path: Path) -> None:
    write(tmp_path / "corpus.txt", "x")
    with pytest.raises(UserError, match=r"no such file or folder .*corpos\.txt.*corpus\.txt"):
        parse_source(str(tmp_path / "corpos.txt"))


def test_glob_matching_nothing(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", "x")
    with pytest.raises(UserError, match=r"'.*\*\.jsonl' matches no files"):
        parse_source(str(tmp_path / "*.jsonl"))


def test_folder_with_no_files(tmp_path: Path) -> None:
    write(tmp_path / "empty" / ".only_hidden", "x")
    with pytest.raises(UserError, match=r"folder '.*empty' holds no"):
        parse_source(str(tmp_path / "empty"))


def test_unknown_builtin_has_closest_hint(fake_builtin: None) -> None:
    with pytest.raises(UserError, match=r"unknown built-in corpus 'prsoe'.*did you mean 'prose'"):
        parse_source("builtin:prsoe")


@pytest.mark.parametrize("spec_domain", ["bad name", "a:b", ".hidden", "é"])
def test_bad_domain_prefix(tmp_path: Path, spec_domain: str) -> None:
    path = write(tmp_path / "ok.txt", "x")
    with pytest.raises(UserError, match=f"domain name '{spec_domain}' is not allowed.*fix:"):
        parse_source(f"{spec_domain}={path}")


def test_bad_default_domain_suggests_prefix(tmp_path: Path) -> None:
    path = write(tmp_path / "my notes.txt", "x")
    with pytest.raises(UserError, match=r"domain name 'my notes'.*mydomain="):
        parse_source(str(path))
    assert parse_source(f"notes={path}").domain == "notes"


def test_empty_after_equals(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="nothing after '='"):
        parse_source("code=")


# --- plain text ----------------------------------------------------------------------------


def test_text_one_document_per_file_whitespace_skipped(tmp_path: Path) -> None:
    write(tmp_path / "d" / "a.txt", "alpha\n")
    write(tmp_path / "d" / "b.txt", " \n\t\n")
    docs, report = read_all(str(tmp_path / "d"))
    assert [(d.text, d.domain, d.source) for d in docs] == [
        ("alpha\n", "d", str(tmp_path / "d" / "a.txt"))
    ]
    assert (report.files, report.documents, report.bytes) == (2, 1, 6 + 4)
    assert report.skipped == [
        {"path": str(tmp_path / "d" / "b.txt"), "reason": "empty (whitespace only)"}
    ]


def test_long_text_split_at_paragraphs(tmp_path: Path) -> None:
    paragraph = ("word " * 199 + "end.\n") * 3  # 3 lines of 1000 chars
    text = "\n".join([paragraph] * 100)  # ~300K characters, blank line between paragraphs
    path = write(tmp_path / "book.txt", text)
    docs, _ = read_all(str(path))
    assert len(docs) >= 5
    assert "".join(d.text for d in docs) == text
    assert all(len(d.text) <= MAX_DOCUMENT_CHARS for d in docs)
    assert all(d.text.startswith("word") for d in docs)  # every cut is at a paragraph start
    assert [d.source for d in docs] == [f"{path}#part{i + 1}" for i in range(len(docs))]


def test_long_text_without_blank_lines_still_split(tmp_path: Path) -> None:
    text = "x" * (MAX_DOCUMENT_CHARS * 2 + 10)
    docs, _ = read_all(str(write(tmp_path / "blob.txt", text)))
    assert [len(d.text) for d in docs] == [MAX_DOCUMENT_CHARS, MAX_DOCUMENT_CHARS, 10]


def test_multibyte_characters_across_read_chunks(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sources, "READ_CHUNK_BYTES", 5)
    text = "héllo wörld 😀 中文 ok"
    docs, _ = read_all(str(write(tmp_path / "u.txt", text)))
    assert [d.text for d in docs] == [text]


def test_explicit_binary_file_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path / "model.bin", b"abc\x00def")
    with pytest.raises(UserError, match=r"model\.bin: binary file \(NUL byte at offset 3\)"):
        read_all(str(path))


def test_binary_file_in_folder_is_skipped_and_recorded(tmp_path: Path) -> None:
    write(tmp_path / "d" / "a.txt", "text")
    write(tmp_path / "d" / "img.png", b"\x89PNG\x00\x00")
    docs, report = read_all(str(tmp_path / "d"))
    assert [d.text for d in docs] == ["text"]
    assert report.files == 1
    assert report.skipped == [
        {"path": str(tmp_path / "d" / "img.png"), "reason": "binary (NUL byte at 4)"}
    ]


@pytest.mark.parametrize("chunk", [3, 1 << 18])
def test_non_utf8_text_names_file_and_byte_offset(tmp_path: Path, monkeypatch, chunk) -> None:
    monkeypatch.setattr(sources, "READ_CHUNK_BYTES", chunk)
    write(tmp_path / "d" / "latin.txt", "café au lait".encode("latin-1"))
    with pytest.raises(UserError, match=r"latin\.txt: not valid UTF-8 at byte 3.*iconv"):
        read_all(str(tmp_path / "d"))


# --- JSON lines ----------------------------------------------------------------------------


def test_jsonl_documents_with_line_sources(tmp_path: Path) -> None:
    lines = [
        json.dumps({"text": "one"}),
        "",
        json.dumps({"text": "  "}),
        json.dumps({"text": "two ✓"}),
    ]
    path = write(tmp_path / "data.ndjson", "\n".join(lines) + "\n")
    docs, report = read_all(str(path))
    assert [(d.text, d.source) for d in docs] == [("one", f"{path}:1"), ("two ✓", f"{path}:4")]
    assert (report.files, report.documents) == (1, 2)
    assert report.skipped == [{"path": str(path), "reason": "1 lines with empty text"}]


def test_jsonl_custom_text_field(tmp_path: Path) -> None:
    path = write(tmp_path / "d.json", json.dumps({"content": "body", "id": 1}) + "\n")
    docs, _ = read_all(str(path), text_field="content")
    assert [d.text for d in docs] == ["body"]


def test_jsonl_is_streamed(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", json.dumps({"text": "ok"}) + "\nnot json\n")
    docs = read_documents(parse_source(str(path)))
    assert next(docs).text == "ok"  # the bad line 2 is not read yet
    with pytest.raises(UserError, match=r"d\.jsonl:2: not valid JSON"):
        next(docs)


@pytest.mark.parametrize(
    ("line", "pattern"),
    [
        ('{"text": "unterminated', r"d\.jsonl:2: not valid JSON \(.*\); fix: correct or remove"),
        ('["a", "b"]', r"d\.jsonl:2: expected a JSON object with a 'text' field, got list"),
        (
            '{"body": "x", "id": 3}',
            r"d\.jsonl:2: no 'text' field \(keys present: body, id\).*--text-field",
        ),
        ('{"text": 42}', r"d\.jsonl:2: field 'text' is int, not a string.*--text-field"),
    ],
)
def test_jsonl_line_errors(tmp_path: Path, line: str, pattern: str) -> None:
    path = write(tmp_path / "d.jsonl", '{"text": "fine"}\n' + line + "\n")
    with pytest.raises(UserError, match=pattern):
        read_all(str(path))


def test_jsonl_missing_field_hint(tmp_path: Path) -> None:
    path = write(tmp_path / "d.jsonl", '{"txt": "x"}\n')
    with pytest.raises(UserError, match=r"did you mean 'txt'"):
        read_all(str(path))


def test_jsonl_non_utf8_names_byte_offset(tmp_path: Path) -> None:
    first = b'{"text": "ok"}\n'
    path = write(tmp_path / "d.jsonl", first + '{"text": "é"}\n'.encode("latin-1"))
    with pytest.raises(UserError, match=rf"d\.jsonl: not valid UTF-8 at byte {len(first) + 10}"):
        read_all(str(path))


# --- compressed files (.gz, .zst) ----------------------------------------------------------


def compress(data: bytes, suffix: str) -> bytes:
    if suffix == ".gz":
        return gzip.compress(data)
    return zstandard.ZstdCompressor().compress(data)


def long_text() -> str:
    """About 3 parts' worth of multi-byte text, so parts are cut and characters span chunks."""
    paragraph = ("wörd " * 199 + "énd.\n") * 3
    return "\n".join([paragraph] * 60)


def jsonl_lines(n: int) -> str:
    return "".join(json.dumps({"text": f"line {i} ✓", "id": i}) + "\n" for i in range(n))


def summary(docs: list[Document], report: SourceReport) -> tuple:
    """What must not depend on how a file is stored: texts, counts and skip reasons."""
    reasons = [s["reason"] for s in report.skipped]
    return [d.text for d in docs], report.files, report.documents, report.bytes, reasons


def plain_content(name: str) -> bytes:
    """A long multi-byte text file, or JSON lines ending with an empty text."""
    if name.endswith(".txt"):
        return long_text().encode()
    return (jsonl_lines(50) + json.dumps({"text": " "}) + "\n").encode()


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
@pytest.mark.parametrize("name", ["notes.txt", "x.jsonl"])
def test_compressed_file_reads_like_its_plain_equivalent(
    tmp_path: Path, monkeypatch, suffix: str, name: str
) -> None:
    monkeypatch.setattr(sources, "READ_CHUNK_BYTES", 1000)  # many chunks, split characters
    data = plain_content(name)
    plain = write(tmp_path / "plain" / name, data)
    packed = write(tmp_path / "packed" / (name + suffix), compress(data, suffix))
    source = parse_source(str(packed))
    assert (source.kind, source.domain) == (parse_source(str(plain)).kind, Path(name).stem)
    assert summary(*read_all(str(packed))) == summary(*read_all(str(plain)))
    docs, _ = read_all(str(packed))
    assert docs[0].source.startswith(str(packed))


def test_folder_of_compressed_jsonl(tmp_path: Path) -> None:
    for i in range(3):
        data = jsonl_lines(4).replace("line", f"file{i}").encode()
        write(tmp_path / "web" / f"part{i}.jsonl.zst", compress(data, ".zst"))
    source = parse_source(str(tmp_path / "web"))
    assert (source.kind, source.domain, len(source.paths)) == ("jsonl", "web", 3)
    docs, report = read_all(str(tmp_path / "web"))
    assert [d.text for d in docs][:2] == ["file0 0 ✓", "file0 1 ✓"]
    assert (report.files, report.documents, report.bytes) == (3, 12, 3 * len(data))


def test_zst_of_several_frames_is_read_to_the_end(tmp_path: Path) -> None:
    frames = compress(b"first half, ", ".zst") + compress(b"second half", ".zst")
    docs, _ = read_all(str(write(tmp_path / "two.txt.zst", frames)))
    assert [d.text for d in docs] == ["first half, second half"]


def test_compressed_binary_in_folder_is_skipped_by_its_content(tmp_path: Path) -> None:
    write(tmp_path / "d" / "a.txt.gz", compress(b"text", ".gz"))
    write(tmp_path / "d" / "weights.bin.zst", compress(b"ab\x00cd", ".zst"))
    docs, report = read_all(str(tmp_path / "d"))
    assert [d.text for d in docs] == ["text"]
    assert report.skipped == [
        {"path": str(tmp_path / "d" / "weights.bin.zst"), "reason": "binary (NUL byte at 2)"}
    ]


@pytest.mark.parametrize(("suffix", "tool"), [(".gz", "gzip"), (".zst", "zstd")])
@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_compressed_file_names_it_even_in_a_folder(
    tmp_path: Path, suffix: str, tool: str, damage: str
) -> None:
    packed = compress(jsonl_lines(100).encode(), suffix)
    data = b"not compressed at all" if damage == "garbage" else packed[: len(packed) // 2]
    write(tmp_path / "d" / "ok.jsonl", jsonl_lines(1))
    write(tmp_path / "d" / f"bad.jsonl{suffix}", data)
    pattern = rf"bad\.jsonl\{suffix}: corrupt or truncated {tool} data .*fix: .*{tool} -t"
    with pytest.raises(UserError, match=pattern):
        read_all(str(tmp_path / "d"))


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_compressed_jsonl_is_streamed(tmp_path: Path, suffix: str) -> None:
    lines = "".join(
        json.dumps({"text": hashlib.sha256(str(i).encode()).hexdigest()}) + "\n"
        for i in range(3000)
    )
    packed = compress(lines.encode(), suffix)
    path = write(tmp_path / f"big.jsonl{suffix}", packed[:-100])  # its end is missing
    docs = read_documents(parse_source(str(path)))
    assert next(docs).source == f"{path}:1"  # read before the damaged end is reached
    with pytest.raises(UserError, match="truncated"):
        list(docs)


def test_unreadable_file_names_it_and_the_fix(tmp_path: Path, monkeypatch) -> None:
    path = write(tmp_path / "d" / "secret.txt.gz", compress(b"text", ".gz"))
    open_file = Path.open

    def denied(self: Path, *args, **kwargs):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return open_file(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", denied)
    with pytest.raises(UserError, match=r"secret\.txt\.gz: permission denied; fix: .*chmod u\+r"):
        read_all(str(tmp_path / "d"))


# --- parquet -------------------------------------------------------------------------------


def write_parquet(path: Path, columns: dict[str, list], rows_per_group: int = 1024) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path, row_group_size=rows_per_group)
    return path


def test_parquet_rows_are_documents(tmp_path: Path) -> None:
    texts = ["one ✓", None, "  ", "two"]
    path = write_parquet(tmp_path / "web.parquet", {"id": [1, 2, 3, 4], "text": texts})
    source = parse_source(str(path))
    assert (source.kind, source.domain, source.paths) == ("parquet", "web", [path])
    docs, report = read_all(str(path))
    assert [(d.text, d.source) for d in docs] == [
        ("one ✓", f"{path}#row0"),
        ("two", f"{path}#row3"),
    ]
    assert (report.files, report.documents) == (1, 2)
    assert report.bytes == len("one ✓".encode()) + 2 + len("two")  # text, not file, bytes
    assert [s["reason"] for s in report.skipped] == ["1 null values", "1 rows with empty text"]


def test_parquet_matches_jsonl_with_the_same_texts(tmp_path: Path) -> None:
    texts = [f"document {i} é" for i in range(10)]
    parquet = write_parquet(tmp_path / "a.parquet", {"body": texts}, rows_per_group=3)
    jsonl = write(tmp_path / "a.jsonl", "".join(json.dumps({"body": t}) + "\n" for t in texts))
    from_parquet = read_all(str(parquet), text_field="body")
    from_jsonl = read_all(str(jsonl), text_field="body")
    assert [d.text for d in from_parquet[0]] == [d.text for d in from_jsonl[0]]
    assert (from_parquet[1].files, from_parquet[1].documents) == (1, 10)


def test_parquet_without_the_column_lists_columns(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "a.parquet", {"id": [1], "txt": ["x"]})
    pattern = (
        r"a\.parquet: the parquet file has no column 'text' \(did you mean 'txt'\?\) "
        r"\(columns: id, txt\); fix: pass --text-field COLUMN"
    )
    with pytest.raises(UserError, match=pattern):
        read_all(str(path))


def test_parquet_column_that_is_not_text(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "a.parquet", {"text": [None, 7]})
    with pytest.raises(UserError, match=r"a\.parquet#row1: column 'text' holds int, not text"):
        read_all(str(path))


def test_corrupt_parquet_names_the_file(tmp_path: Path) -> None:
    write(tmp_path / "d" / "a.parquet", b"PAR1 but not really")
    with pytest.raises(UserError, match=r"a\.parquet: not a readable parquet file \(.*\); fix:"):
        read_all(str(tmp_path / "d"))


def test_parquet_is_read_one_batch_at_a_time(tmp_path: Path, monkeypatch) -> None:
    path = write_parquet(tmp_path / "a.parquet", {"text": [f"t{i}" for i in range(10)]}, 2)
    monkeypatch.setattr(sources, "ROWS_PER_BATCH", 2)
    pulled: list[int] = []
    iter_batches = pq.ParquetFile.iter_batches

    def counted(self, *args, **kwargs):
        for batch in iter_batches(self, *args, **kwargs):
            pulled.append(batch.num_rows)
            yield batch

    monkeypatch.setattr(pq.ParquetFile, "iter_batches", counted)
    docs = read_documents(parse_source(str(path)))
    assert next(docs).text == "t0"
    assert pulled == [2]
    assert len(list(docs)) == 9 and pulled == [2] * 5


def test_empty_parquet_yields_nothing_and_says_so(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "a.parquet", {"text": pa.array([], pa.string())})
    docs, report = read_all(str(path))
    assert (docs, report.files, report.documents) == ([], 1, 0)
    assert report.skipped == [{"path": str(path), "reason": "empty (no rows)"}]


def test_folder_of_parquet_and_text_is_mixed(tmp_path: Path) -> None:
    write_parquet(tmp_path / "d" / "a.parquet", {"text": ["from parquet"]})
    write(tmp_path / "d" / "b.txt.gz", compress(b"from text", ".gz"))
    assert parse_source(str(tmp_path / "d")).kind == "mixed"
    docs, report = read_all(str(tmp_path / "d"))
    assert [d.text for d in docs] == ["from parquet", "from text"]
    assert (report.files, report.documents) == (2, 2)


# --- Hugging Face datasets: saved to disk, and on the hub ----------------------------------


@pytest.fixture
def hf_datasets():
    return pytest.importorskip("datasets")


def save_dataset(hf_datasets, folder: Path, columns: dict[str, list]) -> Path:
    hf_datasets.Dataset.from_dict(columns).save_to_disk(str(folder))
    return folder


def test_saved_dataset_rows_are_documents(tmp_path: Path, hf_datasets) -> None:
    folder = save_dataset(hf_datasets, tmp_path / "wiki", {"text": ["a ✓", None, "b"]})
    source = parse_source(str(folder))
    assert (source.kind, source.domain, source.explicit) == ("hf_disk", "wiki", True)
    assert source.paths == sorted(folder.glob("*.arrow")) and source.paths
    docs, report = read_all(str(folder))
    assert [(d.text, d.source) for d in docs] == [
        ("a ✓", f"{folder}#row0"),
        ("b", f"{folder}#row2"),
    ]
    assert (report.files, report.documents, report.bytes) == (1, 2, len("a ✓".encode()) + 1)
    assert report.skipped == [{"path": str(folder), "reason": "1 null values"}]


def test_saved_dataset_dict_reads_its_train_split(tmp_path: Path, hf_datasets) -> None:
    splits = {
        "train": hf_datasets.Dataset.from_dict({"text": ["train text"]}),
        "test": hf_datasets.Dataset.from_dict({"text": ["test text"]}),
    }
    hf_datasets.DatasetDict(splits).save_to_disk(str(tmp_path / "corpus"))
    source = parse_source(f"c={tmp_path / 'corpus'}")
    assert source.paths == sorted((tmp_path / "corpus" / "train").glob("*.arrow"))
    docs, _ = read_all(f"c={tmp_path / 'corpus'}")
    assert [(d.text, d.domain) for d in docs] == [("train text", "c")]


def test_saved_dataset_dict_without_train_names_its_splits(tmp_path: Path, hf_datasets) -> None:
    test = hf_datasets.Dataset.from_dict({"text": ["x"]})
    hf_datasets.DatasetDict({"test": test, "dev": test}).save_to_disk(str(tmp_path / "c"))
    pattern = r"has no 'train' split \(splits: test, dev\); fix: name one split's folder.*c/test"
    with pytest.raises(UserError, match=pattern):
        parse_source(str(tmp_path / "c"))


def test_saved_dataset_without_the_column(tmp_path: Path, hf_datasets) -> None:
    folder = save_dataset(hf_datasets, tmp_path / "wiki", {"content": ["x"], "id": [1]})
    pattern = r"wiki: the dataset has no column 'text' .*\(columns: content, id\); fix: .*--text"
    with pytest.raises(UserError, match=pattern):
        read_all(str(folder))
    assert [d.text for d in read_all(str(folder), text_field="content")[0]] == ["x"]


def test_hf_sources_without_datasets_say_how_to_install_it(tmp_path: Path, monkeypatch) -> None:
    write(tmp_path / "saved" / "state.json", "{}")
    write(tmp_path / "saved" / "dataset_info.json", "{}")
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if not installed
    for spec in [str(tmp_path / "saved"), "hf:org/name"]:
        with pytest.raises(UserError, match=r"needs the `datasets` package.*budgetlm\[datasets\]"):
            parse_source(spec)


def test_hub_spec(hf_datasets) -> None:
    source = parse_source("web=hf:HuggingFaceFW/fineweb-edu:sample")
    assert (source.domain, source.kind, source.paths, source.split) == (
        "web",
        "hf_hub",
        [],
        "sample",
    )
    assert source.location == "HuggingFaceFW/fineweb-edu"
    plain = parse_source("hf:HuggingFaceFW/fineweb-edu")
    assert (plain.domain, plain.split) == ("fineweb-edu", "train")


@pytest.mark.parametrize("spec", ["hf:", "hf:a/b/c", "hf:org/name:bad split", "hf:-x"])
def test_bad_hub_id(spec: str) -> None:
    with pytest.raises(UserError, match=r"is not a hub dataset id; fix: write hf:ORG/NAME"):
        parse_source(spec)


def test_hub_dataset_is_streamed(monkeypatch, hf_datasets) -> None:
    calls = []

    def load_dataset(name: str, split: str, streaming: bool):
        calls.append((name, split, streaming))
        rows = {"text": ["first", None, "second"], "id": [1, 2, 3]}
        return hf_datasets.Dataset.from_dict(rows).to_iterable_dataset()

    monkeypatch.setattr(hf_datasets, "load_dataset", load_dataset)
    docs, report = read_all("web=hf:org/corpus:dev")
    assert calls == [("org/corpus", "dev", True)]
    where = "hf:org/corpus:dev"
    assert [(d.text, d.domain, d.source) for d in docs] == [
        ("first", "web", f"{where}#row0"),
        ("second", "web", f"{where}#row2"),
    ]
    assert (report.files, report.documents, report.bytes) == (0, 2, 11)


class UndeclaredStream:
    """A streamed dataset that, like some on the hub, does not declare its columns."""

    column_names = None

    def iter(self, batch_size: int) -> Iterator[dict[str, list]]:
        yield {"body": ["x"]}


def test_hub_dataset_without_the_column(monkeypatch, hf_datasets) -> None:
    monkeypatch.setattr(hf_datasets, "load_dataset", lambda *args, **kwargs: UndeclaredStream())
    with pytest.raises(UserError, match=r"hf:o/n:train: the dataset has no column 'text'"):
        read_all("hf:o/n")


def test_hub_dataset_offline_fails_with_a_clear_error(monkeypatch, hf_datasets) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    # both libraries read these variables when imported, which may have happened already
    monkeypatch.setattr(hf_datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    pattern = (
        r"hf:nobody/nothing:train: cannot stream this hub dataset \(.*\); fix: check the id "
        r"and split at https://huggingface\.co/datasets/nobody/nothing, .*HF_HUB_OFFLINE"
    )
    with pytest.raises(UserError, match=pattern):
        read_all("hf:nobody/nothing")
