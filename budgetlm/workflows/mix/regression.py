"""Regression from mixture weights to a validation loss, as in "RegMix: Data Mixture as
Regression for Language Model Pre-training" (Liu et al., 2024): fit on a few proxy runs, then
rank many unseen mixtures by predicted loss.

Two regressors: `ridge` (numpy; weights, their pairwise products and their logarithms as
features, the penalty chosen by exact leave-one-out error) suits the tens of trials a CPU can
afford; `lightgbm` (RegMix's choice, `pip install -e ".[mix]"`) needs more trials to beat it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from budgetlm.errors import UserError

REGRESSORS = ("ridge", "lightgbm")
LOG_FLOOR = 0.01
"""log(w + LOG_FLOOR): loss rises steeply as a domain's weight nears zero, but not to infinity."""
RIDGE_ALPHAS = np.logspace(-4, 3, 36)


class Regressor(Protocol):
    """A fitted model from mixture weights [n, k] to losses [n]."""

    def predict(self, weights: np.ndarray) -> np.ndarray: ...


def mixture_features(weights: np.ndarray) -> np.ndarray:
    """[n, k] weights -> [n, k + k(k-1)/2 + k] features: w_i, w_i * w_j (i < j), log(w_i + c).
    The products let one domain's benefit depend on another's share; the logs model the
    diminishing return of adding more of a domain."""
    w = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    pairs = [w[:, i] * w[:, j] for i, j in itertools.combinations(range(w.shape[1]), 2)]
    return np.column_stack([w, *pairs, np.log(w + LOG_FLOOR)])


@dataclass
class RidgeRegressor:
    """Ridge regression on `mixture_features`, standardised, intercept unpenalised; `alpha`
    is chosen from RIDGE_ALPHAS by exact leave-one-out squared error."""

    alpha: float = 0.0
    mean: np.ndarray = field(default_factory=lambda: np.zeros(0))
    scale: np.ndarray = field(default_factory=lambda: np.ones(0))
    coef: np.ndarray = field(default_factory=lambda: np.zeros(0))
    intercept: float = 0.0

    @classmethod
    def fit(cls, weights: np.ndarray, losses: np.ndarray) -> RidgeRegressor:
        x = mixture_features(weights)
        y = np.asarray(losses, dtype=np.float64)
        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale[scale < 1e-12] = 1.0  # a constant feature (e.g. one weight fixed) adds nothing
        xs = (x - mean) / scale
        yc = y - y.mean()
        errors = [_ridge_loo_mse(xs, yc, a) for a in RIDGE_ALPHAS]
        alpha = float(RIDGE_ALPHAS[int(np.argmin(errors))])
        coef = _ridge_solve(xs, yc, alpha)
        return cls(alpha, mean, scale, coef, float(y.mean()))

    def predict(self, weights: np.ndarray) -> np.ndarray:
        x = (mixture_features(weights) - self.mean) / self.scale
        return x @ self.coef + self.intercept


def _ridge_solve(x: np.ndarray, y: np.ndarray, alpha: float) -> np.ndarray:
    return np.linalg.solve(x.T @ x + alpha * np.eye(x.shape[1]), x.T @ y)


def _ridge_loo_mse(x: np.ndarray, y: np.ndarray, alpha: float) -> float:
    """Leave-one-out mean squared error of ridge on centred data, in closed form: residual_i /
    (1 - h_ii), with 1/n added to the hat matrix's diagonal for the fitted intercept."""
    n = len(y)
    inverse = np.linalg.inv(x.T @ x + alpha * np.eye(x.shape[1]))
    hat = np.einsum("ij,jk,ik->i", x, inverse, x) + 1.0 / n
    residual = y - x @ (inverse @ (x.T @ y))
    return float(np.mean((residual / np.maximum(1.0 - hat, 1e-9)) ** 2))


@dataclass
class LightGBMRegressor:
    """Gradient-boosted trees on the raw weights (RegMix's regressor), sized for few trials."""

    booster: object

    @classmethod
    def fit(cls, weights: np.ndarray, losses: np.ndarray) -> LightGBMRegressor:
        lightgbm = _import_lightgbm()
        n = len(losses)
        model = lightgbm.LGBMRegressor(
            n_estimators=300,
            learning_rate=0.05,
            num_leaves=4,
            min_child_samples=max(2, n // 8),
            subsample=1.0,
            verbose=-1,
            random_state=0,
            n_jobs=1,
        )
        model.fit(np.asarray(weights, dtype=np.float64), np.asarray(losses, dtype=np.float64))
        return cls(model)

    def predict(self, weights: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(np.atleast_2d(weights)), dtype=np.float64)


def _import_lightgbm():
    try:
        import lightgbm
    except ImportError:
        raise UserError(
            '--regressor lightgbm needs LightGBM: pip install -e ".[mix]" (or use the default '
            "--regressor ridge)"
        ) from None
    return lightgbm


Fit = Callable[[np.ndarray, np.ndarray], Regressor]


def regressor_fit(name: str) -> Fit:
    """The fit function of regressor `name` (ridge or lightgbm)."""
    if name == "ridge":
        return RidgeRegressor.fit
    if name == "lightgbm":
        _import_lightgbm()  # fail before any training
        return LightGBMRegressor.fit
    raise UserError(f"unknown regressor '{name}'; use one of {', '.join(REGRESSORS)}")


def leave_one_out(fit: Fit, weights: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """Each trial's loss predicted by a model fitted on all other trials (model selection
    included, so the estimate is honest)."""
    weights, losses = np.asarray(weights), np.asarray(losses)
    n = len(losses)
    out = np.empty(n)
    for i in range(n):
        keep = np.arange(n) != i
        out[i] = fit(weights[keep], losses[keep]).predict(weights[i : i + 1])[0]
    return out


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation (ties get their average rank); nan when either is constant."""
    ra, rb = _ranks(np.asarray(a, float)), _ranks(np.asarray(b, float))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _ranks(x: np.ndarray) -> np.ndarray:
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=float)
    for value in np.unique(x):  # average the ranks of ties
        tied = x == value
        if tied.sum() > 1:
            ranks[tied] = ranks[tied].mean()
    return ranks
