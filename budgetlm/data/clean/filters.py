"""Document cleaning before tokenization: Unicode normalisation, heuristic quality rules and
exact deduplication, each optional and counted per rule in a `CleaningReport`.

The quality rules are those of Gopher's MassiveWeb filter ("Scaling Language Models: Methods,
Analysis & Insights from Training Gopher", Rae et al. 2021, appendix A), the boilerplate rules
of C4 ("Exploring the Limits of Transfer Learning with a Unified Text-to-Text Transformer",
Raffel et al. 2020, section 2.2) and, for source code, the file filters of Codex ("Evaluating
Large Language Models Trained on Code", Chen et al. 2021, section 3.1) with the thresholds of
"The Stack: 3 TB of permissively licensed source code" (Kocetkov et al. 2022) and
"DeepSeek-Coder: When the Large Language Model Meets Programming" (Guo et al. 2024). A rule's
name is the `QualityConfig` field that sets it, so a report line says which knob to turn.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from budgetlm.errors import UserError, closest

NORMAL_FORMS = ("NFC", "NFKC", "NFD", "NFKD")
PRESETS = ("prose", "code")

STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
"""Gopher's stop words: English text contains at least two of them."""
BULLETS = ("-", "*", "•", "◦", "‣", "⁃", "▪", "●")
"""Characters that start a bullet line (markdown's - and *, and the Unicode bullets)."""
ELLIPSES = ("...", "…")
POLICY_PHRASES = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)
"""C4 removes every line that contains one of these (lower-cased)."""

EMPTY = "empty"
"""The rule that drops a document with no words left (always on)."""
NORMALIZE = "normalize"
"""The report entry for bytes that normalisation changed (negative if it grew the text)."""
EXACT_DUPLICATE = "exact_duplicate"
"""The report entry for documents dropped by `ExactDedup`."""

_LETTER = re.compile(r"[^\W\d_]")  # a letter: a word character that is not a digit or "_"
_ALNUM_RUN = re.compile(r"[^\W_]+")  # a run of letters and digits
_NOT_ALNUM_ASCII = bytes(b for b in range(128) if not chr(b).isalnum())
_NGRAM_MIX = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant (2^64 / golden ratio)


def _top_ngrams() -> dict[int, float]:
    """Gopher's table A1: the most frequent n-gram's share of characters, per n."""
    return {2: 0.20, 3: 0.18, 4: 0.16}


def _dup_ngrams() -> dict[int, float]:
    """Gopher's table A1: the share of characters in repeated n-grams, per n."""
    return {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}


def normalize(text: str, form: str = "NFC") -> str:
    """Unicode normal form `form`, \\n line endings, no BOM, no blank lines before the text, and
    exactly one \\n after it, so equal texts compare equal; indentation and tabs are kept.

    NFC (the default) only composes characters ("e" + U+0301 -> "é") and is safe for code;
    NFKC also folds compatibility characters ("ﬁ" -> "fi", "²" -> "2"), which changes code and
    maths. Trailing whitespace at the end carries no content, costs a token per document and
    makes "a\\n" and "a\\n\\n" different documents; one final newline is the POSIX text-file
    convention that source files (and the built-in corpora) already follow.
    """
    if form not in NORMAL_FORMS:
        raise UserError(
            f"unknown Unicode normal form {form!r}{closest(form, NORMAL_FORMS)}; "
            f"fix: use one of {', '.join(NORMAL_FORMS)}"
        )
    text = unicodedata.normalize(form, text)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.removeprefix("\ufeff").rstrip()
    if not text:
        return ""
    first = len(text) - len(text.lstrip())  # index of the first visible character
    return text[text.rfind("\n", 0, first) + 1 :] + "\n"


