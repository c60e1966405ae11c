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


def test_a_time_budget_is_first_planned_from_the_step_time_measured_before_training():
    c = BudgetController(Budget("seconds", 100), 1000, 5e9, estimated_step_seconds=0.25)
    # 10 s already went to preparing the run and 15 s are reserved for evaluations
    assert c.initial_total(elapsed=10.0, reserve=15.0) == math.floor(75 / 0.25)


def test_a_slow_first_step_is_not_extrapolated_when_an_estimate_exists():
    c = BudgetController(Budget("seconds", 100), 1000, 5e9, estimated_step_seconds=0.2)
    c.observe_step(40.0)  # compiling
    assert c.seconds_per_step() == 0.2
    assert c.replan(1, 45.0, 5.0) == 1 + math.floor(50 / 0.2)


def test_a_time_budget_that_cannot_hold_the_smallest_run_is_refused_naming_figures():
    c = BudgetController(Budget("seconds", 30), 1000, 5e9, estimated_step_seconds=1.0)
    with pytest.raises(UserError, match=r"budget 30s is too small: 20 optimizer steps take ~20 s"
                       r".*evaluation, checkpoints and samples ~9 s.*--budget 35s"):  # fmt: skip
        c.initial_total(elapsed=2.0, reserve=9.0)
    assert BudgetController(Budget("seconds", 30), 1000, 5e9, estimated_step_seconds=1.0
                            ).initial_total(elapsed=2.0, reserve=7.0) == 21  # fmt: skip


def test_a_started_run_over_its_time_never_aborts():
    c = BudgetController(Budget("seconds", 2), 1000, 5e9)
    c.observe_step(3.0)
    assert c.replan(1, 3.0, 0.5) == PROVISIONAL_STEPS  # no typical step yet: provisional
    for _ in range(3):
        c.observe_step(3.0)
    assert c.replan(4, 12.0, 0.5) == 4  # over the budget: end now, evaluate and save


def test_off_plan_only_beyond_the_tolerance_and_after_typical_steps():
    c = BudgetController(Budget("seconds", 100), 1000, 5e9, estimated_step_seconds=0.1)
    assert not c.off_plan(0, 900, 5.0, 5.0)  # no step timed yet
    for _ in range(5):
        c.observe_step(0.1)
    assert not c.off_plan(100, 900, 10.0, 10.0)  # 10 + 800 * 0.1 + 10 = 100
    assert not c.off_plan(100, 920, 10.0, 10.0)  # 102: within 3%
    assert c.off_plan(100, 950, 10.0, 10.0)  # 105
    assert c.off_plan(100, 800, 10.0, 10.0)  # 90: would end early
    assert not BudgetController(Budget("steps", 9), 1, 1.0).off_plan(1, 9, 1e9, 0.0)


def test_estimated_overheads_stand_until_measured():
    c = BudgetController(Budget("seconds", 100), 1000, 5e9, estimated_overhead={"eval": 2.0})
    assert c.overhead("eval") == 2.0 and c.overhead("checkpoint", 0.5) == 0.5
    c.observe_overhead("eval", 3.0)
    assert c.overhead("eval") == 3.0


def test_state_roundtrip():
    c = BudgetController(Budget("seconds", 100), 1000, 5e9)
    c.observe_step(0.3)
    c.observe_overhead("eval", 1.5)
    d = BudgetController(Budget("seconds", 100), 1000, 5e9)
    d.load_state_dict(c.state_dict())
    assert d.seconds_per_step() == 0.3 and d.overhead("eval") == 1.5
