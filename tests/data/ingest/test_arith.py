"""Tests for builtin:arith: answers recomputed from the prompt text, skills, held-out split."""

from __future__ import annotations

import random
import re
from collections import Counter

import pytest

from budgetlm.data.ingest.arith import (
    HELD_OUT_MODULUS,
    SKILLS,
    WORDS,
    arith_documents,
    arith_eval_set,
    is_held_out,
    make_problem,
)
from budgetlm.data.ingest.documents import Document
from budgetlm.errors import UserError


def solve(prompt: str) -> tuple[str, str]:
    """(skill family, answer) recomputed from the prompt alone, independently of arith.py."""
    if m := re.fullmatch(r"(\d+)([-+*])(\d+)=", prompt):
        a, op, b = int(m[1]), m[2], int(m[3])
        return op, str({"+": a + b, "-": a - b, "*": a * b}[op])
    if m := re.fullmatch(r"max\((\d+),(\d+)\)=", prompt):
        return "max", str(max(int(m[1]), int(m[2])))
    if m := re.fullmatch(r"len\(([a-z]+)\)=", prompt):
        return "len", str(len(m[1]))
    if m := re.fullmatch(r"reverse\(([a-z]+)\)=", prompt):
        return "reverse", m[1][::-1]
    if m := re.fullmatch(r"sort\(([a-z]+)\)=", prompt):
        return "sort", "".join(sorted(m[1]))
    if m := re.fullmatch(r"count\(([a-z]+),([a-z])\)=", prompt):
        return "count", str(m[1].count(m[2]))
    raise AssertionError(f"unparsable prompt {prompt!r}")


def split_line(line: str) -> tuple[str, str]:
    """A document line back into (prompt, answer): answers never contain '='."""
    prompt, _, answer = line.rpartition("=")
    return prompt + "=", answer


def check_skill(skill: str, prompt: str) -> None:
    """The prompt's shape matches its skill (digit counts, word list, non-negative result)."""
    numbers = [int(n) for n in re.findall(r"\d+", prompt)]
    digits = [len(str(n)) for n in numbers]
    words = re.findall(r"\(([a-z]+)", prompt)
    if skill in ("add_1digit", "mul_1digit"):
        assert digits == [1, 1]
    elif skill in ("add_2digit", "sub_2digit", "mul_2digit"):
        assert digits == [2, 2]
    elif skill == "add_multidigit":
        assert all(3 <= d <= 5 for d in digits)
    elif skill == "compare":
        assert all(1 <= d <= 4 for d in digits)
    else:
        assert len(words) == 1 and words[0] in WORDS
    if skill == "sub_2digit":
        assert numbers[0] >= numbers[1]


@pytest.fixture(scope="module")
def docs() -> list[Document]:
    return list(arith_documents())


def test_skills_form_a_leveled_prerequisite_graph() -> None:
    assert len(SKILLS) >= 10
    for name, skill in SKILLS.items():
        assert skill.name == name and skill.description
        assert all(p in SKILLS for p in skill.prerequisites)
        # Level = 1 + hardest prerequisite's level, which also rules out cycles.
        expected = 1 + max((SKILLS[p].level for p in skill.prerequisites), default=0)
        assert skill.level == expected, name


def test_word_list_is_lowercase_ascii_words() -> None:
    assert len(WORDS) >= 300 and len(set(WORDS)) == len(WORDS)
    assert all(re.fullmatch(r"[a-z]{2,}", w) for w in WORDS)


@pytest.mark.parametrize("skill", list(SKILLS))
def test_make_problem_answers_are_correct(skill: str) -> None:
    rng = random.Random(0)
    for _ in range(300):
        prompt, answer = make_problem(skill, rng)
        assert prompt.endswith("=") and "\n" not in prompt + answer
        # Answers start with a digit or letter, so they never fuse with the '=' token.
        assert answer[:1].isalnum()
        assert solve(prompt)[1] == answer
        check_skill(skill, prompt)


def test_documents_cover_every_skill_with_correct_answers(docs: list[Document]) -> None:
    assert len(docs) == len(SKILLS) * 400
    assert Counter(d.meta["skill"] for d in docs) == {name: 400 for name in SKILLS}
    for doc in docs:
        skill = SKILLS[doc.meta["skill"]]
        assert doc.domain == "arith" and doc.meta["level"] == str(skill.level)
        assert doc.source.startswith(f"builtin:arith/{skill.name}/")
        lines = doc.text.removesuffix("\n").split("\n")
        assert len(lines) == 32
        for line in lines:
            prompt, answer = split_line(line)
            assert solve(prompt)[1] == answer, line
            check_skill(skill.name, prompt)


def test_documents_total_size_and_determinism(docs: list[Document]) -> None:
    size_mb = sum(len(d.text.encode("utf-8")) for d in docs) / 1e6
    assert 1.5 <= size_mb <= 2.0
    assert list(arith_documents()) == docs
    assert list(arith_documents(seed=1, documents_per_skill=2)) != docs[: 2 * len(SKILLS)]


def test_small_documents_follow_their_arguments() -> None:
    small = list(arith_documents(seed=3, problems_per_document=5, documents_per_skill=2))
    assert len(small) == 2 * len(SKILLS)
    assert all(d.text.count("\n") == 5 for d in small)


@pytest.mark.parametrize("skill", list(SKILLS))
def test_eval_set_is_correct_held_out_and_deterministic(skill: str, docs: list[Document]) -> None:
    pairs = arith_eval_set(skill, 200)
    assert len(pairs) == 200 and pairs == arith_eval_set(skill, 200)
    assert all(solve(p)[1] == a and is_held_out(p) for p, a in pairs)
    training = {
        split_line(line)[0]
        for d in docs
        if d.meta["skill"] == skill
        for line in d.text.splitlines()
    }
    assert not training & {p for p, _ in pairs}


def test_held_out_share_is_one_in_modulus() -> None:
    rng = random.Random(7)
    prompts = [make_problem("add_multidigit", rng)[0] for _ in range(20_000)]
    share = sum(map(is_held_out, prompts)) / len(prompts)
    # Binomial standard deviation sqrt(0.1 * 0.9 / 20000) ~ 0.0021; allow ~5 of them.
    assert abs(share - 1 / HELD_OUT_MODULUS) < 0.011


def test_unknown_skill_raises_with_hint() -> None:
    with pytest.raises(UserError, match=r"did you mean 'add_2digit'"):
        make_problem("add_2digits", random.Random(0))
    with pytest.raises(UserError, match="valid skills: add_1digit"):
        arith_eval_set("division", 10)


def test_documents_of_some_skills_are_exactly_theirs_in_the_full_corpus(
    docs: list[Document],
) -> None:
    chosen = ["compare", "add_2digit"]
    part = list(arith_documents(skills=chosen))
    assert part == [d for d in docs if d.meta["skill"] in chosen]
    with pytest.raises(UserError, match="unknown arithmetic skill 'add_2'"):
        list(arith_documents(skills=["add_2"]))
