"""builtin:arith: template-generated arithmetic and string problems, one skill per document.

Skills have levels and prerequisites so curricula can order them (Skill-it, "Skill-it! A
Data-Driven Skills Framework for Understanding and Training Language Models"), and every
problem has one exact answer for exact-match evaluation. A line is `prompt + answer`, e.g.
`37+45=82`: the prompt always ends in "=", the answer is everything after it up to the
newline and starts with a digit or a letter, so a pre-tokenizer that splits punctuation from
words puts a token boundary exactly between prompt and answer.

About a tenth of each skill's prompts (those whose SHA-1 is 0 mod 10) are held out: they
appear in `arith_eval_set` and never in `arith_documents`, so evaluation measures the skill
rather than recall of training lines.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from budgetlm.data.ingest.documents import Document
from budgetlm.errors import UserError, closest

HELD_OUT_MODULUS = 10
"""A prompt is held out for evaluation iff int(sha1(prompt)) % HELD_OUT_MODULUS == 0."""

MAX_DRAWS_PER_PROBLEM = 1000
"""Rejection-sampling bound: a held-out problem is found within this many draws (else a bug)."""

_WORD_TEXT = """
    able about above act add after again age ago air all almost alone along also always
    among animal answer apple area arm army around art ask away baby back bad ball bank base
    bear beat bed before begin behind bell best better bird black blood blue board boat body
    bone book born both box boy bread break bring brother brown build burn busy buy cake call
    camp capital car card care carry case cat catch cause cell center chair chance change
    charge check child city claim class clean clear climb clock close cloud coast cold color
    come common copy corn cost cotton could count country course cover cow create crop cross
    crowd cry cut dance dark day dead deal dear death decide deep desert design dinner direct
    do doctor dog dollar door double down draw dream dress drink drive drop dry duck during
    each ear early earth east eat edge egg eight either else end enemy energy enough enter
    equal even event ever every exact except expect eye face fact fair fall family famous far
    farm fast father fear feed feel few field fight figure fill final find fine finger finish
    fire first fish five flat floor flower fly follow food foot force forest form forward four
    free fresh friend front fruit full game garden gas gather gave general gentle girl give
    glad glass gold good grass gray great green ground group grow guess guide hair half hand
    happy hard hat head hear heart heat heavy help here high hill history hold hole home hope
    horse hot hour house huge human hunt idea inch iron island join joy jump just keep key kind
    king kitchen knee knife know lady lake land large last late laugh lead learn leave left leg
    letter level lift light like line lion list listen little live long look lost loud love low
    machine main make man many map mark market master match matter meat meet melody metal
    middle might milk mind minute miss modern moment money month moon morning mother mountain
    mouth move music name nation near neck need never new next night noise north nose note
    number ocean offer office often oil old open orange order other over page paint paper
    party pass past path pay people pick picture piece place plain plan plant play please poem
    point poor power press pretty print problem pull push quick quiet race radio rain raise
    reach read ready real record red region rest rich ride right ring river road rock roll room
    root rope rose round row rule run safe sail salt sand save say school science sea season
    seat second seed sell send sense seven shape share sharp sheep shell ship shoe shop short
    shout show side sign silver simple sing sister sit size skill skin sky sleep slow small
    smell smile snow soft soil soldier song sound south space speak speed spell spring square
    stand star start state station stay steam step stick still stone stop store story street
    strong study sugar summer sun supply sure surface swim table tail take talk tall teach team
    tell ten test thank thick thin thing think third three throw tie time tiny tire today
    together tone tool top total touch town track trade train travel tree trip truck true try
    tube turn twenty under unit until valley very view village visit voice vowel wait walk wall
    warm wash watch water wave wear weather week weight west wheel white whole wide wife wild
    win wind window winter wire wish woman wonder wood word work world write yard year yellow
    young zero
