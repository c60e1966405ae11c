import math

import pytest

from budgetlm.errors import UserError
from budgetlm.train.schedules import Cosine, WarmupStableDecay, build_schedule


def test_wsd_shape():
    s = WarmupStableDecay(warmup_fraction=0.1, decay_fraction=0.2, min_lr_ratio=0.0)
    total = 100
    lrs = [s.lr_factor(i, total) for i in range(total)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == 1.0  # 10 warmup steps
    assert all(v == 1.0 for v in lrs[10:80])  # plateau
    assert lrs[80] == pytest.approx(1 - 1 / 20) and lrs[-1] == 0.0  # linear to zero
    assert s.decay_start(total) == 80
    assert s.can_replan(79, total) and not s.can_replan(80, total)


def test_wsd_floor():
    s = WarmupStableDecay(0.0, 0.5, min_lr_ratio=0.1)
    assert s.lr_factor(9, 10) == pytest.approx(0.1)


def test_cosine_ends_at_min_and_only_replans_in_warmup():
    s = Cosine(warmup_fraction=0.1, min_lr_ratio=0.1)
    assert s.lr_factor(99, 100) == pytest.approx(0.1)
    mid = s.lr_factor(10 + 45 - 1, 100)  # half-way through the 90 decay steps
    assert mid == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert s.can_replan(9, 100) and not s.can_replan(10, 100)


def test_single_step_run_is_fully_decayed():
    for s in (WarmupStableDecay(), Cosine()):
        assert s.lr_factor(0, 1) <= 1.0


def test_unknown_schedule_suggests():
    with pytest.raises(UserError, match="did you mean 'cosine'"):
        build_schedule("cosin", 0.05, 0.2, 0.0)