@dataclass
class QualityConfig:
    """Thresholds of the heuristic quality rules; None (or False) turns a rule off.

    The defaults are the "prose" preset and keep the papers' values: a compute-bound run reads
    only part of a typical corpus, so dropping doubtful documents costs it little. Ratios are
    inclusive (a document exactly at a limit is kept). How budgetlm measures differs from the
    papers in small, stated ways: the rules read the lower-cased text; words are split on
    whitespace (punctuation stays attached); line rules skip blank lines and ignore the
    indentation, so paragraph spacing is not "duplicate lines"; n-gram shares count the
    characters of words, not the spaces between them.
    """

    drop_lorem_ipsum: bool = True
    """C4: drop a document containing "lorem ipsum" (placeholder text)."""
    strip_javascript_lines: bool = True
    """C4: remove lines containing "javascript" ("please enable JavaScript" warnings). As in
    C4 this also removes real sentences about JavaScript; turn it off for web-development text."""
    strip_policy_lines: bool = True
    """C4: remove lines containing a POLICY_PHRASES entry ("privacy policy", "use cookies"...)."""
    min_words: int | None = 50
    """Gopher: 50. Fewer words are navigation stubs on the web, and too few for the ratio
    rules below to mean anything."""
    max_words: int | None = 100_000
    """Gopher: 100,000."""
    min_mean_word_length: float | None = 3.0
    """Gopher: 3 characters (words here keep their punctuation, adding ~0.2)."""
    max_mean_word_length: float | None = 10.0
    """Gopher: 10 characters."""
    max_hash_ratio: float | None = 0.1
    """Gopher: at most 0.1 "#" per word (hashtag and keyword spam)."""
    max_ellipsis_ratio: float | None = 0.1
    """Gopher: at most 0.1 "..." or "…" per word (truncated teasers)."""
    max_digit_fraction: float | None = 0.25
    """budgetlm (no paper value): at most a quarter of the non-space characters are digits.
    English prose has ~1% (the built-in prose at most 11%); tables and number dumps more."""
    min_alpha_words: float | None = 0.8
    """Gopher: at least 80% of words contain a letter."""
    min_stop_words: int | None = 2
    """Gopher: at least 2 distinct STOP_WORDS (the, be, to, of, and, that, have, with)."""
    max_bullet_lines: float | None = 0.9
    """Gopher: at most 90% of lines start with a bullet."""
    max_ellipsis_lines: float | None = 0.3
    """Gopher: at most 30% of lines end with an ellipsis."""
    max_line_length: int | None = None
    """Codex: a line over 1,000 characters means minified or generated code (code preset)."""
    max_mean_line_length: float | None = None
    """Codex: at most 100 characters per line on average (code preset)."""
    min_alnum_fraction: float | None = None
    """Codex drops files with "a small percentage of alphanumeric characters"; 25% is the
    value of The Stack's and DeepSeek-Coder's filters (code preset)."""
    max_dup_lines: float | None = 0.30
    """Gopher: at most 30% of lines repeat an earlier line."""
    max_dup_line_chars: float | None = 0.20
    """Gopher: at most 20% of line characters are in lines repeating an earlier one."""
    max_top_ngram_chars: dict[int, float] | None = field(default_factory=_top_ngrams)
    """Gopher: at most this share of word characters in the most frequent n-gram
    (n=2: 0.20, 3: 0.18, 4: 0.16); one that occurs only once is not repetition."""
    max_dup_ngram_chars: dict[int, float] | None = field(default_factory=_dup_ngrams)
    """Gopher: at most this share of word characters inside repeats of an earlier n-gram
    (n=5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10)."""

    @classmethod
    def for_code(cls) -> QualityConfig:
        """Rules that hold for source code: the prose-only ones (stop words, letters per word,
        word length, bullets, '#', '...', C4's lines) off, Codex's line rules on. Code repeats
        lines by nature ("else:", "return None", "}"), so the duplicate-line rules are off and
        the n-gram limits are twice Gopher's: only files that are mostly repetition go."""
        return cls(
            drop_lorem_ipsum=False,
            strip_javascript_lines=False,
            strip_policy_lines=False,
            min_words=None,
            min_mean_word_length=None,
            max_mean_word_length=None,
            max_hash_ratio=None,
            max_ellipsis_ratio=None,
            max_digit_fraction=0.5,
            min_alpha_words=None,
            min_stop_words=None,
            max_bullet_lines=None,
            max_ellipsis_lines=None,
            max_line_length=1000,
            max_mean_line_length=100.0,
            min_alnum_fraction=0.25,
            max_dup_lines=None,
            max_dup_line_chars=None,
            max_top_ngram_chars={n: 2 * limit for n, limit in _top_ngrams().items()},
            max_dup_ngram_chars={n: 2 * limit for n, limit in _dup_ngrams().items()},
        )

    @classmethod
    def preset(cls, name: str) -> QualityConfig:
        """The "prose" (Gopher + C4) or "code" (Codex + loose repetition) rules."""
        if name == "prose":
            return cls()
        if name == "code":
            return cls.for_code()
        raise UserError(
            f"unknown quality preset {name!r}{closest(name, PRESETS)}; "
            f"fix: use one of {', '.join(PRESETS)}"
        )


