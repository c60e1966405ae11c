"""Built-in corpora every Python install can produce offline: stdlib code, English prose, arith.

`builtin:code` is the standard library's own source with docstrings removed; `builtin:prose`
is the English the install ships (pydoc topics, those docstrings, licence and IDLE texts), so
the two domains do not overlap. The same install always yields byte-identical documents.
"""

from __future__ import annotations

import ast
import codecs
import hashlib
import html.parser
import inspect
import os
import re
import sysconfig
from collections.abc import Iterable, Iterator
from pathlib import Path

from budgetlm.data.ingest.arith import arith_documents
from budgetlm.data.ingest.documents import Document
from budgetlm.errors import UserError, closest

BUILTIN_NAMES: tuple[str, ...] = ("code", "prose", "arith")

CODE_CAP_BYTES = 4_000_000
"""builtin:code stops before the file that would take it past this many UTF-8 bytes."""

PROSE_CAP_BYTES = 4_000_000
"""builtin:prose stops before the document that would take it past this many UTF-8 bytes."""

MIN_DOCSTRING_WORDS = 20
"""Shorter docstrings ("Return self.") are signatures in words, not prose."""

MIN_FUNCTION_WORD_SHARE = 0.13
"""English prose is ~20-30% function words (the, of, and...); grammars and data ~10% or less."""

SKIPPED_DIRS = frozenset({"test", "tests", "idle_test", "site-packages", "__pycache__"})
"""Directories never read: test suites (test/, tests/, idle_test/, lib2to3/tests) and add-ons."""

_FUNCTION_WORDS = frozenset(
    {"the", "of", "and", "to", "a", "an", "in", "is", "are", "be", "it", "that", "this", "for"}
    | {"as", "with", "on", "by", "or", "not", "from", "at", "you"}
)
_DOCSTRING_OWNERS = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
_BLOCK_FIELDS = ("body", "orelse", "finalbody", "handlers", "cases")
_BLOCK_NODES = (
    *_DOCSTRING_OWNERS[1:],
    ast.If,
    ast.For,
    ast.AsyncFor,
    ast.While,
    ast.With,
    ast.AsyncWith,
    ast.Try,
    ast.TryStar,
    ast.Match,
    ast.ExceptHandler,
    ast.match_case,
)
_HIDDEN_TAGS = frozenset({"head", "script", "style"})
_CONTENT_TAGS = frozenset({"main", "article", "section"})
_BLOCK_TAGS = frozenset(
    {"p", "div", "br", "li", "dt", "dd", "pre", "tr", "section", "article"}
    | {"h1", "h2", "h3", "h4", "h5", "h6"}
)


def builtin_documents(name: str) -> Iterator[Document]:
    """The documents of built-in corpus `name` ("code", "prose" or "arith", no prefix);
    "arith/SKILL" is one arithmetic skill's part of "arith" (to make each skill a domain)."""
    if name.startswith("arith/"):
        return arith_documents(skills=[name.split("/", 1)[1]])
    if name == "code":
        return code_documents()
    if name == "prose":
        return prose_documents()
    if name == "arith":
        return arith_documents()
    raise UserError(
        f"unknown built-in corpus 'builtin:{name}'{closest(name, BUILTIN_NAMES)}; "
        f"valid ones: {', '.join('builtin:' + n for n in BUILTIN_NAMES)}"
    )


def code_documents(stdlib: Path | None = None) -> Iterator[Document]:
    """One document per stdlib .py file, docstrings stripped, in SHA-1-of-path order, capped."""
    docs = (
        Document(text=text, domain="code", source=f"builtin:code/{rel}")
        for rel, text in _stripped_sources(stdlib or _stdlib_dir())
    )
    return _capped(docs, CODE_CAP_BYTES)


def prose_documents(stdlib: Path | None = None) -> Iterator[Document]:
    """The install's English: the Zen, licence/IDLE texts, pydoc topics, stdlib docstrings."""
    root = stdlib or _stdlib_dir()

    def all_docs() -> Iterator[Document]:
        yield from _zen_documents(root)
        yield from _text_file_documents(root)
        yield from _pydoc_topic_documents(root)
        yield from _docstring_documents(root)

    return _capped(all_docs(), PROSE_CAP_BYTES)


def strip_docstrings(source: str, tree: ast.Module | None = None) -> str:
    """`source` without its module/class/function docstrings; bodies left empty get `pass`."""
    tree = ast.parse(source) if tree is None else tree
    lines = source.split("\n")
    for owner, expr in reversed(_docstring_sites(tree)):
        _remove_docstring(lines, expr, needs_pass=_needs_pass(owner))
    return "\n".join(lines)


