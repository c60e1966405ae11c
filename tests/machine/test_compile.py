"""Whether compiling pays within a budget, from measured (here: injected) costs."""

import torch

from budgetlm.machine.compile import (
    PRIOR,
    CompileCost,
    compile_cost,
    compile_pays,
    decide_compile,
    measured_cost,
    record_compile_cost,
)
from budgetlm.model.config import ModelConfig


def test_compiling_pays_only_when_the_budget_outlasts_its_cost():
    cost = CompileCost(compile_seconds=30.0, speedup=1.2)
    # (B - 30) * 1.2 > 1.05 B  <=>  B > 240 s
    assert not compile_pays(120, cost) and not compile_pays(239, cost)
    assert compile_pays(241, cost) and compile_pays(3600, cost)
    assert not compile_pays(3600, CompileCost(5.0, 1.02))  # never pays: too little speed-up


def test_the_setting_wins_and_auto_is_off_without_a_time_budget():
    assert decide_compile(True, 10.0, PRIOR)[0] is True
    assert decide_compile(False, 1e6, PRIOR)[0] is False
    on, why = decide_compile(None, None, PRIOR)
    assert not on and "not times" in why
    on, why = decide_compile(None, 600.0, PRIOR)
    assert on and "prior estimate" in why


def test_a_compiled_run_measures_what_compiling_cost():
    steps = [40.5, 0.6, 0.4, 0.4, 0.5, 0.4]  # compiling in the first step
    cost = measured_cost(steps, eager_step_seconds=0.5)
    assert cost.compile_seconds == 40.5 + 0.6 - 2 * 0.4 and cost.speedup == 0.5 / 0.4
    assert measured_cost([40.0, 0.5, 0.4], 0.5) is None  # too few steps to tell


def test_the_next_decision_uses_the_recorded_measurement(tmp_path):
    model = ModelConfig(size="nano").resolved(300)
    cache, cpu = tmp_path / "machine.json", torch.device("cpu")
    assert compile_cost(model, 16, "fp32", cpu, cache) is PRIOR
    record_compile_cost(model, 16, "fp32", cpu, cache, CompileCost(60.0, 1.01, True))
    found = compile_cost(model, 16, "fp32", cpu, cache)
    assert found == CompileCost(60.0, 1.01, True)
    assert not decide_compile(None, 3600.0, found)[0]  # measured not to pay here
    assert compile_cost(model, 16, "bf16", cpu, cache) is PRIOR  # another precision