def quality_issue(text: str, config: QualityConfig) -> str | None:
    """The name of the first quality rule `text` fails, cheapest rules first, or None to keep
    it; the name is the `QualityConfig` field that sets the rule ("max_dup_ngram_chars[5]")."""
    lower = text.lower()
    if config.drop_lorem_ipsum and "lorem ipsum" in lower:
        return "drop_lorem_ipsum"
    words = lower.split()
    if not words:
        return EMPTY
    return (
        _word_issue(lower, words, config)
        or _line_issue(lower, config)
        or _ngram_issue(words, config)
    )


def _word_issue(text: str, words: list[str], c: QualityConfig) -> str | None:
    """Gopher's word-level rules (plus the digit and Codex alphanumeric shares)."""
    n = len(words)
    if c.min_words is not None and n < c.min_words:
        return "min_words"
    if c.max_words is not None and n > c.max_words:
        return "max_words"
    chars = sum(map(len, words))
    if c.min_mean_word_length is not None and chars / n < c.min_mean_word_length:
        return "min_mean_word_length"
    if c.max_mean_word_length is not None and chars / n > c.max_mean_word_length:
        return "max_mean_word_length"
    if c.max_hash_ratio is not None and text.count("#") / n > c.max_hash_ratio:
        return "max_hash_ratio"
    if c.max_ellipsis_ratio is not None and _ellipses(text) / n > c.max_ellipsis_ratio:
        return "max_ellipsis_ratio"
    if c.max_digit_fraction is not None and _digits(text) / chars > c.max_digit_fraction:
        return "max_digit_fraction"
    if c.min_alpha_words is not None and _alpha_words(words) / n < c.min_alpha_words:
        return "min_alpha_words"
    if c.min_stop_words is not None and len(STOP_WORDS.intersection(words)) < c.min_stop_words:
        return "min_stop_words"
    if c.min_alnum_fraction is not None and _alnum(text) / len(text) < c.min_alnum_fraction:
        return "min_alnum_fraction"
    return None


def _line_issue(text: str, c: QualityConfig) -> str | None:
    """Gopher's bullet/ellipsis/duplicate-line rules and Codex's line-length rules."""
    raw = text.split("\n")
    if c.max_line_length is not None and max(map(len, raw)) > c.max_line_length:
        return "max_line_length"
    n_lines = len(raw) - (raw[-1] == "")  # a final newline ends a line, it starts none
    if c.max_mean_line_length is not None and len(text) / n_lines > c.max_mean_line_length:
        return "max_mean_line_length"
    lines = [s for s in map(str.strip, raw) if s]
    if c.max_bullet_lines is not None and _bullet_lines(lines) > c.max_bullet_lines:
        return "max_bullet_lines"
    if c.max_ellipsis_lines is not None and _ellipsis_lines(lines) > c.max_ellipsis_lines:
        return "max_ellipsis_lines"
    if c.max_dup_lines is None and c.max_dup_line_chars is None:
        return None
    dup_lines, dup_chars = _repeated_lines(lines)
    if c.max_dup_lines is not None and dup_lines / len(lines) > c.max_dup_lines:
        return "max_dup_lines"
    line_chars = sum(map(len, lines))
    if c.max_dup_line_chars is not None and dup_chars / line_chars > c.max_dup_line_chars:
        return "max_dup_line_chars"
    return None