def _stdlib_dir() -> Path:
    """The running interpreter's standard-library directory."""
    return Path(sysconfig.get_paths()["stdlib"])


def _capped(docs: Iterable[Document], cap_bytes: int) -> Iterator[Document]:
    """Yield documents until the next one would take the total past `cap_bytes`."""
    total = 0
    for doc in docs:
        total += len(doc.text.encode("utf-8"))
        if total > cap_bytes:
            return
        yield doc


def _sha1_order(rel: str) -> str:
    """Sort key that spreads a size cap over the whole library instead of its first letters."""
    return hashlib.sha1(rel.encode("utf-8")).hexdigest()


def _walk_files(root: Path) -> Iterator[str]:
    """Relative POSIX paths of every file under `root` outside SKIPPED_DIRS, sorted."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIPPED_DIRS]
        rel_dir = Path(dirpath).relative_to(root).as_posix()
        found += [f if rel_dir == "." else f"{rel_dir}/{f}" for f in filenames]
    return iter(sorted(found))


def _read_utf8(path: Path) -> str | None:
    """The file's text with newlines normalised to \\n, or None if it is not valid UTF-8."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _is_generated(rel: str, text: str) -> bool:
    """Generated data modules: codec tables, build-time config, the pydoc topics (prose)."""
    name = rel.rsplit("/", 1)[-1]
    return (
        "gencodec.py" in text[:500]
        or name.startswith("_sysconfigdata")
        or rel.startswith(("config-", "pydoc_data/"))
    )


def _stdlib_sources(root: Path) -> Iterator[tuple[str, str]]:
    """(relative path, text) of the stdlib's hand-written UTF-8 .py files, in SHA-1 order."""
    for rel in sorted((r for r in _walk_files(root) if r.endswith(".py")), key=_sha1_order):
        text = _read_utf8(root / rel)
        if text is not None and not _is_generated(rel, text):
            yield rel, text


def _parsed_sources(root: Path) -> Iterator[tuple[str, str, ast.Module]]:
    """_stdlib_sources with their syntax trees; files this Python cannot parse are skipped."""
    for rel, text in _stdlib_sources(root):
        try:
            tree = ast.parse(text)
        except (SyntaxError, ValueError):
            continue
        yield rel, text, tree


def _stripped_sources(root: Path) -> Iterator[tuple[str, str]]:
    """(relative path, code without docstrings), skipping files left with no code at all."""
    for rel, text, tree in _parsed_sources(root):
        code = strip_docstrings(text, tree)
        if code.strip():
            yield rel, code


def _docstring_sites(tree: ast.Module) -> list[tuple[ast.AST, ast.Expr]]:
    """(owner, docstring statement) for every module/class/function docstring, in source order."""
    sites = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        body = getattr(node, "body", None)
        if isinstance(node, _DOCSTRING_OWNERS) and body and _is_docstring(body[0]):
            sites.append((node, body[0]))
        for field in _BLOCK_FIELDS:
            # Only nodes with blocks can hold a def or class; skipping the rest keeps this fast.
            stack += [c for c in getattr(node, field, ()) if isinstance(c, _BLOCK_NODES)]
    return sorted(sites, key=lambda site: (site[1].lineno, site[1].col_offset))


def _is_docstring(stmt: ast.stmt) -> bool:
    """Whether a body's first statement is a docstring (a bare string constant)."""
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def _needs_pass(owner: ast.AST) -> bool:
    """A class or function whose only statement is its docstring needs `pass` to stay valid."""
    return not isinstance(owner, ast.Module) and len(owner.body) == 1


def _remove_docstring(lines: list[str], expr: ast.Expr, needs_pass: bool) -> None:
    """Delete the docstring's lines, or replace it in place when it shares a line with code."""
    first, last = expr.lineno - 1, expr.end_lineno - 1
    # AST column offsets count UTF-8 bytes, not characters.
    head = lines[first].encode("utf-8")[: expr.col_offset].decode("utf-8")
    tail = lines[last].encode("utf-8")[expr.end_col_offset :].decode("utf-8")
    if not head.strip() and (not tail.strip() or tail.lstrip().startswith("#")):
        lines[first : last + 1] = [head + "pass"] if needs_pass else []
    else:
        lines[first : last + 1] = [head + "pass" + tail]