"""

WORDS: tuple[str, ...] = tuple(_WORD_TEXT.split())
"""A few hundred common English words (lowercase ASCII) for the string skills."""

LETTERS = "abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True)
class Skill:
    """One problem family: its level (1 = easiest) and the skills it builds on."""

    name: str
    level: int
    prerequisites: tuple[str, ...]
    description: str


SKILLS: dict[str, Skill] = {
    s.name: s
    for s in (
        Skill("add_1digit", 1, (), "add two 1-digit numbers: 3+5=8"),
        Skill("compare", 1, (), "the larger of two 1-4 digit numbers: max(372,45)=372"),
        Skill("word_length", 1, (), "the number of letters in a word: len(table)=5"),
        Skill("reverse_word", 1, (), "a word spelt backwards: reverse(table)=elbat"),
        Skill("add_2digit", 2, ("add_1digit",), "add two 2-digit numbers: 37+45=82"),
        Skill("mul_1digit", 2, ("add_1digit",), "multiply two 1-digit numbers: 7*8=56"),
        Skill("count_char", 2, ("word_length",), "occurrences of a letter: count(banana,a)=3"),
        Skill("sort_letters", 2, ("reverse_word",), "a word's letters in order: sort(table)=abelt"),
        Skill(
            "sub_2digit",
            3,
            ("add_2digit", "compare"),
            "subtract 2-digit numbers, never below zero: 82-45=37",
        ),
        Skill("add_multidigit", 3, ("add_2digit",), "add two 3-5 digit numbers: 4821+937=5758"),
        Skill(
            "mul_2digit",
            4,
            ("mul_1digit", "add_multidigit"),
            "multiply two 2-digit numbers: 37*45=1665",
        ),
    )
}
"""Every skill, easiest first; a skill's level is one more than its hardest prerequisite's."""


def _digits(rng: random.Random, n: int) -> int:
    """A uniformly random number with exactly n digits (0-9 when n == 1)."""
    return rng.randint(0, 9) if n == 1 else rng.randint(10 ** (n - 1), 10**n - 1)


def _add_1digit(rng: random.Random) -> tuple[str, str]:
    a, b = _digits(rng, 1), _digits(rng, 1)
    return f"{a}+{b}=", str(a + b)


def _add_2digit(rng: random.Random) -> tuple[str, str]:
    a, b = _digits(rng, 2), _digits(rng, 2)
    return f"{a}+{b}=", str(a + b)


def _add_multidigit(rng: random.Random) -> tuple[str, str]:
    a, b = _digits(rng, rng.randint(3, 5)), _digits(rng, rng.randint(3, 5))
    return f"{a}+{b}=", str(a + b)


def _sub_2digit(rng: random.Random) -> tuple[str, str]:
    a, b = sorted((_digits(rng, 2), _digits(rng, 2)), reverse=True)
    return f"{a}-{b}=", str(a - b)


def _mul_1digit(rng: random.Random) -> tuple[str, str]:
    a, b = _digits(rng, 1), _digits(rng, 1)
    return f"{a}*{b}=", str(a * b)


def _mul_2digit(rng: random.Random) -> tuple[str, str]:
    a, b = _digits(rng, 2), _digits(rng, 2)
    return f"{a}*{b}=", str(a * b)


def _compare(rng: random.Random) -> tuple[str, str]:
    a = _digits(rng, rng.randint(1, 4))
    # Half the pairs share a digit count, so the answer is not readable from length alone.
    b = _digits(rng, len(str(a)) if rng.random() < 0.5 else rng.randint(1, 4))
    return f"max({a},{b})=", str(max(a, b))


def _word_length(rng: random.Random) -> tuple[str, str]:
    word = rng.choice(WORDS)
    return f"len({word})=", str(len(word))


def _reverse_word(rng: random.Random) -> tuple[str, str]:
    word = rng.choice(WORDS)
    return f"reverse({word})=", word[::-1]


def _sort_letters(rng: random.Random) -> tuple[str, str]:
    word = rng.choice(WORDS)
    return f"sort({word})=", "".join(sorted(word))


def _count_char(rng: random.Random) -> tuple[str, str]:
    word = rng.choice(WORDS)
    # Mostly a letter of the word; sometimes any letter, so 0 is a possible answer.
    char = rng.choice(word) if rng.random() < 0.75 else rng.choice(LETTERS)
    return f"count({word},{char})=", str(word.count(char))


_GENERATORS: dict[str, Callable[[random.Random], tuple[str, str]]] = {
    "add_1digit": _add_1digit,
    "add_2digit": _add_2digit,
    "add_multidigit": _add_multidigit,
    "sub_2digit": _sub_2digit,
    "mul_1digit": _mul_1digit,
    "mul_2digit": _mul_2digit,
    "compare": _compare,
    "word_length": _word_length,
    "reverse_word": _reverse_word,
    "sort_letters": _sort_letters,
    "count_char": _count_char,
}


def _check_skill(skill: str) -> None:
    """Raise a UserError naming the valid skills when `skill` is not one of them."""
    if skill not in SKILLS:
        raise UserError(
            f"unknown arithmetic skill '{skill}'{closest(skill, SKILLS)}; "
            f"valid skills: {', '.join(SKILLS)}"
        )


def make_problem(skill: str, rng: random.Random) -> tuple[str, str]:
    """One random problem of `skill` as (prompt, answer); `prompt + answer` is one line."""
    _check_skill(skill)
    return _GENERATORS[skill](rng)


def is_held_out(prompt: str) -> bool:
    """Whether a prompt is reserved for evaluation (about 1 in HELD_OUT_MODULUS prompts)."""
    digest = hashlib.sha1(prompt.encode("utf-8")).digest()
    return int.from_bytes(digest, "big") % HELD_OUT_MODULUS == 0


def _draw(skill: str, rng: random.Random, held_out: bool) -> tuple[str, str]:
    """A problem from the evaluation (held_out) or the training side of `skill`."""
    for _ in range(MAX_DRAWS_PER_PROBLEM):
        prompt, answer = _GENERATORS[skill](rng)
        if is_held_out(prompt) == held_out:
            return prompt, answer
    raise RuntimeError(f"no {'held-out' if held_out else 'training'} problem found for {skill}")


def arith_documents(
    seed: int = 0,
    problems_per_document: int = 32,
    documents_per_skill: int = 400,
    skills: Sequence[str] | None = None,
) -> Iterator[Document]:
    """Training documents, one skill's problems per document, one per line; skills interleaved.

    The defaults give 11 skills x 400 documents x 32 problems = 4400 documents, about 1.8 MB.
    `skills` keeps only those skills' documents (each skill has its own random stream, so they
    are exactly the documents of those skills in the full corpus).
    """
    for name in skills or ():
        _check_skill(name)
    chosen = [name for name in SKILLS if skills is None or name in skills]
    rngs = {name: random.Random(f"builtin:arith:{seed}:{name}") for name in chosen}
    for index in range(documents_per_skill):
        for name in chosen:
            skill = SKILLS[name]
            lines = (
                "".join(_draw(name, rngs[name], held_out=False))
                for _ in range(problems_per_document)
            )
            yield Document(
                text="\n".join(lines) + "\n",
                domain="arith",
                source=f"builtin:arith/{name}/{index}",
                meta={"skill": name, "level": str(skill.level)},
            )


def arith_eval_set(skill: str, n: int, seed: int = 1234) -> list[tuple[str, str]]:
    """n held-out (prompt, answer) pairs of `skill`, drawn with replacement, never in training."""
    _check_skill(skill)
    rng = random.Random(f"builtin:arith:eval:{seed}:{skill}")
    return [_draw(skill, rng, held_out=True) for _ in range(n)]
