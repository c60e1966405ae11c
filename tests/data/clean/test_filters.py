"""Tests for document cleaning: normalisation, each quality rule at its limit, the presets on
real and junk text, exact deduplication and the cleaning report."""

from __future__ import annotations

import dataclasses
import itertools
import json
import random
import string

import numpy as np
import pytest

from budgetlm.data.clean.filters import (
    EMPTY,
    EXACT_DUPLICATE,
    NORMALIZE,
    CleaningReport,
    ExactDedup,
    QualityConfig,
    clean_document,
    normalize,
    quality_issue,
    strip_boilerplate_lines,
)
from budgetlm.data.ingest.builtin import builtin_documents
from budgetlm.errors import UserError

# Rules judged only by word and line counts, not by what the words are or how they repeat.
LENGTH_RULES = {"min_words", "max_words"}
REPETITION_PREFIXES = ("max_dup_", "max_top_ngram_chars")


def only(**thresholds) -> QualityConfig:
    """A config with every rule off except the ones given."""
    off = {
        f.name: (False if isinstance(f.default, bool) else None)
        for f in dataclasses.fields(QualityConfig)
    }
    return QualityConfig(**(off | thresholds))


def distinct_words(n: int, length: int = 4) -> list[str]:
    """n different lower-case words of `length` letters (no word repeats, so no n-gram does)."""
    letters = itertools.product(string.ascii_lowercase, repeat=length)
    return ["".join(w) for w in itertools.islice(letters, n)]


def with_phrase(phrase: list[str], copies: int, total: int) -> str:
    """`total` 4-letter words: `copies` copies of `phrase`, each followed by a distinct word,
    then distinct words to fill up (so only the phrase and its parts repeat)."""
    filler = iter(distinct_words(100 + total)[100:])  # phrases use the first 100 words
    words = []
    for _ in range(copies):
        words += [*phrase, next(filler)]
    words += [next(filler) for _ in range(total - len(words))]
    assert len(words) == total
    return " ".join(words) + "\n"


@pytest.fixture(scope="module")
def prose() -> list[str]:
    return [normalize(d.text) for d in builtin_documents("prose")]


@pytest.fixture(scope="module")
def code() -> list[str]:
    return [normalize(d.text) for d in builtin_documents("code")]


# normalisation


def test_normalize_composes_to_nfc():
    assert normalize("caf" + "e\u0301") == "café\n"
    assert normalize("ﬁle") == "ﬁle\n"  # NFC leaves compatibility characters alone
    assert normalize("ﬁle", "NFKC") == "file\n"


def test_normalize_unifies_line_endings():
    assert normalize("a\r\nb\rc\n") == "a\nb\nc\n"


def test_normalize_trims_the_ends_to_one_newline():
    assert normalize("text") == "text\n"
    assert normalize("text  \n\n \t\n") == "text\n"
    assert normalize("\ufeffbom\n") == "bom\n"
    assert normalize(" \n\t\n") == ""


def test_normalize_keeps_code_indentation_and_tabs():
    source = "\n\n    def f(x):\n\tif x:  # tab\n\t\treturn {'a': 1}\n\n    pass\n"
    # Only the blank lines before the first line go; its indentation and every tab stay.
    assert normalize(source) == source.removeprefix("\n\n")
    assert normalize(source.replace("\n", "\r\n")) == source.removeprefix("\n\n")


def test_normalize_is_idempotent_on_real_text(prose, code):
    for text in prose[:100] + code[:50]:
        assert normalize(text) == text


def test_normalize_rejects_an_unknown_form():
    with pytest.raises(UserError, match="did you mean 'NFKD'.*fix: use one of"):
        normalize("x", "NFKX")


# each quality rule, just passing and just failing (other rules off)

WORDS_50 = " ".join(distinct_words(50))


