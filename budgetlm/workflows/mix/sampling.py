"""Mixture search by regression, as in "RegMix: Data Mixture as Regression for Language Model
Pre-training" (Liu et al., 2024): sample mixtures around the natural token shares within
per-domain repetition limits, and, from the target losses of proxy runs trained on them, pick
the mixture a fitted regression predicts best, with a bootstrap uncertainty.

Repetition limits follow "Scaling Data-Constrained Language Models" (Muennighoff et al., 2023):
up to ~4 epochs of a domain are almost as good as fresh data, so a domain's weight is capped at
max_epochs * its train tokens / the tokens of the run the mixture is for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from budgetlm.errors import UserError, closest
from budgetlm.workflows.mix.regression import Fit, leave_one_out, spearman

MAX_DRAWS = 1000
"""Dirichlet draws tried per mixture before the last one is clipped to the limits instead."""
TOLERANCE = 1e-9
MIN_TRIALS = 4


@dataclass
class SearchSettings:
    """How `budgetlm mix search` samples and fits; the proxy runs' own settings (model, budget,
    optimizer) are an ordinary run config."""

    trials: int = 32
    """Proxy runs, one per sampled mixture (RegMix trains hundreds; tens suit a CPU)."""
    concentration: float = 1.0
    """Dirichlet concentration around the natural shares (see `dirichlet_alpha`)."""
    max_epochs: dict[str, float] = field(default_factory=dict)
    """Epoch limit per domain ("*" for every domain not named); default DEFAULT_MAX_EPOCHS."""
    final_budget: str | None = None
    """Token budget of the run the mixture is for (sets the repetition caps); default: the
    proxies' budget."""
    eval_only: list[str] = field(default_factory=list)
    """Domains only evaluated, never trained on (weight 0 in every mixture), e.g. a target set."""
    regressor: str = "ridge"
    """"ridge" (numpy) or "lightgbm" (RegMix's; needs the [mix] extra)."""
    candidates: int = 20000
    """Mixtures ranked through the fitted regression."""
    top_k: int = 100
    """The chosen mixture is the mean of the top_k best-predicted candidates."""
    bootstrap: int = 200
    """Refits on resampled trials for the uncertainty."""
    seed: int = 0
    """Seed of the sampled mixtures (and of the proxies' training)."""

    def check(self) -> None:
        """UserError for settings no search can run with."""
        if self.trials < MIN_TRIALS:
            raise UserError(
                f"--trials {self.trials} is too few to fit a regression; use at least "
                f"{MIN_TRIALS} (RegMix-style searches use tens to hundreds)"
            )
        for name, value, low in (
            ("--candidates", self.candidates, 1),
            ("--top-k", self.top_k, 1),
            ("--bootstrap", self.bootstrap, 2),
        ):
            if value < low:
                raise UserError(f"{name} must be at least {low}, got {value}")
        if self.top_k > self.candidates:
            raise UserError(f"--top-k {self.top_k} exceeds --candidates {self.candidates}")
        for domain, epochs in self.max_epochs.items():
            if not epochs > 0:
                raise UserError(f"--max-epochs for '{domain}' must be positive, got {epochs}")


DEFAULT_MAX_EPOCHS = 4.0
"""Default repetition limit: ~4 epochs cost little against unique data (Muennighoff et al.)."""


def epoch_limits(max_epochs: Mapping[str, float], domains: list[str]) -> dict[str, float]:
    """The epoch limit of each searched domain; UserError for a limit on an unknown domain."""
    for d in max_epochs:
        if d != "*" and d not in domains:
            raise UserError(
                f"--max-epochs names unknown domain '{d}'{closest(d, domains)}; searched "
                f"domains: {', '.join(domains)}"
            )
    default = max_epochs.get("*", DEFAULT_MAX_EPOCHS)
    return {d: float(max_epochs.get(d, default)) for d in domains}


