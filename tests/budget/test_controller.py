import math

import pytest

from budgetlm.budget.controller import PROVISIONAL_STEPS, BudgetController
from budgetlm.budget.spec import Budget
from budgetlm.errors import UserError


def test_token_flop_and_step_budgets_are_exact():
    assert BudgetController(Budget("tokens", 10_000), 1000, 5e9).initial_total() == 10
    assert BudgetController(Budget("tokens", 10_999), 1000, 5e9).initial_total() == 10
    assert BudgetController(Budget("flops", 1e11), 1000, 5e9).initial_total() == 20
    assert BudgetController(Budget("steps", 7), 1000, 5e9).initial_total() == 7


def test_budget_below_one_step_is_a_user_error():
    with pytest.raises(UserError, match="too small for one optimizer step"):
        BudgetController(Budget("tokens", 999), 1000, 5e9).initial_total()
    with pytest.raises(UserError, match="too small for one optimizer step"):
        BudgetController(Budget("flops", 1e9), 1000, 5e9).initial_total()


def test_time_plan_uses_median_step_time_after_warmup_steps():
    c = BudgetController(Budget("seconds", 100), 1000, 5e9)
    assert c.initial_total() == PROVISIONAL_STEPS
    for seconds in [5.0, 3.0, 0.5, 0.5, 0.5, 0.6, 0.4]:  # the first two are warm-up outliers
        c.observe_step(seconds)
    assert c.seconds_per_step() == 0.5
    # 7 steps took 10.5 s; 100 - 10.5 - 9.5 reserved = 80 s left -> 160 more steps
    assert c.replan(7, 10.5, 9.5) == 7 + 160


def test_a_slow_first_step_such_as_compiling_does_not_shrink_the_plan():
    c = BudgetController(Budget("seconds", 120), 1000, 5e9)
    c.observe_step(15.0)  # torch.compile on the first step
    assert c.replan(1, 16.0, 90.0) == PROVISIONAL_STEPS
    c.observe_step(0.1)
    assert c.replan(2, 16.1, 5.0) == PROVISIONAL_STEPS
    c.observe_step(0.1)
    assert c.replan(3, 16.2, 5.0) == 3 + math.floor((120 - 16.2 - 5.0) / 0.1)


def test_time_budget_too_small_after_first_step():
    c = BudgetController(Budget("seconds", 2), 1000, 5e9)
    c.observe_step(3.0)
    with pytest.raises(UserError, match="too small.*--budget"):
        c.replan(1, 3.0, 0.5)


def test_state_roundtrip():
    c = BudgetController(Budget("seconds", 100), 1000, 5e9)
    c.observe_step(0.3)
    c.observe_overhead("eval", 1.5)
    d = BudgetController(Budget("seconds", 100), 1000, 5e9)
    d.load_state_dict(c.state_dict())
    assert d.seconds_per_step() == 0.3 and d.overhead("eval") == 1.5
