import pytest

from budgetlm.budget.spec import Budget, parse_budget
from budgetlm.errors import UserError


@pytest.mark.parametrize(
    "text, kind, amount",
    [
        ("90s", "seconds", 90),
        ("5m", "seconds", 300),
        ("2h", "seconds", 7200),
        ("1h30m", "seconds", 5400),
        ("1.5h", "seconds", 5400),
        ("50Mtok", "tokens", 50e6),
        ("10ktokens", "tokens", 10e3),
        ("1e15flop", "flops", 1e15),
        ("2000steps", "steps", 2000),
        ("1step", "steps", 1),
    ],
)
def test_parse(text, kind, amount):
    assert parse_budget(text) == Budget(kind, amount)


@pytest.mark.parametrize("text", ["", "5 minutes", "abc", "10x", "0s", "1.5steps", "-5m"])
def test_bad_budgets_are_user_errors_with_examples(text):
    with pytest.raises(UserError, match="90s, 5m"):
        parse_budget(text)


def test_str_is_readable():
    assert str(parse_budget("1h30m")) == "1h30m"
    assert str(parse_budget("90s")) == "1m30s"
    assert str(parse_budget("2000steps")) == "2000steps"
