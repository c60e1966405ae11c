"""Tests for the built-in corpora: sizes, determinism, docstring stripping, exclusions."""

from __future__ import annotations

import ast
from itertools import islice
from pathlib import Path

import pytest

from budgetlm.data.ingest.arith import arith_documents
from budgetlm.data.ingest.builtin import (
    BUILTIN_NAMES,
    CODE_CAP_BYTES,
    MIN_DOCSTRING_WORDS,
    PROSE_CAP_BYTES,
    SKIPPED_DIRS,
    _stdlib_dir,
    _stripped_sources,
    builtin_documents,
    code_documents,
    prose_documents,
    strip_docstrings,
)
from budgetlm.data.ingest.documents import Document
from budgetlm.errors import UserError


def _size(docs: list[Document]) -> int:
    return sum(len(d.text.encode("utf-8")) for d in docs)


@pytest.fixture(scope="module")
def code() -> list[Document]:
    return list(builtin_documents("code"))


@pytest.fixture(scope="module")
def prose() -> list[Document]:
    return list(builtin_documents("prose"))


def test_names_and_unknown_name() -> None:
    assert BUILTIN_NAMES == ("code", "prose", "arith")
    with pytest.raises(UserError, match=r"did you mean 'prose'.*builtin:code, builtin:prose"):
        builtin_documents("prose2")


def test_code_is_capped_and_the_cap_binds(code: list[Document]) -> None:
    total = _size(code)
    assert 0 < total <= CODE_CAP_BYTES
    # The stdlib holds more than 4 MB of code, so the corpus stops only because the next
    # file in SHA-1 order would not fit.
    next_rel, next_text = next(islice(_stripped_sources(_stdlib_dir()), len(code), None))
    assert total + len(next_text.encode("utf-8")) > CODE_CAP_BYTES


def test_code_documents_are_labelled_unique_and_parse(code: list[Document]) -> None:
    assert {d.domain for d in code} == {"code"}
    sources = [d.source for d in code]
    assert len(set(sources)) == len(sources)
    assert all(s.startswith("builtin:code/") and s.endswith(".py") for s in sources)
    for doc in code:
        tree = ast.parse(doc.text)
        assert ast.get_docstring(tree) is None, doc.source


def test_code_has_no_test_suites_or_generated_tables(code: list[Document]) -> None:
    for doc in code:
        parts = doc.source.removeprefix("builtin:code/").split("/")
        assert not set(parts[:-1]) & SKIPPED_DIRS, doc.source
        assert parts[0] != "pydoc_data" and not parts[-1].startswith("_sysconfigdata")
        assert "gencodec.py" not in doc.text


def test_code_covers_the_library_not_its_first_letters(code: list[Document]) -> None:
    # SHA-1 order: the chosen ~third of the files start with letters across the alphabet.
    first_letters = {d.source.removeprefix("builtin:code/").lstrip("_")[0] for d in code}
    assert len(first_letters) >= 20


def test_module_docstrings_move_from_code_to_prose(
    code: list[Document], prose: list[Document]
) -> None:
    prose_text = "\n".join(d.text for d in prose)
    checked = 0
    for doc in code:
        rel = doc.source.removeprefix("builtin:code/")
        original = ast.get_docstring(ast.parse((_stdlib_dir() / rel).read_text("utf-8")))
        if original is None or len(original.split()) < MIN_DOCSTRING_WORDS:
            continue
        longest_line = max(original.split("\n"), key=len)
        assert longest_line not in doc.text, rel
        assert original in prose_text, rel
        checked += 1
    assert checked >= 10


def test_prose_is_capped_and_has_each_source_kind(prose: list[Document]) -> None:
    from pydoc_data.topics import topics

    assert 0 < _size(prose) <= PROSE_CAP_BYTES
    assert {d.domain for d in prose} == {"prose"}
    sources = [d.source for d in prose]
    assert len(set(sources)) == len(sources)
    assert sum(s.startswith("builtin:prose/pydoc_topics/") for s in sources) == len(topics)
    assert any(s.startswith("builtin:prose/docstrings/") for s in sources)
    assert "builtin:prose/LICENSE.txt" in sources
    zen = next(d.text for d in prose if d.source == "builtin:prose/this.py")
    assert zen.startswith("The Zen of Python, by Tim Peters")
    assert "Beautiful is better than ugly." in zen


