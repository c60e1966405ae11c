import math

import pytest

from budgetlm.errors import UserError
from budgetlm.train.schedules import (
    SCHEDULES,
    Constant,
    WarmupStableDecay,
    build_schedule,
    cosine,
    rewarm,
)


def test_wsd_shape():
    s = WarmupStableDecay(warmup_fraction=0.1, decay_fraction=0.2, min_lr_ratio=0.0)
    total = 100
    lrs = [s.lr_factor(i, total) for i in range(total)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == 1.0  # 10 warmup steps
    assert all(v == 1.0 for v in lrs[10:80])  # plateau
    assert lrs[80] == pytest.approx(1 - 1 / 20) and lrs[-1] == 0.0  # linear to zero
    assert s.decay_start(total) == 80
    assert s.can_replan(79, total) and not s.can_replan(80, total)


@pytest.mark.parametrize(
    ("shape", "at_quarter"),
    [
        ("linear", 1 - 0.25),
        ("cosine", 0.5 * (1 + math.cos(math.pi * 0.25))),
        ("1-sqrt", 1 - math.sqrt(0.25)),  # Hägele et al.: drops fast, then flattens
    ],
)
def test_wsd_decay_shapes(shape, at_quarter):
    s = build_schedule("wsd", 0.1, 0.2, 0.1, shape)
    assert s.lr_factor(79, 100) == 1.0  # last plateau step
    # decay step k (0-based) is at progress (k + 1) / 20; k = 4 is a quarter of the way
    assert s.lr_factor(84, 100) == pytest.approx(0.1 + 0.9 * at_quarter)
    assert s.lr_factor(99, 100) == pytest.approx(0.1)  # ends at min_lr_ratio
    assert s.decay_start(100) == 80 and not s.can_replan(80, 100)


def test_wsd_floor():
    s = WarmupStableDecay(0.0, 0.5, min_lr_ratio=0.1)
    assert s.lr_factor(9, 10) == pytest.approx(0.1)


def test_cosine_ends_at_min_and_only_replans_in_warmup():
    s = cosine(warmup_fraction=0.1, min_lr_ratio=0.1)
    assert s.lr_factor(99, 100) == pytest.approx(0.1)
    mid = s.lr_factor(10 + 45 - 1, 100)  # half-way through the 90 decay steps
    assert mid == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert s.can_replan(9, 100) and not s.can_replan(10, 100)
    assert build_schedule("cosine", 0.1, 0.2, 0.1) == s  # decay_fraction does not apply


def test_linear_to_zero():
    s = build_schedule("linear", 0.1, 0.2, 0.0)
    assert s.lr_factor(9, 100) == 1.0  # warmup end
    assert s.lr_factor(10 + 45 - 1, 100) == pytest.approx(0.5)  # half-way down 90 steps
    assert s.lr_factor(99, 100) == 0.0
    assert s.decay_start(100) == 10


def test_rewarm_starts_where_a_decayed_run_ended():
    s = build_schedule("rewarm", 0.1, 0.2, 0.2)
    assert s == rewarm(0.1, 0.2, "cosine")
    assert s.lr_factor(0, 100) == pytest.approx(0.2 + 0.8 * 1 / 10)  # one step above the floor
    assert s.lr_factor(9, 100) == 1.0  # re-warmed to the peak
    assert s.lr_factor(10 + 45 - 1, 100) == pytest.approx(0.2 + 0.8 * 0.5)  # cosine half-way
    assert s.lr_factor(99, 100) == pytest.approx(0.2)  # re-decayed
    assert s.can_replan(9, 100) and not s.can_replan(10, 100)
    assert build_schedule("rewarm", 0.1, 0.2, 0.0, "1-sqrt").decay_shape == "1-sqrt"


def test_constant_never_decays_and_always_replans():
    s = build_schedule("constant", 0.1, 0.2, 0.0)
    assert s == Constant(0.1)
    assert s.lr_factor(0, 100) == pytest.approx(0.1) and s.lr_factor(9, 100) == 1.0
    assert s.lr_factor(99, 100) == 1.0
    assert s.decay_start(100) == 100 and s.can_replan(99, 100)


@pytest.mark.parametrize("name", SCHEDULES)
def test_single_step_run(name):
    s = build_schedule(name, 0.05, 0.2, 0.0)
    assert 0.0 <= s.lr_factor(0, 1) <= 1.0


def test_unknown_schedule_suggests():
    with pytest.raises(UserError, match="did you mean 'cosine'"):
        build_schedule("cosin", 0.05, 0.2, 0.0)
    with pytest.raises(UserError, match="did you mean '1-sqrt'"):
        build_schedule("wsd", 0.05, 0.2, 0.0, "1_sqrt")


def test_shape_of_a_fixed_schedule_is_an_error():
    assert build_schedule("cosine", 0.05, 0.2, 0.0, "cosine").decay_shape == "cosine"
    with pytest.raises(UserError, match="train.schedule=wsd"):
        build_schedule("cosine", 0.05, 0.2, 0.0, "linear")
    with pytest.raises(UserError, match="does not apply"):
        build_schedule("constant", 0.05, 0.2, 0.0, "linear")


def test_bad_fractions():
    with pytest.raises(UserError, match="train.decay_fraction"):
        build_schedule("wsd", 0.05, 0.0, 0.0)