def parse_target(
    target: str | list[str] | Mapping[str, float], val_tokens: Mapping[str, int], min_tokens: int
) -> dict[str, float]:
    """The target as weights summing to one over validation domains: "code", "code,prose"
    (their mean loss) or "code=0.7,prose=0.3"; UserError for unknown domains, bad weights, or
    a domain with fewer than `min_tokens` validation tokens."""
    if isinstance(target, Mapping):
        raw = {str(d): w for d, w in target.items()}
    else:
        parts = target.split(",") if isinstance(target, str) else list(target)
        raw = {}
        for part in (p.strip() for p in parts):
            if not part:
                continue
            name, _, weight = part.partition("=")
            try:
                raw[name.strip()] = float(weight) if weight else 1.0
            except ValueError:
                raise UserError(
                    f"--target {part}: the weight must be a number, e.g. "
                    "--target code=0.7,prose=0.3"
                ) from None
    if not raw:
        raise UserError("--target names no domain; e.g. --target code or --target code,prose")
    for domain, weight in raw.items():
        if domain not in val_tokens:
            raise UserError(
                f"unknown target domain '{domain}'{closest(domain, val_tokens)}; domains in the "
                f"data: {', '.join(val_tokens)}"
            )
        if val_tokens[domain] < min_tokens:
            raise UserError(
                f"target domain '{domain}' has {val_tokens[domain]:,} validation tokens, too few "
                f"to measure a loss (needs {min_tokens:,}); prepare the data with a larger "
                "--val-fraction or more documents of that domain"
            )
        if not (isinstance(weight, int | float) and weight > 0):
            raise UserError(f"target weight of '{domain}' must be positive, got {weight!r}")
    total = float(sum(raw.values()))
    return {d: float(w) / total for d, w in raw.items()}


def natural_shares(train_tokens: Mapping[str, int]) -> dict[str, float]:
    """Each domain's share of the training tokens (the mixture a plain concatenation gives)."""
    total = sum(train_tokens.values())
    return {d: n / total for d, n in train_tokens.items()}


def weight_caps(
    train_tokens: Mapping[str, int], budget_tokens: float, max_epochs: Mapping[str, float]
) -> dict[str, float]:
    """The largest weight of each domain that keeps it within its epoch limit over a run of
    `budget_tokens`; a UserError when the limits together cannot fill the run."""
    caps = {
        d: min(1.0, max_epochs[d] * n / budget_tokens) if n > 0 else 0.0
        for d, n in train_tokens.items()
    }
    if sum(caps.values()) < 1.0 - TOLERANCE:
        most = sum(max_epochs[d] * n for d, n in train_tokens.items())
        raise UserError(
            f"a {budget_tokens:,.0f}-token run would repeat the data more than the epoch limits "
            f"allow (they cover at most {most:,.0f} tokens): raise --max-epochs, add data, or "
            "lower --final-budget"
        )
    return caps