def test_corpora_are_deterministic(code: list[Document], prose: list[Document]) -> None:
    assert list(builtin_documents("code")) == code
    assert list(builtin_documents("prose")) == prose


def test_arith_is_exposed_as_builtin() -> None:
    assert list(islice(builtin_documents("arith"), 30)) == list(islice(arith_documents(), 30))


def test_arith_skill_is_exposed_as_builtin() -> None:
    whole = [d for d in islice(arith_documents(), 110) if d.meta["skill"] == "add_2digit"]
    assert list(islice(builtin_documents("arith/add_2digit"), 10)) == whole


def test_strip_docstrings_keeps_code_and_indentation() -> None:
    source = (
        '"""Module doc."""\n'
        "import os\n"
        "\n"
        "class A:\n"
        "    '''Only a docstring.'''\n"
        "\n"
        "def f(x):\n"
        '    """Two\n'
        '    lines."""  # trailing comment\n'
        "    return x\n"
        "\n"
        'def g(): "inline"\n'
        'class Ä: "non-ASCII name before an inline docstring"\n'
        "def h():\n"
        "    x = 1\n"
        '    "not a docstring"\n'
    )
    expected = (
        "import os\n"
        "\n"
        "class A:\n"
        "    pass\n"
        "\n"
        "def f(x):\n"
        "    return x\n"
        "\n"
        "def g(): pass\n"
        "class Ä: pass\n"
        "def h():\n"
        "    x = 1\n"
        '    "not a docstring"\n'
    )
    assert strip_docstrings(source) == expected
    ast.parse(expected)


def _write(root: Path, rel: str, data: str | bytes) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")


LONG_DOC = " ".join(["word"] * MIN_DOCSTRING_WORDS)


def test_fake_stdlib_exclusions_and_docstring_dedup(tmp_path: Path) -> None:
    _write(tmp_path, "a.py", f'"""{LONG_DOC}"""\nx = 1\n')
    _write(tmp_path, "b.py", f'"""{LONG_DOC}"""\ndef f():\n    """Too short."""\n')
    for rel in ("test/test_a.py", "pkg/tests/t.py", "idlelib/idle_test/t.py"):
        _write(tmp_path, rel, "y = 2\n")
    _write(tmp_path, "site-packages/lib.py", "z = 3\n")
    _write(tmp_path, "latin1.py", b"s = '\xe9'\n")
    _write(tmp_path, "broken.py", "def (\n")
    _write(tmp_path, "encodings/cp0.py", '""" Codec generated with gencodec.py."""\nt = 1\n')
    code = list(code_documents(tmp_path))
    assert sorted(d.source for d in code) == ["builtin:code/a.py", "builtin:code/b.py"]
    assert {d.text for d in code} == {"x = 1\n", "def f():\n    pass\n"}

    prose = list(prose_documents(tmp_path))
    # The long docstring is kept once (the module first in SHA-1 order); "Too short." never.
    assert [d.text for d in prose] == [LONG_DOC + "\n"]


def test_fake_stdlib_text_files_must_read_as_english(tmp_path: Path) -> None:
    english = "This is the README of the package, and it is written in English for you."
    _write(tmp_path, "pkg/README.txt", english)
    _write(tmp_path, "pkg/Grammar.txt", "file_input: (NEWLINE | stmt)* ENDMARKER\n" * 5)
    page = f"<nav>Menu Index</nav><section><h1>Title¶</h1><p>{english}</p></section>"
    _write(tmp_path, "pkg/help.html", page)
    prose = {d.source: d.text for d in prose_documents(tmp_path)}
    assert prose == {
        "builtin:prose/pkg/README.txt": english + "\n",
        "builtin:prose/pkg/help.html": f"Title\n\n{english}\n",
    }
