"""The loss scaling law L(N, D) = E + A / N^alpha + B / D^beta of Hoffmann et al., "Training
Compute-Optimal Large Language Models" (2022): fit it to measured runs with uncertainty, predict
a run's loss, and split a FLOP budget C ~ 6ND into the compute-optimal N and D.

N is the model's total parameter count as budgetlm.model.flops.count_parameters()["total"]
counts it (tied embedding counted once: with tied embeddings this equals the matmul weights in
flops_per_token's 6N term, up to the norm gains); D is training tokens; L is in nats per token.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp
from threadpoolctl import threadpool_limits

from budgetlm.errors import UserError

PARAMETERS = ("E", "A", "B", "alpha", "beta")
FORMAT = "budgetlm scaling law 1"
HUBER_DELTA = 1e-3
"""Huber loss threshold on log-loss residuals, Hoffmann et al.'s value."""
DEFAULT_BOOTSTRAP = 200
DEFAULT_LEVEL = 0.9
EXPONENT_BOUNDS = (0.01, 3.0)
"""Exponents are kept positive (a law whose loss rises with N or D has no optimum) and below 3."""
LOG_COEFFICIENT_BOUNDS = (-20.0, 80.0)
LOG_E_BOUNDS = (-10.0, 5.0)
STARTS = 12
"""L-BFGS runs from this many of the best grid points for the fit."""
BOOTSTRAP_STARTS = 2
"""Grid starts of each bootstrap refit, besides the fit's own optimum."""
TIED = "alpha=beta"


@dataclass(frozen=True)
class ScalingPoint:
    """One measured run: total parameters, training tokens and final validation loss (nats)."""

    n_params: float
    tokens: float
    loss: float
    label: str = ""


