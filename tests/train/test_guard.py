import math

import pytest

from budgetlm.train.guard import GuardConfig, LossGuard


def guard(**config):
    return LossGuard(GuardConfig(**config))


def settled(mean=2.0, **config):
    """A guard past its warmup, its running mean at `mean`."""
    g = guard(**config)
    for _ in range(g.config.warmup_checks):
        assert g.first_bad([mean, mean]) is None
    assert g.mean == pytest.approx(mean) and g.checks == g.config.warmup_checks
    return g


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_loss_is_bad_from_the_first_check(bad):
    g = guard()
    found = guard().first_bad([2.0, bad, 3.0])
    assert found is not None
    index, reason = found
    assert index == 1 and reason == f"loss is {bad}"
    assert g.first_bad([bad]) == (0, f"loss is {bad}")
    assert g.mean is None and g.checks == 0  # a bad window does not count as a check


def test_non_finite_is_bad_even_when_spikes_are_off():
    g = settled(spike_factor=0)
    assert g.first_bad([2.0, 2.0, math.nan]) == (2, "loss is nan")


def test_spikes_are_only_judged_after_warmup_checks():
    g = guard(warmup_checks=2, spike_factor=2.0)
    assert g.first_bad([1.0]) is None  # check 1 sets the mean
    assert g.first_bad([5.0]) is None  # check 2: a 5x loss, but still warming up
    assert g.checks == 2
    mean = g.mean
    assert mean == pytest.approx(0.9 * 1.0 + 0.1 * 5.0)
    found = g.first_bad([mean, 2.5 * mean])
    assert found is not None and found[0] == 1
    assert "over 2x its running mean" in found[1] and f"{2.5 * mean:.3f}" in found[1]
    assert g.mean == mean and g.checks == 2  # the bad window left the mean alone


def test_warmup_zero_judges_from_the_second_window():
    g = guard(warmup_checks=0)
    assert g.first_bad([10.0, 100.0]) is None  # no mean yet: nothing to compare with
    assert g.first_bad([200.0]) is not None  # over 2x the mean of 55


def test_spike_threshold_is_strictly_above_the_factor_times_the_mean():
    g = settled(mean=2.0, spike_factor=1.5)
    assert g.first_bad([3.0]) is None  # exactly 1.5x: not a spike
    g = settled(mean=2.0, spike_factor=1.5)
    assert g.first_bad([3.001]) == (0, "loss 3.001 is over 1.5x its running mean")


def test_spike_factor_zero_only_counts_non_finite_losses():
    g = settled(mean=1.0, spike_factor=0)
    assert g.first_bad([1.0, 1e6, 1.0]) is None
    assert g.checks == 4 and g.mean == pytest.approx(0.9 * 1.0 + 0.1 * (1e6 + 2) / 3)


def test_running_mean_is_an_ema_of_good_window_means():
    g = guard(mean_decay=0.75, warmup_checks=100)
    assert g.first_bad([4.0, 2.0]) is None
    assert g.mean == pytest.approx(3.0)  # the first window's mean, not decayed from zero
    assert g.first_bad([7.0]) is None
    assert g.mean == pytest.approx(0.75 * 3.0 + 0.25 * 7.0)
    assert g.first_bad([1.0, 2.0, 3.0]) is None
    assert g.mean == pytest.approx(0.75 * 4.0 + 0.25 * 2.0)
    assert g.checks == 3
    assert g.first_bad([1.0, math.inf]) is not None
    assert g.mean == pytest.approx(3.5) and g.checks == 3


def test_empty_window_is_good_and_changes_nothing():
    g = guard()
    assert g.first_bad([]) is None
    assert g.mean is None and g.checks == 0


def test_state_round_trips_into_a_fresh_guard():
    g = settled(mean=2.0)
    g.first_bad([3.0])
    state = g.state_dict()
    assert state == {"mean": pytest.approx(0.9 * 2.0 + 0.1 * 3.0), "checks": 4}
    fresh = guard()
    fresh.load_state_dict(state)
    assert fresh.mean == g.mean and fresh.checks == 4
    # the restored guard judges spikes at once, as the original would
    assert fresh.first_bad([5.0]) == g.first_bad([5.0])
    assert fresh.first_bad([5.0]) is not None


def test_loading_an_empty_state_restarts_the_warmup():
    g = settled(mean=2.0)
    g.load_state_dict({})
    assert g.mean is None and g.checks == 0
    assert g.first_bad([100.0]) is None


def test_default_config_matches_its_documentation():
    c = GuardConfig()
    assert c.enabled and c.spike_factor == 2.0 and c.warmup_checks == 3
    assert c.mean_decay == 0.9 and c.max_rollbacks == 5 and c.snapshot_every == 50
