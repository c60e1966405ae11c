import numpy as np
import pytest

from budgetlm.errors import UserError
from budgetlm.workflows.mix.regression import RidgeRegressor
from budgetlm.workflows.mix.sampling import (
    SearchSettings,
    clip_to_caps,
    dirichlet_alpha,
    epoch_limits,
    natural_shares,
    parse_target,
    predict_best,
    sample_candidates,
    sample_trial,
    weight_caps,
    within_trials,
)


def test_caps_are_epochs_times_tokens_over_the_budget():
    caps = weight_caps({"a": 100, "b": 300}, budget_tokens=200, max_epochs={"a": 1, "b": 1})
    assert caps == {"a": 0.5, "b": 1.0}
    caps = weight_caps({"a": 100, "b": 300}, budget_tokens=400, max_epochs={"a": 2, "b": 1})
    assert caps == {"a": 0.5, "b": 0.75}


def test_limits_that_cannot_fill_the_run_are_refused():
    with pytest.raises(UserError, match="repeat the data more than the epoch limits"):
        weight_caps({"a": 100, "b": 300}, budget_tokens=1000, max_epochs={"a": 4, "b": 1})


def test_clipping_shares_the_excess_in_proportion():
    w = clip_to_caps(np.array([0.7, 0.2, 0.1]), np.array([0.4, 1.0, 1.0]))
    # 0.3 over the cap goes 2:1 to the others
    assert w == pytest.approx([0.4, 0.4, 0.2])
    w = clip_to_caps(np.array([0.7, 0.3, 0.0]), np.array([0.4, 0.35, 1.0]))
    assert w == pytest.approx([0.4, 0.35, 0.25])  # the third had no weight: it takes the rest


def test_concentration_one_with_equal_shares_is_the_flat_dirichlet():
    assert dirichlet_alpha(np.full(4, 0.25), 1.0) == pytest.approx(np.ones(4))
    assert dirichlet_alpha(np.array([0.5, 0.25, 0.25]), 2.0) == pytest.approx([3.0, 1.5, 1.5])
    with pytest.raises(UserError, match="concentration"):
        dirichlet_alpha(np.full(2, 0.5), 0.0)


def test_sampled_trials_respect_the_caps_and_sum_to_one():
    shares = natural_shares({"a": 600, "b": 300, "c": 100})
    assert shares == pytest.approx({"a": 0.6, "b": 0.3, "c": 0.1})
    alpha = dirichlet_alpha(np.array(list(shares.values())), 1.0)
    caps = np.array([0.4, 1.0, 1.0])
    trials = [sample_trial(alpha, caps, seed=3, index=i) for i in range(50)]
    weights = np.array([w for w, _ in trials])
    assert not any(clipped for _, clipped in trials)  # ~1/3 of draws pass: rejection suffices
    assert np.all(weights[:, 0] <= 0.4 + 1e-9)
    assert np.allclose(weights.sum(axis=1), 1.0)
    assert weights[:, 0].max() > 0.3  # the cap is approached, not avoided
    # each trial depends only on its index: a longer search keeps the first ones
    again, _ = sample_trial(alpha, caps, seed=3, index=7)
    assert again == pytest.approx(weights[7])


def test_a_cap_rejection_cannot_meet_is_clipped_and_says_so():
    alpha = np.array([50.0, 1.0, 1.0])  # almost always > 0.9 on the first domain
    caps = np.array([0.34, 0.34, 0.34])
    w, clipped = sample_trial(alpha, caps, seed=0, index=0)
    assert clipped
    assert np.all(w <= caps + 1e-9) and w.sum() == pytest.approx(1.0)


def test_candidates_respect_the_caps_and_report_acceptance():
    caps = np.array([0.5, 1.0, 1.0])
    candidates, acceptance = sample_candidates(np.ones(3), caps, 5000, seed=0)
    assert candidates.shape == (5000, 3)
    assert np.all(candidates[:, 0] <= 0.5 + 1e-9)
    # under the flat Dirichlet P(w1 <= 0.5) = 1 - 0.5^2 = 0.75
    assert acceptance == pytest.approx(0.75, abs=0.03)