@pytest.mark.parametrize(
    "rule, passes, fails",
    [
        ("min_words", WORDS_50, " ".join(distinct_words(49))),
        ("max_words", "a " * 100_000, "a " * 100_001),
        # mean word length: 30 / 10 = 3.0 characters; 29 / 10 = 2.9
        ("min_mean_word_length", "abc " * 10, "abc " * 9 + "ab"),
        # 100 / 10 = 10.0 characters; 101 / 10 = 10.1
        ("max_mean_word_length", "abcdefghij " * 10, "abcdefghij " * 9 + "abcdefghijk"),
        # 2 '#' in 20 words = 0.1 per word; 3 = 0.15
        ("max_hash_ratio", "#tag #tag " + "word " * 18, "#tag #tag #tag " + "word " * 17),
        # both spellings of the ellipsis count
        ("max_ellipsis_ratio", "so... so… " + "word " * 18, "so... so… so... " + "word " * 17),
        # 4 digits in 16 characters = 0.25; 5 = 0.3125
        ("max_digit_fraction", "abc1 " * 4, "abc1 " * 3 + "ab12"),
        # 8 of 10 words have a letter = 0.8; 7 of 10 = 0.7
        ("min_alpha_words", "word " * 8 + "123 --", "word " * 7 + "123 -- 4.5"),
        # two different stop words, case-insensitively; one repeated is not two
        ("min_stop_words", "The cat AND the dog", "the cat the dog"),
        ("drop_lorem_ipsum", "lorem, ipsum " * 30, "Lorem Ipsum dolor " * 20),
    ],
)
def test_word_rule_limits(rule, passes, fails):
    config = only(**{rule: getattr(QualityConfig(), rule)})
    assert quality_issue(passes, config) is None
    assert quality_issue(fails, config) == rule


def lines(*rows: str) -> str:
    return "\n".join(rows) + "\n"


@pytest.mark.parametrize(
    "rule, passes, fails",
    [
        # 9 of 10 lines are bullets (any of -, *, •) = 0.9; 10 of 10 = 1.0
        (
            "max_bullet_lines",
            lines("Shopping:", *["- milk", "* eggs", "• rice"] * 3),
            lines("- list", *["- milk", "* eggs", "• rice"] * 3),
        ),
        # 3 of 10 lines end in an ellipsis = 0.3; 4 = 0.4; blank lines do not count
        (
            "max_ellipsis_lines",
            lines(*[f"line {w}..." for w in "abc"], "", *[f"line {w}" for w in "defghij"]),
            lines(*[f"line {w}…" for w in "abcd"], "", *[f"line {w}" for w in "efghij"]),
        ),
        # 3 of 10 non-blank lines repeat an earlier one = 0.3; 4 = 0.4
        (
            "max_dup_lines",
            lines(*distinct_words(6), "", *["same line"] * 4, "", ""),
            lines(*distinct_words(5), "", *["same line"] * 5),
        ),
        # 20 of 100 line characters are repeats (10-character lines) = 0.2; 22 of 103 > 0.2
        (
            "max_dup_line_chars",
            lines(*distinct_words(7, length=10), *["x" * 10] * 3),
            lines(*distinct_words(7, length=10), *["x" * 11] * 3),
        ),
    ],
)
def test_line_rule_limits(rule, passes, fails):
    config = only(**{rule: getattr(QualityConfig(), rule)})
    assert quality_issue(passes, config) is None
    assert quality_issue(fails, config) == rule


@pytest.mark.parametrize(
    "rule, passes, fails",
    [
        # the code preset's limits: 1,000 characters on a line; 100 per line on average
        ("max_line_length", "x" * 1000 + "\nshort\n", "x" * 1001 + "\nshort\n"),
        # 200 characters (newlines included) on 2 lines = 100; 201 / 2 = 100.5
        ("max_mean_line_length", lines("x" * 99, "y" * 99), lines("x" * 100, "y" * 99)),
        # 1 letter or digit in 4 characters = 0.25; 1 in 5 = 0.2
        ("min_alnum_fraction", "a++\n", "a+++\n"),
        ("min_alnum_fraction", "é++\n", "é+++\n"),  # non-ASCII text takes another path
    ],
)
def test_code_rule_limits(rule, passes, fails):
    config = only(**{rule: getattr(QualityConfig.for_code(), rule)})
    assert quality_issue(passes, config) is None
    assert quality_issue(fails, config) == rule


