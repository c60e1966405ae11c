"""Tests of budget/scaling_law.py: the fit recovers a known law, the compute-optimal split, JSON
round trips and the errors for too few points."""

import json
import math

import numpy as np
import pytest

from budgetlm.budget.scaling_law import CHINCHILLA, ScalingLaw, ScalingPoint, fit
from budgetlm.errors import UserError

TRUE = ScalingLaw(E=1.8, A=300.0, B=500.0, alpha=0.4, beta=0.3)
SIZES = [1e6, 2e6, 4e6, 8e6]
TOKENS = [1e7, 2e7, 4e7, 8e7, 1.6e8]


def grid_points(law=TRUE, noise=0.0, seed=0):
    """The law's losses on SIZES x TOKENS, times exp(N(0, noise)) when noise > 0."""
    rng = np.random.default_rng(seed)
    return [
        ScalingPoint(n, d, law.predict(n, d) * math.exp(noise * rng.standard_normal()), f"{n}-{d}")
        for n in SIZES
        for d in TOKENS
    ]


def test_predict_is_the_formula():
    n, d = 1e9, 2e10
    expected = 1.69 + 406.4 / n**0.34 + 410.7 / d**0.28
    assert CHINCHILLA.predict(n, d) == pytest.approx(expected, rel=1e-12)


def test_fit_recovers_exact_law():
    law = fit(grid_points(), bootstrap=10)
    assert law.fixed == ()
    for name in ("E", "A", "B", "alpha", "beta"):
        assert getattr(law, name) == pytest.approx(getattr(TRUE, name), rel=1e-4), name
    assert max(abs(r) for r in law.residuals) < 1e-6
    # the points lie on the law: every resample recovers it, so the intervals are points too
    for name, (low, high) in law.parameter_intervals().items():
        assert low == pytest.approx(getattr(TRUE, name), rel=1e-3)
        assert high == pytest.approx(getattr(TRUE, name), rel=1e-3)


def test_fit_with_noise_gives_intervals_that_cover_the_truth():
    """0.5% loss noise: the prediction 4x beyond the largest run's compute is within 1%, and
    the 90% prediction interval contains the true loss and is a few percent wide."""
    noise = 0.005
    law = fit(grid_points(noise=noise, seed=1), bootstrap=40, seed=0)
    n, d = 2 * SIZES[-1], 2 * TOKENS[-1]
    truth = TRUE.predict(n, d)
    assert law.predict(n, d) == pytest.approx(truth, rel=0.01)
    low, high = law.predict_interval(n, d)
    assert low < truth < high
    assert 0.005 < (high - low) / truth < 0.08
    # the residuals estimate the noise that made them (sd of log residuals ~ noise)
    assert 0.3 * noise < np.std(law.residuals) < 1.5 * noise
    intervals = law.parameter_intervals()
    assert intervals["beta"][0] < TRUE.beta < intervals["beta"][1]
    assert len(law.samples) == 40


def test_optimal_allocation_spends_the_budget_at_the_first_order_optimum():
    for law in (CHINCHILLA, TRUE):
        for flops in (1e15, 3.7e18, 5.76e23):
            n, d = law.optimal_allocation(flops)
            assert 6 * n * d == pytest.approx(flops, rel=1e-12)
            # dL/dN along 6ND = C vanishes: alpha A N^-alpha = beta B D^-beta
            assert law.alpha * law.A * n**-law.alpha == pytest.approx(
                law.beta * law.B * d**-law.beta, rel=1e-9
            )
            best = law.predict(n, d)
            for k in (0.8, 1.25):
                assert law.predict(n * k, d / k) > best
    # N_opt grows as C^(beta / (alpha + beta)) (Hoffmann et al., eq. 4)
    n1, _ = CHINCHILLA.optimal_allocation(1e20)
    n2, _ = CHINCHILLA.optimal_allocation(2e20)
    assert n2 / n1 == pytest.approx(2 ** (0.28 / 0.62), rel=1e-12)


def test_save_load_round_trip(tmp_path):
    law = fit(grid_points(noise=0.003), bootstrap=8)
    path = law.save(tmp_path / "law.json")
    back = ScalingLaw.load(path)
    assert back == law
    assert back.predict_interval(1e7, 1e8) == law.predict_interval(1e7, 1e8)
    assert back.points[0].label == law.points[0].label
    assert ScalingLaw.load(CHINCHILLA.save(tmp_path / "c.json")) == CHINCHILLA


def test_load_errors_name_the_problem(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        ScalingLaw.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        ScalingLaw.load(bad)
    payload = CHINCHILLA.to_dict()
    del payload["parameters"]["beta"]
    bad.write_text(json.dumps(payload))
    with pytest.raises(UserError, match="beta missing"):
        ScalingLaw.load(bad)


def test_fewer_than_three_points_is_an_error():
    with pytest.raises(UserError, match="at least three runs, got 2"):
        fit([(1e6, 1e7, 4.0), (2e6, 2e7, 3.5)])
    with pytest.raises(UserError, match="two model sizes and two token budgets"):
        fit([(1e6, 1e7, 4.0), (1e6, 2e7, 3.8), (1e6, 4e7, 3.6)])


def test_few_points_fix_parameters():
    points = grid_points()
    five = fit(points[:4] + points[5:6], bootstrap=0)  # 2 sizes, 4 budgets
    assert five.fixed == ("alpha=beta",) and five.alpha == five.beta
    four = fit(points[:3] + points[5:6], bootstrap=0)
    assert four.fixed == ("alpha=0.34", "beta=0.28")
    assert (four.alpha, four.beta) == (0.34, 0.28)
    given = fit(points, bootstrap=0, exponents=(TRUE.alpha, TRUE.beta))
    assert given.fixed == ("alpha=0.4", "beta=0.3")
    fitted = [given.E, given.A, given.B]
    assert fitted == pytest.approx([TRUE.E, TRUE.A, TRUE.B], rel=1e-4)


def test_intervals_need_a_fit():
    with pytest.raises(UserError, match="no fit uncertainty"):
        CHINCHILLA.predict_interval(1e9, 2e10)
    with pytest.raises(UserError, match="positive"):
        CHINCHILLA.optimal_allocation(0)
    with pytest.raises(UserError, match="point 1"):
        fit([(1e6, 1e7, 4.0), (2e6, -1, 3.5), (2e6, 2e7, 3.4)])
