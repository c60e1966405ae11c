"""Source specs, file discovery, document reading and every user error they can raise."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from budgetlm.data import sources
from budgetlm.data.documents import Document
from budgetlm.data.sources import (
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
    """A stand-in for budgetlm.data.builtin, so these tests do not depend on its corpora."""

    def builtin_documents(name: str) -> Iterator[Document]:
        yield Document("first prose text", "prose", "builtin:prose/0")
        yield Document("   \n", "prose", "builtin:prose/1")
        yield Document("second prose text", "prose", "builtin:prose/2", {"k": "v"})

    module = types.ModuleType("budgetlm.data.builtin")
    module.BUILTIN_NAMES = ("code", "prose", "arith")
    module.builtin_documents = builtin_documents
    monkeypatch.setitem(sys.modules, "budgetlm.data.builtin", module)


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