@pytest.mark.parametrize(
    "n, copies_passing",
    # 100 four-letter words = 400 characters; a phrase of n words occurring k times covers
    # 4·n·k: n=2: 8·10 = 80 = 0.20; n=3: 12·6 = 72 = 0.18; n=4: 16·4 = 64 = 0.16 (the limits)
    [(2, 10), (3, 6), (4, 4)],
)
def test_top_ngram_limits(n, copies_passing):
    config = only(max_top_ngram_chars={n: QualityConfig().max_top_ngram_chars[n]})
    phrase = distinct_words(n)
    assert quality_issue(with_phrase(phrase, copies_passing, 100), config) is None
    failing = with_phrase(phrase, copies_passing + 1, 100)
    assert quality_issue(failing, config) == f"max_top_ngram_chars[{n}]"


def test_top_ngram_needs_a_repeat():
    # Ten distinct words: every 2-gram is 20% of the characters, but none occurs twice.
    assert quality_issue(" ".join(distinct_words(10)), only(max_top_ngram_chars={2: 0.1})) is None


def test_duplicate_5gram_limit():
    config = only(max_dup_ngram_chars={5: 0.15})
    phrase = distinct_words(5)
    # Copies after the first count: 3 x 5 words x 4 letters = 60 of 400 characters = 0.15.
    assert quality_issue(with_phrase(phrase, 4, 100), config) is None
    # A sixth word in each copy: 3 x 24 = 72 characters = 0.18.
    assert quality_issue(with_phrase(distinct_words(6), 4, 100), config) == (
        "max_dup_ngram_chars[5]"
    )


def test_duplicate_ngram_reports_the_first_n_over_its_limit():
    # One 12-word phrase twice in 100 words: the second copy is 48 of 400 characters = 0.12 for
    # every n <= 12, within the limits for n = 5..8 (0.15..0.12) and over it at n = 9 (0.11).
    text = with_phrase(distinct_words(12), 2, 100)
    assert quality_issue(text, only(max_dup_ngram_chars=QualityConfig().max_dup_ngram_chars)) == (
        "max_dup_ngram_chars[9]"
    )


def test_skipping_larger_n_changes_no_verdict(prose):
    # Each n checked alone gives the same first failure as all of them with the skipping.
    limits = QualityConfig().max_dup_ngram_chars
    for text in prose:
        alone = [
            n
            for n in sorted(limits)
            if quality_issue(text, only(max_dup_ngram_chars={n: limits[n]}))
        ]
        together = quality_issue(text, only(max_dup_ngram_chars=limits))
        assert together == (f"max_dup_ngram_chars[{alone[0]}]" if alone else None)


def test_empty_text_is_its_own_rule():
    assert quality_issue("", QualityConfig()) == EMPTY
    assert quality_issue(" \n\t", only()) == EMPTY


def test_unknown_preset_names_the_valid_ones():
    assert QualityConfig.preset("code") == QualityConfig.for_code()
    assert QualityConfig.preset("prose") == QualityConfig()
    with pytest.raises(UserError, match="did you mean 'prose'"):
        QualityConfig.preset("prse")


# C4 boilerplate lines


def test_boilerplate_lines_are_removed_and_counted():
    keep = "A paragraph about gardens.\n"
    js = "Please enable JavaScript to view this page.\n"
    policy = "By continuing you accept our Privacy Policy.\n"
    report = CleaningReport()
    text = keep + js + keep + policy + "Closing line without newline"
    stripped = strip_boilerplate_lines(text, QualityConfig(), report)
    assert stripped == keep + keep + "Closing line without newline"
    assert report.rules["strip_javascript_lines"].lines == 1
    assert report.rules["strip_javascript_lines"].bytes == len(js.encode())
    assert report.rules["strip_policy_lines"].bytes == len(policy.encode())
    assert report.rules["strip_policy_lines"].documents == 0  # lines go, the document stays