def _ngram_issue(words: list[str], c: QualityConfig) -> str | None:
    """Gopher's repetition rules: too much of the text is one phrase (the most frequent
    n-gram, n = 2..4) or repeats earlier word sequences (n-grams, n = 5..10).

    The repeated share can only shrink as n grows (every word inside a repeated 10-gram is
    inside repeated 5-grams), so an n whose limit a smaller n's share already meets is skipped."""
    if not (c.max_top_ngram_chars or c.max_dup_ngram_chars):
        return None
    ids, cum = _word_ids(words)
    for n, limit in sorted((c.max_top_ngram_chars or {}).items()):
        if len(words) >= n and _top_ngram_chars(ids, cum, n) / cum[-1] > limit:
            return f"max_top_ngram_chars[{n}]"
    bound = 1.0  # the repeated share at the largest n computed so far
    for n, limit in sorted((c.max_dup_ngram_chars or {}).items()):
        if len(words) > n and bound > limit:
            bound = _dup_ngram_chars(ids, cum, n) / cum[-1]
            if bound > limit:
                return f"max_dup_ngram_chars[{n}]"
    return None


def _ellipses(text: str) -> int:
    return text.count("...") + text.count("…")


def _digits(text: str) -> int:
    return sum(map(text.count, "0123456789"))


def _alpha_words(words: list[str]) -> int:
    """Words with at least one letter (isalpha is a fast path for plain words)."""
    return sum(1 for w in words if w.isalpha() or _LETTER.search(w))


def _alnum(text: str) -> int:
    """Letters and digits; ASCII text (most code) takes a fast byte-level path."""
    if text.isascii():
        return len(text.encode("ascii").translate(None, _NOT_ALNUM_ASCII))
    return sum(map(len, _ALNUM_RUN.findall(text)))


def _bullet_lines(lines: list[str]) -> float:
    return sum(line.startswith(BULLETS) for line in lines) / len(lines)


def _ellipsis_lines(lines: list[str]) -> float:
    return sum(line.endswith(ELLIPSES) for line in lines) / len(lines)


def _repeated_lines(lines: list[str]) -> tuple[int, int]:
    """How many lines repeat an earlier line, and their characters (first copies not counted,
    as in Gopher's duplicate-line rules)."""
    dup_lines = dup_chars = 0
    for line, count in Counter(lines).items():
        if count > 1:
            dup_lines += count - 1
            dup_chars += (count - 1) * len(line)
    return dup_lines, dup_chars