def _docstrings(tree: ast.Module) -> Iterator[str]:
    """The tree's docstrings, cleaned with inspect.cleandoc, in source order."""
    for _, expr in _docstring_sites(tree):
        yield inspect.cleandoc(expr.value.value)


def _docstring_documents(root: Path) -> Iterator[Document]:
    """One document per module: its long docstrings, each kept once across the whole corpus."""
    seen: set[str] = set()
    for rel, _, tree in _parsed_sources(root):
        kept = []
        for doc in _docstrings(tree):
            if len(doc.split()) >= MIN_DOCSTRING_WORDS and doc not in seen:
                seen.add(doc)
                kept.append(doc)
        if kept:
            text = "\n\n".join(kept) + "\n"
            yield Document(text=text, domain="prose", source=f"builtin:prose/docstrings/{rel}")


def _zen_documents(root: Path) -> Iterator[Document]:
    """The Zen of Python, decoded from `this.py` without importing it (importing prints it)."""
    text = _read_utf8(root / "this.py") if (root / "this.py").is_file() else None
    if text is None:
        return
    for stmt in ast.parse(text).body:
        if (
            isinstance(stmt, ast.Assign)
            and [getattr(t, "id", None) for t in stmt.targets] == ["s"]
            and isinstance(stmt.value, ast.Constant)
        ):
            zen = codecs.decode(stmt.value.value, "rot13") + "\n"
            yield Document(text=zen, domain="prose", source="builtin:prose/this.py")


def _pydoc_topic_documents(root: Path) -> Iterator[Document]:
    """One document per pydoc help topic, read from pydoc_data/topics.py, sorted by topic."""
    path = root / "pydoc_data" / "topics.py"
    text = _read_utf8(path) if path.is_file() else None
    if text is None:
        return
    for stmt in ast.parse(text).body:
        if isinstance(stmt, ast.Assign) and getattr(stmt.targets[0], "id", None) == "topics":
            topics = ast.literal_eval(stmt.value)
            for key in sorted(topics):
                yield Document(
                    text=topics[key].strip() + "\n",
                    domain="prose",
                    source=f"builtin:prose/pydoc_topics/{key}",
                )


def _looks_english(text: str) -> bool:
    """Enough function words (the, of, and...) for English prose; see MIN_FUNCTION_WORD_SHARE."""
    tokens = text.lower().split()
    share = sum(t in _FUNCTION_WORDS for t in tokens) / max(len(tokens), 1)
    return share >= MIN_FUNCTION_WORD_SHARE


def _text_file_documents(root: Path) -> Iterator[Document]:
    """Shipped .txt/.rst/.html/README files that read as English (LICENSE, IDLE's NEWS...)."""
    for rel in _walk_files(root):
        name = rel.rsplit("/", 1)[-1]
        if not (name.endswith((".txt", ".rst", ".html")) or name.startswith("README")):
            continue
        text = _read_utf8(root / rel)
        if text is not None and name.endswith(".html"):
            text = _html_to_text(text)
        if text is not None and text.strip() and _looks_english(text):
            source = f"builtin:prose/{rel}"
            yield Document(text=text.strip() + "\n", domain="prose", source=source)


class _TextExtractor(html.parser.HTMLParser):
    """Collects an HTML page's visible text, a newline at each block element.

    Text inside <main>/<article>/<section> is kept apart, so navigation can be dropped.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.content_parts: list[str] = []
        self.hidden = 0
        self.content = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.hidden += tag in _HIDDEN_TAGS
        self.content += tag in _CONTENT_TAGS
        self._newline_at(tag)

    def handle_endtag(self, tag: str) -> None:
        self._newline_at(tag)
        if tag in _HIDDEN_TAGS and self.hidden:
            self.hidden -= 1
        if tag in _CONTENT_TAGS and self.content:
            self.content -= 1

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)
            if self.content:
                self.content_parts.append(data)

    def _newline_at(self, tag: str) -> None:
        if tag in _BLOCK_TAGS:
            self.handle_data("\n")

    def text(self) -> str:
        """The main content's text if the page marks it, else all visible text."""
        return "".join(self.content_parts if self.content_parts else self.parts)


def _html_to_text(page: str) -> str:
    """Visible text of an HTML page: lines stripped, runs of blank lines collapsed to one."""
    extractor = _TextExtractor()
    extractor.feed(page)
    extractor.close()
    # "¶" is the anchor Sphinx puts after every heading.
    lines = [line.strip() for line in extractor.text().replace("¶", "").split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