def test_code_preset_keeps_javascript_lines():
    source = "MIME = {'.js': 'application/javascript'}\n"
    assert strip_boilerplate_lines(source, QualityConfig.for_code()) == source


# presets on real and junk documents


def test_prose_preset_drops_only_short_and_repetitive_real_prose(prose):
    issues = [quality_issue(text, QualityConfig()) for text in prose]
    kept = issues.count(None) / len(prose)
    content = [
        i for i in issues if i and i not in LENGTH_RULES and not i.startswith(REPETITION_PREFIXES)
    ]
    short = sum(len(text.split()) < 50 for text in prose)
    # Gopher's rules on what words are (letters, stop words, symbols, digits, bullets) misjudge
    # at most 2% of real English; min_words drops exactly the documents under 50 words (17% of
    # the built-in prose: short docstrings) and the repetition rules the docstring collections
    # that repeat themselves (13%): 67% is kept.
    assert len(content) <= 0.02 * len(prose)
    assert issues.count("min_words") == short
    assert kept >= 0.6


def test_code_preset_keeps_real_code_and_prose_preset_does_not(code):
    kept_as_code = [quality_issue(text, QualityConfig.for_code()) for text in code].count(None)
    kept_as_prose = [quality_issue(text, QualityConfig()) for text in code].count(None)
    assert kept_as_code >= 0.98 * len(code)  # the standard library is real code
    assert kept_as_prose <= 0.6 * len(code)  # prose rules reject half of it


def test_code_preset_keeps_the_indented_and_commented():
    source = (
        "# Copyright notice\n# License: MIT\n#\n"
        "def area(w, h):\n    # width times height\n    return w * h\n\n"
        "stub = ...\n"
    )
    assert quality_issue(source, QualityConfig.for_code()) is None


def junk_symbols(rng: random.Random) -> str:
    return " ".join("".join(rng.choices("!@$%^&*()[]{}<>?/|~+=", k=5)) for _ in range(200))


def digit_soup(rng: random.Random) -> str:
    return " ".join(str(rng.randrange(1000, 10_000)) for _ in range(200))


PARAGRAPH = (
    "Rivers carve their valleys slowly. Each spring the melting snow raises the water, which "
    "carries gravel downstream and drops it where the current weakens. Over thousands of "
    "years these deposits build terraces that farmers later plough, and towns grow on the "
    "higher ground that floods seldom reach. Geologists read such terraces like pages of a "
    "diary kept by the climate."
)
SENTENCE = "The river runs past the mill and then turns to the sea with the tide."
LOREM = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor. "


@pytest.mark.parametrize(
    "make, rule",
    [
        (junk_symbols, "min_alpha_words"),
        (digit_soup, "max_digit_fraction"),
        (lambda rng: lines(*[SENTENCE] * 20), "max_dup_lines"),
        (lambda rng: LOREM * 10, "drop_lorem_ipsum"),
        (lambda rng: "buffalo " * 300, "min_stop_words"),
        (lambda rng: "the cat and the dog " * 60, "max_top_ngram_chars[2]"),
        (lambda rng: SENTENCE + " " + "#deal #sale #win " * 20, "max_hash_ratio"),
    ],
)
def test_prose_preset_rejects_junk(make, rule):
    assert quality_issue(make(random.Random(0)), QualityConfig()) == rule


@pytest.mark.parametrize(
    "make, rule",
    [
        (junk_symbols, "min_alnum_fraction"),
        (digit_soup, "max_digit_fraction"),
        (lambda rng: "var a=1;" * 500, "max_line_length"),
        (lambda rng: "x = 1\n" * 200, "max_top_ngram_chars[2]"),
        (lambda rng: "buffalo\n" * 300, "max_top_ngram_chars[2]"),
    ],
)
def test_code_preset_rejects_junk(make, rule):
    assert quality_issue(make(random.Random(0)), QualityConfig.for_code()) == rule


