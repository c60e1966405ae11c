import numpy as np
import pytest

from budgetlm.errors import UserError
from budgetlm.workflows.mix.regression import (
    RIDGE_ALPHAS,
    RidgeRegressor,
    _ridge_loo_mse,
    _ridge_solve,
    leave_one_out,
    mixture_features,
    regressor_fit,
    spearman,
)


def flat_mixtures(n, k=3, seed=0):
    return np.random.default_rng(seed).dirichlet(np.ones(k), size=n)


def test_features_are_weights_products_and_logs():
    x = mixture_features(np.array([[0.5, 0.3, 0.2]]))
    assert x.shape == (1, 3 + 3 + 3)
    assert x[0, :3] == pytest.approx([0.5, 0.3, 0.2])
    assert x[0, 3:6] == pytest.approx([0.15, 0.10, 0.06])  # w1w2, w1w3, w2w3
    assert x[0, 6:] == pytest.approx(np.log([0.51, 0.31, 0.21]))


def test_ridge_recovers_a_linear_loss():
    w = flat_mixtures(20)
    truth = 2.0 + w @ np.array([1.0, 3.0, 5.0])
    model = RidgeRegressor.fit(w, truth)
    new = flat_mixtures(50, seed=1)
    assert model.predict(new) == pytest.approx(2.0 + new @ np.array([1.0, 3.0, 5.0]), abs=0.02)
    assert model.alpha <= 0.1  # noiseless data: leave-one-out picks a light penalty


def test_ridge_picks_a_heavier_penalty_on_noise():
    w = flat_mixtures(20)
    noise = np.random.default_rng(2).normal(0, 1, 20)  # no relation to the weights at all
    model = RidgeRegressor.fit(w, noise)
    assert model.alpha >= 10
    assert np.ptp(model.predict(flat_mixtures(50, seed=3))) < np.ptp(noise) / 2


def test_closed_form_leave_one_out_equals_refitting():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 4))
    x -= x.mean(axis=0)
    y = rng.normal(size=12)
    alpha = 0.7
    errors = []
    for i in range(12):
        keep = np.arange(12) != i
        xs, ys = x[keep], y[keep]
        mean_x, mean_y = xs.mean(axis=0), ys.mean()
        coef = _ridge_solve(xs - mean_x, ys - mean_y, alpha)
        errors.append((y[i] - mean_y - (x[i] - mean_x) @ coef) ** 2)
    assert _ridge_loo_mse(x, y - y.mean(), alpha) == pytest.approx(np.mean(errors))


def test_leave_one_out_of_an_exact_fit_is_exact():
    w = flat_mixtures(15)
    truth = 1.0 + w @ np.array([0.5, -1.0, 2.0])
    loo = leave_one_out(RidgeRegressor.fit, w, truth)
    assert loo == pytest.approx(truth, abs=0.05)
    assert spearman(loo, truth) > 0.98


def test_spearman_is_rank_based():
    x = np.array([0.1, 0.5, 0.2, 0.9])
    assert spearman(x, np.exp(10 * x)) == pytest.approx(1.0)
    assert spearman(x, -x) == pytest.approx(-1.0)
    # centred ranks [-1.5, 0, 0, 1.5] and [-1.5, -0.5, 0.5, 1.5]: 4.5 / sqrt(4.5 * 5)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / np.sqrt(4.5 * 5))
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_unknown_regressor_is_refused():
    with pytest.raises(UserError, match="unknown regressor 'forest'"):
        regressor_fit("forest")


def test_lightgbm_ranks_a_smooth_surface():
    pytest.importorskip("lightgbm")
    w = flat_mixtures(60)
    truth = (0.3 / np.sqrt(w + 0.05)).sum(axis=1)
    loo = leave_one_out(regressor_fit("lightgbm"), w, truth)
    assert spearman(loo, truth) > 0.7


def test_ridge_alphas_span_light_to_heavy():
    assert RIDGE_ALPHAS.min() <= 1e-3 and RIDGE_ALPHAS.max() >= 100
