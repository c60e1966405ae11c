"""The planner: what a budget buys per model shape, the choice by predicted loss, batch and LR."""

import math

import pytest

from budgetlm.budget.sizing import (
    ANCHOR_BATCH_TOKENS,
    ANCHOR_FLOPS,
    ANCHOR_LR,
    Overheads,
    batch_and_lr,
    effective_tokens,
    make_plan,
)
from budgetlm.budget.spec import parse_budget
from budgetlm.errors import UserError
from budgetlm.model.config import ModelConfig
from budgetlm.model.flops import count_parameters, flops_per_token


class Law:
    """Chinchilla's published form and constants, for the tests."""

    def predict(self, n, d):
        return 1.69 + 406.4 / n**0.34 + 410.7 / d**0.28

    def optimal_allocation(self, flops):
        a, b = 0.34, 0.28
        g = (a * 406.4 / (b * 410.7)) ** (1 / (a + b))
        n = g * (flops / 6) ** (b / (a + b))
        return n, flops / (6 * n)


SIZES = [(s, ModelConfig(size=s).resolved(4096)) for s in ("nano", "micro", "tiny", "small")]
NO_OVERHEAD = Overheads(eval_tokens=0, sample_tokens=0, checkpoints=0, setup_seconds=0.0)


def speeds(rates):
    measured = []

    def speed(size, config):
        measured.append(size)
        return rates[size]

    return speed, measured


def test_a_time_budget_buys_rate_times_seconds_and_picks_the_lowest_predicted_loss():
    rates = {"nano": 25_000, "micro": 11_000, "tiny": 7_000, "small": 3_000}
    speed, _ = speeds(rates)
    plan = make_plan(parse_budget("1h"), SIZES, speed, Law(), NO_OVERHEAD, unique_tokens=None)
    for c in plan.candidates:
        assert c.tokens == pytest.approx(3600 * rates[c.size], rel=1e-6)
        assert c.seconds == pytest.approx(3600, rel=1e-6)
    best = min(plan.candidates, key=lambda c: c.predicted_loss)
    assert plan.chosen is best


def test_larger_shapes_are_not_measured_once_the_prediction_worsens():
    rates = {"nano": 25_000, "micro": 500, "tiny": 100, "small": 10}
    speed, measured = speeds(rates)
    plan = make_plan(parse_budget("10m"), SIZES, speed, Law(), NO_OVERHEAD, unique_tokens=None)
    assert plan.chosen.size == "nano"
    assert measured == ["nano", "micro"]


def test_overheads_come_out_of_a_time_budget_and_into_the_predicted_time():
    overheads = Overheads(eval_tokens=3_000_000, sample_tokens=0, checkpoints=0, setup_seconds=5)
    speed, _ = speeds({"nano": 10_000, "micro": 1, "tiny": 1, "small": 1})
    plan = make_plan(parse_budget("10m"), SIZES[:1], speed, Law(), overheads, None)
    # evaluations read 3M tokens forward at 3x the training speed: 100 s, plus 5 s of setup
    assert plan.chosen.tokens == pytest.approx((600 - 105) * 10_000, rel=1e-6)


def test_a_flop_budget_predicts_the_time_from_the_measured_speed():
    nano = SIZES[0][1]
    budget = parse_budget("1e14flop")
    speed, _ = speeds({"nano": 20_000})
    plan = make_plan(budget, SIZES[:1], speed, Law(), NO_OVERHEAD, None)
    tokens = 1e14 / flops_per_token(nano)
    assert plan.chosen.tokens == int(tokens)
    assert plan.chosen.seconds == pytest.approx(tokens / 20_000, rel=1e-6)


def test_a_token_budget_picks_the_size_nearest_the_compute_optimal_one():
    speed, _ = speeds({"nano": 1, "micro": 1, "tiny": 1, "small": 1})
    plan = make_plan(parse_budget("150Mtok"), SIZES, speed, Law(), NO_OVERHEAD, None)
    law = Law()
    distance = {
        c.size: abs(math.log(c.parameters / law.optimal_allocation(c.flops)[0]))
        for c in plan.candidates
    }
    assert plan.chosen.size == min(distance, key=distance.get)


def test_repeated_data_is_worth_less_and_warned_about():
    assert effective_tokens(1e6, None) == 1e6
    assert effective_tokens(1e6, 2e6) == 1e6
    four_epochs = effective_tokens(4e6, 1e6)
    assert 3.5e6 < four_epochs < 4e6  # ~4 epochs are nearly as good as fresh data
    assert effective_tokens(1e9, 1e6) < 17e6  # at most U * (1 + R*)
    speed, _ = speeds({"nano": 25_000, "micro": 1, "tiny": 1, "small": 1})
    plan = make_plan(parse_budget("1h"), SIZES[:1], speed, Law(), NO_OVERHEAD, 1_000_000)
    assert plan.chosen.epochs == pytest.approx(90, rel=1e-3)
    assert "90.0 times" in plan.warnings[0]


def test_batch_and_lr_are_anchored_at_the_measured_default_and_follow_deepseeks_laws():
    batch, lr = batch_and_lr(ANCHOR_FLOPS, 256, tokens=1e9)
    assert batch * 256 == ANCHOR_BATCH_TOKENS and lr == ANCHOR_LR
    big_batch, big_lr = batch_and_lr(ANCHOR_FLOPS * 1000, 256, tokens=1e12)
    assert big_batch == 16 * 2 ** round(math.log2(1000**0.3271))
    assert big_lr == pytest.approx(ANCHOR_LR * 1000**-0.125, rel=0.05)
    small_batch, _ = batch_and_lr(ANCHOR_FLOPS * 1000, 256, tokens=300 * 256 * 8)
    assert small_batch == 8  # at least ~200 steps: the batch shrinks, to no fewer than 8


def test_a_budget_too_small_for_the_smallest_model_is_a_clear_error():
    speed, _ = speeds({"nano": 100, "micro": 10, "tiny": 1, "small": 1})
    with pytest.raises(UserError, match="too small for the first steps of the smallest model"):
        make_plan(parse_budget("5s"), SIZES, speed, Law(), NO_OVERHEAD, None)
    with pytest.raises(UserError, match="plan needs a time, FLOP or token budget"):
        make_plan(parse_budget("100steps"), SIZES, speed, Law(), NO_OVERHEAD, None)


def test_parameters_are_counted_as_the_model_counts_them():
    speed, _ = speeds({"nano": 25_000})
    plan = make_plan(parse_budget("5m"), SIZES[:1], speed, Law(), NO_OVERHEAD, None)
    assert plan.chosen.parameters == count_parameters(SIZES[0][1])["total"]