# exact deduplication


def test_dedup_finds_identical_texts_only():
    dedup = ExactDedup()
    assert not dedup.seen("alpha\n")
    assert not dedup.seen("beta\n")
    assert dedup.seen("alpha\n")
    assert not dedup.seen("alpha \n")
    assert len(dedup) == 3


def test_dedup_after_normalisation_ignores_line_endings_and_composition():
    dedup = ExactDedup()
    assert not dedup.seen(normalize("line one\nline two\n"))
    assert dedup.seen(normalize("line one\r\nline two\r\n\r\n"))
    assert not dedup.seen(normalize("café"))
    assert dedup.seen(normalize("cafe\u0301"))


def test_dedup_state_round_trips_through_np_save(tmp_path):
    dedup = ExactDedup()
    texts = [f"document {i}\n" for i in range(3 * ExactDedup.MIN_PENDING)]  # forces merges
    assert not any(dedup.seen(t) for t in texts)
    assert all(dedup.seen(t) for t in texts)
    state = dedup.state()
    assert state["hashes"].dtype == np.uint64 and state["hashes"].nbytes == 8 * len(texts)
    np.save(tmp_path / "dedup.npy", state["hashes"])
    restored = ExactDedup.from_state({"hashes": np.load(tmp_path / "dedup.npy")})
    assert len(restored) == len(texts)
    assert all(restored.seen(t) for t in texts)
    assert not restored.seen("a new document\n")


# the pipeline and its report


def test_clean_document_counts_every_byte():
    docs = [
        "café \r\n" + PARAGRAPH + "\n\n",  # kept; normalisation removes 2 bytes
        "cafe\u0301 \n" + PARAGRAPH,  # the same once normalised
        "Please enable JavaScript.\n" + PARAGRAPH,  # loses a line, kept
        LOREM * 10,
        "   \n",  # normalised to nothing
    ]
    report = CleaningReport()
    dedup = ExactDedup()
    kept = [clean_document(d, report, "NFC", QualityConfig(), dedup) for d in docs]
    assert [k is not None for k in kept] == [True, False, True, False, False]
    assert {name: tally.documents for name, tally in report.rules.items()} == {
        NORMALIZE: 0,
        EXACT_DUPLICATE: 1,
        "strip_javascript_lines": 0,
        "drop_lorem_ipsum": 1,
        EMPTY: 1,
    }
    sizes = [len(d.encode()) for d in docs]
    assert report.documents_in == 5 and report.documents_out == 2
    assert report.bytes_in == sum(sizes)
    assert report.bytes_out == sum(len(k.encode()) for k in kept if k)
    assert report.bytes_in == report.bytes_out + sum(t.bytes for t in report.rules.values())
    assert report.rules["drop_lorem_ipsum"].bytes == len(normalize(LOREM * 10).encode())


def test_reports_merge_like_one_pass(prose):
    config = QualityConfig()
    whole, first, second = CleaningReport(), CleaningReport(), CleaningReport()
    for text in prose[:200]:
        clean_document(text, whole, quality=config)
    for text in prose[:120]:
        clean_document(text, first, quality=config)
    for text in prose[120:200]:
        clean_document(text, second, quality=config)
    assert first.merge(second).to_dict() == whole.to_dict()


def test_report_round_trips_through_json():
    report = CleaningReport(documents_in=3, bytes_in=30, documents_out=1, bytes_out=10)
    report.count("min_words", documents=2, removed_bytes=20)
    report.count("strip_policy_lines", lines=4, removed_bytes=0)
    values = json.loads(json.dumps(report.to_dict()))
    assert list(values["rules"]) == ["min_words", "strip_policy_lines"]
    assert CleaningReport.from_dict(values) == report