def test_only_candidates_within_the_trials_range_are_searched():
    trials = np.array([[0.2, 0.8], [0.6, 0.4]])
    candidates = np.array([[0.1, 0.9], [0.3, 0.7], [0.9, 0.1]])
    kept = within_trials(candidates, trials)
    assert kept.tolist() == [[0.3, 0.7], [0.2, 0.8], [0.6, 0.4]]


def test_target_is_one_domain_a_mean_or_weighted():
    val = {"code": 1000, "prose": 1000, "empty": 0}
    assert parse_target("code", val, 2) == {"code": 1.0}
    assert parse_target("code,prose", val, 2) == {"code": 0.5, "prose": 0.5}
    assert parse_target("code=3,prose=1", val, 2) == {"code": 0.75, "prose": 0.25}
    with pytest.raises(UserError, match="unknown target domain 'cod'.*did you mean 'code'"):
        parse_target("cod", val, 2)
    with pytest.raises(UserError, match="'empty' has 0 validation tokens"):
        parse_target("empty", val, 2)
    with pytest.raises(UserError, match="must be positive"):
        parse_target("code=0", val, 2)
    with pytest.raises(UserError, match="must be a number"):
        parse_target("code=lots", val, 2)


def test_epoch_limits_default_per_domain_and_unknown_names():
    assert epoch_limits({}, ["a", "b"]) == {"a": 4.0, "b": 4.0}
    assert epoch_limits({"*": 2, "b": 8}, ["a", "b"]) == {"a": 2.0, "b": 8.0}
    with pytest.raises(UserError, match="unknown domain 'c'"):
        epoch_limits({"c": 1}, ["a", "b"])


def test_too_few_trials_are_refused():
    with pytest.raises(UserError, match="--trials 3 is too few"):
        SearchSettings(trials=3).check()
    with pytest.raises(UserError, match="--bootstrap must be at least 2"):
        SearchSettings(bootstrap=1).check()


def test_search_recovers_the_optimum_of_a_known_loss_surface():
    """loss(w) = 2 + sum_i c_i / sqrt(w_i + e) is minimised where c_i (w_i + e)^-1.5 is equal
    across domains (Lagrange), i.e. w_i + e proportional to c_i^(2/3)."""
    c, e = np.array([0.3, 0.2, 0.1]), 0.05

    def loss(w):
        return 2 + (c / np.sqrt(w + e)).sum(axis=-1)

    optimum = (1 + 3 * e) / (c ** (2 / 3)).sum() * c ** (2 / 3) - e  # ~ [0.463, 0.341, 0.196]
    caps = np.ones(3)
    trials = np.array([sample_trial(np.ones(3), caps, 0, i)[0] for i in range(32)])
    losses = loss(trials) + np.random.default_rng(1).normal(0, 0.002, len(trials))
    candidates, _ = sample_candidates(np.ones(3), caps, 20000, seed=0)
    uniform = np.full(3, 1 / 3)
    found = predict_best(
        RidgeRegressor.fit, trials, losses, candidates, {"uniform": uniform}, bootstrap=40
    )
    assert np.abs(found.weights - optimum).max() < 0.03
    assert loss(found.weights) - loss(optimum) < 0.001
    assert found.predicted_loss == pytest.approx(loss(optimum), abs=0.02)
    assert found.loo_spearman > 0.95
    assert found.weights.sum() == pytest.approx(1.0)
    assert np.all(found.weights_sd < 0.05) and np.all(found.weights_sd > 0)
    lo, hi = found.weights_interval[:, 0], found.weights_interval[:, 1]
    assert np.all(lo <= found.weights + 1e-9) and np.all(found.weights <= hi + 1e-9)
    # uniform is 0.013 worse in truth: every refit sees that
    assert loss(uniform) - loss(optimum) > 0.01
    assert found.p_better["uniform"] == 1.0
    assert found.references["uniform"] == pytest.approx(loss(uniform), abs=0.01)