@dataclass(frozen=True)
class ScalingLaw:
    """L(N, D) = E + A / N^alpha + B / D^beta (Hoffmann et al., 2022), with the points it was
    fitted to, the bootstrap refits that give its uncertainty, and which parameters were fixed.

    N is total parameters (count_parameters(config)["total"]), D training tokens, L nats/token.
    """

    E: float
    A: float
    B: float
    alpha: float
    beta: float
    fixed: tuple[str, ...] = ()
    """Parameters not fitted: "alpha=beta" (one exponent for both), or "alpha=0.34" etc."""
    points: tuple[ScalingPoint, ...] = ()
    samples: tuple[tuple[float, ...], ...] = ()
    """Bootstrap refits over the points, each (E, A, B, alpha, beta)."""
    residuals: tuple[float, ...] = ()
    """log(measured loss) - log(predicted loss) at each point."""
    source: str = "fit"
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    """Free-form context saved with the law (e.g. the sweep that produced it)."""

    def predict(self, n_params: float, tokens: float) -> float:
        """The predicted loss (nats/token) of a model of `n_params` total parameters trained on
        `tokens` tokens."""
        _check_positive(n_params=n_params, tokens=tokens)
        return float(self.E + self.A / n_params**self.alpha + self.B / tokens**self.beta)

    def predict_interval(
        self, n_params: float, tokens: float, level: float = DEFAULT_LEVEL
    ) -> tuple[float, float]:
        """A `level` prediction interval (low, high) for one new run's loss: the spread of the
        bootstrap refits' predictions, each with a fit residual added (scaled up for the
        parameters fitted, so it estimates the run-to-run scatter rather than the shrunken
        in-sample one)."""
        _check_positive(n_params=n_params, tokens=tokens)
        if not 0 < level < 1:
            raise UserError(f"interval level must be in (0, 1), got {level}")
        if not self.samples:
            raise UserError(
                f"the {self.source} law has no fit uncertainty; fit one on your runs with "
                "`budgetlm scale` to get prediction intervals"
            )
        s = np.asarray(self.samples, dtype=float)
        preds = s[:, 0] + s[:, 1] / n_params ** s[:, 3] + s[:, 2] / tokens ** s[:, 4]
        log_preds = np.log(np.maximum(preds, 1e-12))
        noise = self._scaled_residuals()
        if noise.size:
            rng = np.random.default_rng(0)  # a fixed draw: the same interval on every call
            log_preds = log_preds + rng.choice(noise, size=log_preds.size)
        low, high = np.quantile(log_preds, [(1 - level) / 2, (1 + level) / 2])
        return float(math.exp(low)), float(math.exp(high))

    def parameter_intervals(self, level: float = DEFAULT_LEVEL) -> dict[str, tuple[float, float]]:
        """The `level` interval of each parameter over the bootstrap refits (empty without)."""
        if not self.samples:
            return {}
        s = np.asarray(self.samples, dtype=float)
        q = np.quantile(s, [(1 - level) / 2, (1 + level) / 2], axis=0)
        return {name: (float(q[0, i]), float(q[1, i])) for i, name in enumerate(PARAMETERS)}

    def optimal_allocation(self, flops: float) -> tuple[float, float]:
        """(N, D) minimising L(N, D) subject to 6 N D = `flops` (Hoffmann et al., eq. 4):
        N = G (C/6)^(beta/(alpha+beta)), D = (C/6) / N, G = (alpha A / (beta B))^(1/(alpha+beta)).
        N is total parameters and D tokens, both unrounded floats."""
        _check_positive(flops=flops)
        s = self.alpha + self.beta
        g = (self.alpha * self.A / (self.beta * self.B)) ** (1 / s)
        n = g * (flops / 6) ** (self.beta / s)
        return float(n), float(flops / 6 / n)

    def describe(self) -> str:
        """The law as one line, e.g. 'L = 1.69 + 406.4/N^0.340 + 410.7/D^0.280'."""
        return (
            f"L = {self.E:.4g} + {self.A:.4g}/N^{self.alpha:.3f} + {self.B:.4g}/D^{self.beta:.3f}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON payload `save` writes."""
        return {
            "format": FORMAT,
            "law": "L(N, D) = E + A / N^alpha + B / D^beta",
            "units": {
                "N": "total parameters (budgetlm count_parameters 'total', tied embedding once)",
                "D": "training tokens",
                "L": "validation loss, nats per token",
            },
            "parameters": {name: getattr(self, name) for name in PARAMETERS},
            "source": self.source,
            "note": self.note,
            "fixed": list(self.fixed),
            "intervals_90": {k: list(v) for k, v in self.parameter_intervals(0.9).items()},
            "points": [
                {"n_params": p.n_params, "tokens": p.tokens, "loss": p.loss, "label": p.label}
                for p in self.points
            ],
            "residuals": list(self.residuals),
            "bootstrap": [list(s) for s in self.samples],
            **({"extra": self.extra} if self.extra else {}),
        }

    def save(self, path: str | Path) -> Path:
        """Write the law as JSON, atomically (readers see the old file or the new one)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # opened normally: umask applies
        try:
            tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path) -> ScalingLaw:
        """Read a law `save` wrote; errors name the file and what is wrong with it."""
        path = Path(path)
        if not path.is_file():
            raise UserError(
                f"scaling law {path} does not exist; fit one with `budgetlm scale` or check "
                "the path"
            )
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            return cls.from_dict(payload)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UserError(f"scaling law {path} is not valid JSON: {e}") from None
        except UserError as e:
            raise UserError(f"scaling law {path}: {e}") from None

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> ScalingLaw:
        """The law of a `to_dict` payload, checked."""
        if not isinstance(payload, dict) or not isinstance(payload.get("parameters"), dict):
            raise UserError("no 'parameters' mapping; is this a scaling_law.json?")
        params = payload["parameters"]
        missing = [p for p in PARAMETERS if p not in params]
        if missing:
            raise UserError(f"parameters {', '.join(missing)} missing")
        values = {}
        for name in PARAMETERS:
            value = params[name]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise UserError(f"parameter {name} must be a number, got {value!r}")
            values[name] = float(value)
        if min(values["A"], values["B"], values["alpha"], values["beta"]) <= 0:
            raise UserError("A, B, alpha and beta must be positive")
        try:
            points = tuple(
                ScalingPoint(
                    float(p["n_params"]), float(p["tokens"]), float(p["loss"]), p.get("label", "")
                )
                for p in payload.get("points", [])
            )
            samples = tuple(tuple(float(v) for v in s) for s in payload.get("bootstrap", []))
            residuals = tuple(float(r) for r in payload.get("residuals", []))
        except (KeyError, TypeError, ValueError) as e:
            raise UserError(f"malformed points, bootstrap or residuals ({e})") from None
        if any(len(s) != len(PARAMETERS) for s in samples):
            raise UserError(f"each bootstrap sample must hold {len(PARAMETERS)} numbers")
        return cls(
            **values,
            fixed=tuple(payload.get("fixed", [])),
            points=points,
            samples=samples,
            residuals=residuals,
            source=str(payload.get("source", "fit")),
            note=str(payload.get("note", "")),
            extra=dict(payload.get("extra", {})),
        )

    def _scaled_residuals(self) -> np.ndarray:
        """Residuals times sqrt(n / (n - p)): the in-sample scatter of a least-squares-like fit
        of p parameters underestimates a new point's by that factor. None when n <= p."""
        n = len(self.residuals)
        p = len(PARAMETERS) - _fixed_count(self.fixed)
        if n <= p:
            return np.zeros(0)
        return np.asarray(self.residuals) * math.sqrt(n / (n - p))


CHINCHILLA = ScalingLaw(
    E=1.69,
    A=406.4,
    B=410.7,
    alpha=0.34,
    beta=0.28,
    source="chinchilla",
    note="Hoffmann et al. (2022), Approach 3. In nats on their MassiveText data and tokenizer: "
    "it only shapes the split of a budget into N and D; its absolute losses do not transfer to "
    "other data or tokenizers.",
)
"""Hoffmann et al.'s Approach-3 fit. Its losses are in nats on their data and tokenizer, so it
only shapes the compute-optimal allocation; its absolute losses do not transfer to other data
or tokenizers (fit your own with `budgetlm scale` for predicted losses)."""


def fit(
    points: Iterable[ScalingPoint | Sequence[float]],
    bootstrap: int = DEFAULT_BOOTSTRAP,
    seed: int = 0,
    exponents: tuple[float, float] | None = None,
) -> ScalingLaw:
    """Fit L(N, D) to measured (n_params, tokens, loss) points: minimise the Huber loss (delta
    1e-3) of log-loss residuals with L-BFGS from the best points of a grid of starts, as in
    Hoffmann et al. (2022) and Besiroglu et al., "Chinchilla Scaling: A replication attempt"
    (2024); then refit `bootstrap` resamples of the points for the parameters' spread.

    Free parameters follow the number of points n: all five from 6 points; from 5, one exponent
    for both (alpha = beta); from 3 or 4, E, A and B with the exponents fixed to `exponents`
    (default Chinchilla's 0.34 and 0.28), which also fixes them at any n when given.
    """
    pts = [_as_point(p, i) for i, p in enumerate(points)]
    if len(pts) < 3:
        raise UserError(
            f"a scaling-law fit needs at least three runs, got {len(pts)}; add model sizes or "
            "token budgets to the sweep"
        )
    sizes, budgets = {p.n_params for p in pts}, {p.tokens for p in pts}
    if len(sizes) < 2 or len(budgets) < 2:
        raise UserError(
            f"a scaling-law fit needs at least two model sizes and two token budgets, got "
            f"{len(sizes)} size(s) and {len(budgets)} budget(s); widen the sweep"
        )
    if bootstrap < 0:
        raise UserError(f"bootstrap must be 0 or more resamples, got {bootstrap}")
    if exponents is None and len(pts) >= 6:
        mode = _Mode("free")
    elif exponents is None and len(pts) == 5:
        mode = _Mode("tied")
    else:
        alpha, beta = exponents or (CHINCHILLA.alpha, CHINCHILLA.beta)
        _check_positive(alpha=alpha, beta=beta)
        mode = _Mode("fixed", alpha, beta)

    # one BLAS thread: L-BFGS-B's tiny linear algebra is otherwise ~30x slower on a busy machine
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit(pts, mode, bootstrap, seed)


def _fit(pts: list[ScalingPoint], mode: _Mode, bootstrap: int, seed: int) -> ScalingLaw:
    """`fit` once the points are checked and the free parameters chosen."""
    x = np.log([p.n_params for p in pts])
    y = np.log([p.tokens for p in pts])
    target = np.log([p.loss for p in pts])
    theta = _fit_once(mode, x, y, target, starts=mode.grid_starts(x, y, target, STARTS))

    samples = []
    rng = np.random.default_rng(seed)
    for _ in range(bootstrap):
        idx = rng.integers(0, len(pts), len(pts))
        if len(set(x[idx])) < 2 or len(set(y[idx])) < 2:
            continue  # a resample of one size or one budget cannot separate the two terms
        starts = [
            mode.free(theta),
            *mode.grid_starts(x[idx], y[idx], target[idx], BOOTSTRAP_STARTS),
        ]
        sample = _fit_once(mode, x[idx], y[idx], target[idx], starts)
        samples.append(tuple(float(v) for v in _natural(sample)))

    residuals = target - _log_predict(theta, x, y)
    E, A, B, alpha, beta = _natural(theta)
    return ScalingLaw(
        E=E,
        A=A,
        B=B,
        alpha=alpha,
        beta=beta,
        fixed=mode.fixed(),
        points=tuple(pts),
        samples=tuple(samples),
        residuals=tuple(float(r) for r in residuals),
        source="fit",
        note=f"Huber (delta {HUBER_DELTA:g}) on log loss, L-BFGS from a grid of starts; "
        f"{len(samples)} bootstrap refits over {len(pts)} points",
    )


@dataclass(frozen=True)
class _Mode:
    """Which parameters are free: 'free' (e, a, b, alpha, beta), 'tied' (e, a, b, gamma with
    alpha = beta = gamma) or 'fixed' (e, a, b; exponents given). e, a, b are logs of E, A, B."""

    kind: str
    alpha: float = 0.0
    beta: float = 0.0

    def full(self, free: np.ndarray) -> np.ndarray:
        if self.kind == "free":
            return free
        if self.kind == "tied":
            return np.array([*free[:3], free[3], free[3]])
        return np.array([*free[:3], self.alpha, self.beta])

    def free(self, full: np.ndarray) -> np.ndarray:
        return {"free": full, "tied": full[:4], "fixed": full[:3]}[self.kind]

    def grad(self, full_grad: np.ndarray) -> np.ndarray:
        if self.kind == "free":
            return full_grad
        if self.kind == "tied":
            return np.array([*full_grad[:3], full_grad[3] + full_grad[4]])
        return full_grad[:3]

    def bounds(self) -> list[tuple[float, float]]:
        log_bounds = [LOG_E_BOUNDS, LOG_COEFFICIENT_BOUNDS, LOG_COEFFICIENT_BOUNDS]
        exps = {"free": 2, "tied": 1, "fixed": 0}[self.kind]
        return log_bounds + [EXPONENT_BOUNDS] * exps

    def fixed(self) -> tuple[str, ...]:
        if self.kind == "tied":
            return (TIED,)
        if self.kind == "fixed":
            return (f"alpha={self.alpha:g}", f"beta={self.beta:g}")
        return ()

    def grid_starts(self, x: np.ndarray, y: np.ndarray, target: np.ndarray, k: int) -> list:
        """The k best points of Hoffmann et al.'s grid of starts (e in -1..1 by 0.5, a and b in
        0..25 by 5, exponents in 0..2 by 0.5, 0 moved to the lower bound) by the objective."""
        es, abs_ = np.arange(-1, 1.01, 0.5), np.arange(0, 25.1, 5)
        exps = np.maximum(np.arange(0, 2.01, 0.5), EXPONENT_BOUNDS[0])
        if self.kind == "free":
            grid = itertools.product(es, abs_, abs_, exps, exps)
        elif self.kind == "tied":
            grid = itertools.product(es, abs_, abs_, exps)
        else:
            grid = itertools.product(es, abs_, abs_)
        starts = np.array(list(grid))
        full = np.array([self.full(s) for s in starts])
        r = _log_predict_many(full, x, y) - target[None, :]
        scores = _huber(r).sum(axis=1)
        return [starts[i] for i in np.argsort(scores, kind="stable")[:k]]


def _fit_once(
    mode: _Mode, x: np.ndarray, y: np.ndarray, target: np.ndarray, starts: list
) -> np.ndarray:
    """The best L-BFGS-B optimum (full log-parameter vector) over the starts."""

    def objective(free: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = _objective(mode.full(free), x, y, target)
        return value, mode.grad(grad)

    best, best_value = None, math.inf
    for start in starts:
        result = minimize(
            objective,
            np.asarray(start, dtype=float),
            jac=True,
            method="L-BFGS-B",
            bounds=mode.bounds(),
            options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-10},
        )
        if np.isfinite(result.fun) and result.fun < best_value:
            best, best_value = result.x, float(result.fun)
    if best is None:
        raise RuntimeError("every scaling-law optimisation failed to give a finite objective")
    return mode.full(best)


def _objective(
    theta: np.ndarray, x: np.ndarray, y: np.ndarray, target: np.ndarray
) -> tuple[float, np.ndarray]:
    """Sum of Huber losses of log L(N, D) - log loss over the points, scaled by 1/delta (so its
    size is that of the absolute log residuals), and its gradient in (e, a, b, alpha, beta)."""
    e, a, b, alpha, beta = theta
    u, v = a - alpha * x, b - beta * y
    top = np.maximum(np.maximum(u, v), e)
    pu, pv, pe = np.exp(u - top), np.exp(v - top), np.exp(e - top)
    total = pu + pv + pe
    r = top + np.log(total) - target
    dr = np.clip(r, -HUBER_DELTA, HUBER_DELTA) / (HUBER_DELTA * total)  # dHuber/dr * softmax
    gu, gv = dr * pu, dr * pv
    grad = np.array([np.dot(dr, pe), gu.sum(), gv.sum(), -np.dot(gu, x), -np.dot(gv, y)])
    return float(_huber(r).sum() / HUBER_DELTA), grad


def _huber(r: np.ndarray) -> np.ndarray:
    small = np.abs(r) <= HUBER_DELTA
    return np.where(small, 0.5 * r**2, HUBER_DELTA * (np.abs(r) - 0.5 * HUBER_DELTA))


def _log_predict(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    e, a, b, alpha, beta = theta
    return logsumexp(np.stack([a - alpha * x, b - beta * y, np.full_like(x, e)]), axis=0)


def _log_predict_many(full: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """log L for many parameter vectors at once: shape (starts, points)."""
    e, a, b, alpha, beta = (full[:, i : i + 1] for i in range(5))
    terms = np.stack(
        [a - alpha * x[None], b - beta * y[None], np.broadcast_to(e, (len(full), len(x)))]
    )
    return logsumexp(terms, axis=0)


def _natural(theta: np.ndarray) -> tuple[float, float, float, float, float]:
    """(E, A, B, alpha, beta) from (log E, log A, log B, alpha, beta)."""
    e, a, b, alpha, beta = (float(v) for v in theta)
    return math.exp(e), math.exp(a), math.exp(b), alpha, beta


def _fixed_count(fixed: Sequence[str]) -> int:
    """Parameters not fitted: one for alpha = beta, one per fixed value."""
    return len(fixed)


def _as_point(p: ScalingPoint | Sequence[float], i: int) -> ScalingPoint:
    if not isinstance(p, ScalingPoint):
        try:
            n, d, loss = (float(v) for v in p)
        except (TypeError, ValueError):
            raise UserError(f"point {i} must be (n_params, tokens, loss), got {p!r}") from None
        p = ScalingPoint(n, d, loss)
    for name in ("n_params", "tokens", "loss"):
        value = getattr(p, name)
        if not (math.isfinite(value) and value > 0):
            raise UserError(
                f"point {i}{f' ({p.label})' if p.label else ''}: {name} must be a positive "
                f"number, got {value}"
            )
    return p


def _check_positive(**values: float) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not (math.isfinite(value) and value > 0):
            raise UserError(f"{name} must be a positive number, got {value!r}")