def clip_to_caps(weights: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """The mixture with every weight at most its cap, the excess shared among the domains below
    their caps in proportion to their weights (or evenly when they have none)."""
    w = np.minimum(np.asarray(weights, dtype=np.float64), caps)
    for _ in range(len(w)):
        excess = 1.0 - w.sum()
        room = caps - w
        open_ = room > TOLERANCE
        if excess <= TOLERANCE or not open_.any():
            break
        share = np.where(open_, w, 0.0)
        share = share / share.sum() if share.sum() > 0 else open_ / open_.sum()
        w = np.minimum(w + excess * share, caps)
    return w / w.sum()


def dirichlet_alpha(shares: np.ndarray, concentration: float) -> np.ndarray:
    """Dirichlet parameters centred on `shares`: alpha = concentration * k * shares, so
    concentration 1 with equal shares is the flat distribution over all mixtures, larger values
    stay closer to the shares and smaller ones give sparser mixtures."""
    if not concentration > 0:
        raise UserError(f"--concentration must be positive, got {concentration}")
    return np.maximum(concentration * len(shares) * np.asarray(shares, dtype=np.float64), 1e-3)


def sample_trial(
    alpha: np.ndarray, caps: np.ndarray, seed: int, index: int
) -> tuple[np.ndarray, bool]:
    """Mixture `index` of a search: Dirichlet draws rejected until one respects the caps (then
    False), or the last of MAX_DRAWS clipped to them (then True). Each index has its own random
    stream, so a search with more trials keeps the first ones."""
    rng = np.random.default_rng([seed, index])
    for _ in range(MAX_DRAWS):
        w = rng.dirichlet(alpha)
        if np.all(w <= caps + TOLERANCE):
            return w, False
    return clip_to_caps(w, caps), True


def sample_candidates(
    alpha: np.ndarray, caps: np.ndarray, n: int, seed: int
) -> tuple[np.ndarray, float]:
    """n mixtures from the same distribution as the trials (rejection within the caps, the
    shortfall clipped) to search through the fitted regression; also the acceptance rate."""
    rng = np.random.default_rng([seed, 1 << 30])
    kept, drawn, last = [], 0, None
    while sum(len(k) for k in kept) < n and drawn < n * 50:
        last = rng.dirichlet(alpha, size=max(n, 1000))
        drawn += len(last)
        kept.append(last[np.all(last <= caps + TOLERANCE, axis=1)])
    accepted = np.concatenate(kept)
    acceptance = len(accepted) / drawn
    if len(accepted) < n:
        clipped = np.array([clip_to_caps(w, caps) for w in last[: n - len(accepted)]])
        accepted = np.concatenate([accepted, clipped])
    return accepted[:n], acceptance


@dataclass
class MixturePrediction:
    """The predicted best mixture, its predicted loss and how sure the fit is of both."""

    weights: np.ndarray
    predicted_loss: float
    loss_sd: float
    """Spread (sd) of the chosen mixture's predicted loss over bootstrap refits of the trials."""
    loss_interval: tuple[float, float]
    """5th and 95th percentile of that predicted loss."""
    weights_sd: np.ndarray
    """Spread (sd) of the mixture each bootstrap refit would choose, per domain."""
    weights_interval: np.ndarray
    """[k, 2]: 5th and 95th percentile of each domain's weight over those choices."""
    references: dict[str, float]
    """Predicted loss of reference mixtures (natural, uniform, ...)."""
    p_better: dict[str, float]
    """Share of bootstrap refits that predict the chosen mixture below each reference."""
    loo_predictions: np.ndarray
    loo_spearman: float
    """Rank correlation of each trial's measured loss with its leave-one-out prediction."""
    loo_rmse: float
    searched: int
    """Candidates inside the trials' range that were ranked."""


def within_trials(candidates: np.ndarray, trials: np.ndarray) -> np.ndarray:
    """The candidates whose every weight lies within the range the trials covered for that
    domain, plus the trials themselves: the regression is trusted only where it was fitted
    (a corner no trial came near is extrapolation, however good it looks)."""
    low, high = trials.min(axis=0), trials.max(axis=0)
    inside = np.all((candidates >= low - TOLERANCE) & (candidates <= high + TOLERANCE), axis=1)
    return np.concatenate([candidates[inside], trials])


def top_k_mean(predicted: np.ndarray, candidates: np.ndarray, top_k: int) -> np.ndarray:
    """The average of the `top_k` candidates with the lowest predicted loss (RegMix's choice,
    steadier than the single best under a noisy fit), at most the best 5% of them."""
    best = np.argsort(predicted)[: max(1, min(top_k, len(predicted) // 20))]
    return candidates[best].mean(axis=0)


def predict_best(
    fit: Fit,
    weights: np.ndarray,
    losses: np.ndarray,
    candidates: np.ndarray,
    references: Mapping[str, np.ndarray],
    top_k: int = 100,
    bootstrap: int = 200,
    seed: int = 0,
) -> MixturePrediction:
    """Fit on the trials, choose the best of the candidate mixtures inside the trials' range
    (`within_trials`), and bootstrap the trials to see how much that choice and its predicted
    loss would move with other trials."""
    if bootstrap < 2:
        raise ValueError("bootstrap needs at least 2 refits")
    weights, losses = np.asarray(weights, float), np.asarray(losses, float)
    candidates = within_trials(np.asarray(candidates, float), weights)
    model = fit(weights, losses)
    chosen = top_k_mean(model.predict(candidates), candidates, top_k)
    names = list(references)
    ref_matrix = np.array([references[n] for n in names]).reshape(len(names), -1)
    rng = np.random.default_rng([seed, 1 << 31])
    n = len(losses)
    boot_losses, boot_choices, boot_better = [], [], []
    for _ in range(bootstrap):
        idx = rng.integers(0, n, size=n)
        while len(np.unique(idx)) < min(n, 3):
            idx = rng.integers(0, n, size=n)
        refit = fit(weights[idx], losses[idx])
        boot_choices.append(top_k_mean(refit.predict(candidates), candidates, top_k))
        at_chosen = float(refit.predict(chosen[None])[0])
        boot_losses.append(at_chosen)
        boot_better.append(at_chosen < refit.predict(ref_matrix) if names else np.zeros(0))
    loo = leave_one_out(fit, weights, losses)
    boot_losses_a, choices = np.array(boot_losses), np.array(boot_choices)
    better = np.array(boot_better).mean(axis=0)
    reference_losses = model.predict(ref_matrix) if names else []
    return MixturePrediction(
        weights=chosen,
        predicted_loss=float(model.predict(chosen[None])[0]),
        loss_sd=float(np.std(boot_losses_a, ddof=1)),
        loss_interval=(
            float(np.percentile(boot_losses_a, 5)),
            float(np.percentile(boot_losses_a, 95)),
        ),
        weights_sd=np.std(choices, axis=0, ddof=1),
        weights_interval=np.percentile(choices, [5, 95], axis=0).T,
        references={name: float(v) for name, v in zip(names, reference_losses, strict=True)},
        p_better={name: float(p) for name, p in zip(names, better, strict=True)},
        loo_predictions=loo,
        loo_spearman=spearman(loo, losses),
        loo_rmse=float(np.sqrt(np.mean((loo - losses) ** 2))),
        searched=len(candidates),
    )