def _word_ids(words: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """A 64-bit id per word and the cumulative character counts (cum[i] = characters in
    words[:i]), for vectorised n-gram counting. The ids are Python's salted str hashes: they
    change between processes, but only their equality is used, so the verdicts do not."""
    ids = np.fromiter(map(hash, words), dtype=np.int64, count=len(words)).view(np.uint64)
    lengths = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
    return ids, np.concatenate(([0], np.cumsum(lengths)))


def _ngram_ids(ids: np.ndarray, n: int) -> np.ndarray:
    """One 64-bit id per n-gram (a polynomial hash of its word ids; collisions ~ W^2 / 2^64)."""
    grams = ids
    for k in range(1, n):
        grams = grams[:-1] * _NGRAM_MIX + ids[k:]
    return grams


def _top_ngram_chars(ids: np.ndarray, cum: np.ndarray, n: int) -> int:
    """Characters covered by the most frequent n-gram (count x its characters; the longest
    of equally frequent ones), or 0 if no n-gram occurs twice."""
    grams = _ngram_ids(ids, n)
    ordered = np.sort(grams)
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    counts = np.diff(np.append(starts, len(ordered)))
    top = int(counts.max())
    if top < 2:
        return 0
    chars = cum[n:] - cum[:-n]  # characters of the n-gram starting at each position
    return top * int(chars[np.isin(grams, ordered[starts[counts == top]])].max())


def _dup_ngram_chars(ids: np.ndarray, cum: np.ndarray, n: int) -> int:
    """Characters of the words covered by an n-gram that repeats an earlier one (each word
    counted once however many repeats overlap it)."""
    grams = _ngram_ids(ids, n)
    order = np.argsort(grams, kind="stable")  # stable: each run starts at its first occurrence
    ordered = grams[order]
    repeats = order[1:][ordered[1:] == ordered[:-1]]
    if len(repeats) == 0:
        return 0
    size = len(ids) + 1
    depth = np.bincount(repeats, minlength=size) - np.bincount(repeats + n, minlength=size)
    covered = np.cumsum(depth[:-1]) > 0
    return int(np.diff(cum)[covered].sum())


def strip_boilerplate_lines(
    text: str, config: QualityConfig, report: CleaningReport | None = None
) -> str:
    """`text` without C4's boilerplate lines (JavaScript warnings, policy notices), counting
    the removed lines and bytes per rule in `report`."""
    if not (config.strip_javascript_lines or config.strip_policy_lines):
        return text
    lower = text.lower()
    javascript = config.strip_javascript_lines and "javascript" in lower
    policy = config.strip_policy_lines and any(p in lower for p in POLICY_PHRASES)
    if not (javascript or policy):
        return text  # the usual case: one scan, no split
    kept = []
    for line in _lines_with_ends(text):
        rule = _boilerplate_rule(line.lower(), javascript, policy)
        if rule is None:
            kept.append(line)
        elif report is not None:
            report.count(rule, lines=1, removed_bytes=_utf8_len(line))
    return "".join(kept)


def _lines_with_ends(text: str) -> list[str]:
    """Lines keeping their "\\n", so joining them gives `text` back byte for byte."""
    lines = text.split("\n")
    return [line + "\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])


def _boilerplate_rule(line: str, javascript: bool, policy: bool) -> str | None:
    if javascript and "javascript" in line:
        return "strip_javascript_lines"
    if policy and any(p in line for p in POLICY_PHRASES):
        return "strip_policy_lines"
    return None


class ExactDedup:
    """Remembers a 64-bit BLAKE2b hash of every document it is shown, to drop exact repeats.

    Memory: 8 bytes per distinct document in a sorted uint64 array, plus a pending Python set
    (~70 bytes an entry) of at most max(4096, n/16) recent hashes: under 13 bytes a document,
    ~130 MB for 10 million (a merge briefly holds two more copies of the array). 64 bits make
    a false "seen" (a unique document dropped) unlikely: P ~ n^2 / 2^65, 3e-6 for 10 million
    documents, 3e-4 for 100 million; 128 bits would double the memory to guard against the
    loss of one document.
    """

    MIN_PENDING = 4096

    def __init__(self) -> None:
        self._sorted = np.zeros(0, dtype=np.uint64)
        self._pending: set[int] = set()

    def seen(self, text: str) -> bool:
        """True if an identical `text` was seen before; otherwise remembers it. Pass
        normalised text (`normalize`) so that line endings and composition do not matter."""
        digest = hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest()
        key = int.from_bytes(digest, "little")
        if key in self._pending or self._in_sorted(key):
            return True
        self._pending.add(key)
        if len(self._pending) > max(self.MIN_PENDING, len(self._sorted) // 16):
            self._flush()
        return False

    def __len__(self) -> int:
        return len(self._sorted) + len(self._pending)

    def state(self) -> dict[str, np.ndarray]:
        """{"hashes": sorted uint64 array}, to save with np.save and resume with from_state."""
        self._flush()
        return {"hashes": self._sorted.copy()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> ExactDedup:
        """A dedup that has seen the documents recorded in `state` (from `state()`)."""
        dedup = cls()
        dedup._sorted = np.unique(np.asarray(state["hashes"], dtype=np.uint64))
        return dedup

    def _in_sorted(self, key: int) -> bool:
        i = int(self._sorted.searchsorted(np.uint64(key)))
        return i < len(self._sorted) and int(self._sorted[i]) == key

    def _flush(self) -> None:
        """Merge the pending hashes into the sorted array (pending grows with the array, so
        the copying costs O(1) amortised per document)."""
        if self._pending:
            fresh = np.fromiter(self._pending, dtype=np.uint64, count=len(self._pending))
            self._sorted = np.sort(np.concatenate((self._sorted, fresh)), kind="stable")
            self._pending.clear()


@dataclass
class RuleCount:
    """What one rule removed: whole documents, lines from kept documents, UTF-8 bytes."""

    documents: int = 0
    lines: int = 0
    bytes: int = 0


@dataclass
class CleaningReport:
    """Documents and bytes in and out, and what each rule removed; for the manifest.

    bytes_in == bytes_out + the sum of every rule's bytes (normalisation included), and
    documents_in == documents_out + the sum of every rule's documents.
    """

    documents_in: int = 0
    bytes_in: int = 0
    documents_out: int = 0
    bytes_out: int = 0
    rules: dict[str, RuleCount] = field(default_factory=dict)

    def count(self, rule: str, documents: int = 0, lines: int = 0, removed_bytes: int = 0) -> None:
        """Add a removal to `rule`'s tally."""
        tally = self.rules.setdefault(rule, RuleCount())
        tally.documents += documents
        tally.lines += lines
        tally.bytes += removed_bytes

    def merge(self, other: CleaningReport) -> CleaningReport:
        """Add `other`'s counts into this report (e.g. from another worker); returns self."""
        self.documents_in += other.documents_in
        self.bytes_in += other.bytes_in
        self.documents_out += other.documents_out
        self.bytes_out += other.bytes_out
        for rule, tally in other.rules.items():
            self.count(rule, tally.documents, tally.lines, tally.bytes)
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict, rules sorted by name so equal reports serialise equally."""
        out = dataclasses.asdict(self)
        out["rules"] = {name: out["rules"][name] for name in sorted(out["rules"])}
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CleaningReport:
        """The report `to_dict` wrote (to resume an interrupted prepare)."""
        rules = {name: RuleCount(**tally) for name, tally in values.get("rules", {}).items()}
        totals = ("documents_in", "bytes_in", "documents_out", "bytes_out")
        return cls(**{k: int(values.get(k, 0)) for k in totals}, rules=rules)


def clean_document(
    text: str,
    report: CleaningReport,
    form: str | None = "NFC",
    quality: QualityConfig | None = None,
    dedup: ExactDedup | None = None,
) -> str | None:
    """Normalise, strip boilerplate lines, drop empty documents, exact duplicates, then
    low-quality ones (the cheap hash before the rules), counting every change in `report`.

    Returns the kept text, or None when dropped; form=None keeps the text's bytes, and
    quality=None or dedup=None skips that step."""
    size = _utf8_len(text)
    report.documents_in += 1
    report.bytes_in += size
    if form is not None:
        text = normalize(text, form)
        normal_size = _utf8_len(text)
        if normal_size != size:
            report.count(NORMALIZE, removed_bytes=size - normal_size)
            size = normal_size
    if quality is not None:
        text = strip_boilerplate_lines(text, quality, report)
        size = _utf8_len(text)
    issue = EMPTY if text.isspace() or not text else None
    if issue is None and dedup is not None and dedup.seen(text):
        issue = EXACT_DUPLICATE
    if issue is None and quality is not None:
        issue = quality_issue(text, quality)
    if issue is not None:
        report.count(issue, documents=1, removed_bytes=size)
        return None
    report.documents_out += 1
    report.bytes_out += size
    return text


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))
