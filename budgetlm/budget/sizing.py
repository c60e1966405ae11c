"""Answer "what should I train with this budget?": for each candidate model shape, how many
tokens the budget buys on this machine, how long that takes, how often the data repeats, and
the loss a scaling law predicts; the recommended run is the one with the lowest prediction.

The loss comes from L(N, D) = E + A/N^alpha + B/D^beta (Hoffmann et al., "Training
Compute-Optimal Large Language Models", 2022): Chinchilla's published fit by default, which
shapes the choice but does not predict absolute losses on other data, or a law fitted on the
user's own runs (`budgetlm scale`). Repeated data counts for less than fresh data, as in
Muennighoff et al., "Scaling Data-Constrained Language Models" (2023). Batch size and learning
rate follow the compute power laws of DeepSeek-AI, "DeepSeek LLM: Scaling Open-Source Language
Models with Longtermism" (2024), anchored at this project's measured best setting for the default
5-minute nano run (16 x 256-token batches at LR 3e-3, BENCHMARKS.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from budgetlm.budget.overheads import checkpoint_seconds
from budgetlm.budget.spec import Budget
from budgetlm.errors import UserError
from budgetlm.model.config import ModelConfig
from budgetlm.model.flops import count_parameters, flops_per_token

REPEAT_HALF_LIFE = 15.4
"""R*_D of Muennighoff et al. (2023): repetitions of the data after which further epochs are
worth 1 - 1/e of their value less; about 4 epochs are nearly as good as fresh data."""
EPOCH_WARNING = 4.0
"""Warn when a plan repeats the data more often than this (Muennighoff et al., 2023)."""

ANCHOR_FLOPS = 3.7e13
"""Training compute of the default run (nano, 5 minutes, ~6.2M tokens) at which the batch and
LR below were measured best."""
ANCHOR_BATCH_TOKENS = 16 * 256
ANCHOR_LR = 3e-3
BATCH_EXPONENT = 0.3271
"""B_opt ∝ C^0.3271 (DeepSeek LLM, 2024)."""
LR_EXPONENT = -0.125
"""lr_opt ∝ C^-0.125 (DeepSeek LLM, 2024)."""
MIN_STEPS = 200
"""Fewer optimizer steps than this leaves too little room for warmup and decay: batches shrink."""


class LossLaw(Protocol):
    """What the planner needs of a scaling law (budget/scaling_law.py's ScalingLaw)."""

    def predict(self, n_params: float, tokens: float) -> float: ...
    def optimal_allocation(self, flops: float) -> tuple[float, float]: ...


@dataclass(frozen=True)
class Overheads:
    """Work a run does besides its optimizer steps, in tokens a forward pass reads, to be timed
    at this machine's speed (a forward pass costs about a third of a training step)."""

    eval_tokens: int
    """All evaluations of the run together."""
    sample_tokens: int
    """Forward passes of generating samples at the end (no KV cache: the context each step)."""
    checkpoints: int
    setup_seconds: float = 2.0
    """Already spent preparing data and measuring, plus building the run."""
    eval_share: float = 1.0
    """Most of a time budget evaluation takes (it shrinks its tokens to fit: eval.max_share)."""


@dataclass
class Candidate:
    """One row of the plan: a model shape and what the budget buys with it."""

    size: str
    parameters: int
    tokens_per_second: float
    tokens: int
    seconds: float
    """Predicted wall time of the whole run (steps, evaluations, checkpoints, samples)."""
    flops: float
    epochs: float | None
    predicted_loss: float


@dataclass
class Plan:
    """The recommended run and its alternatives."""

    budget: Budget
    candidates: list[Candidate]
    chosen: Candidate
    batch_size: int
    lr: float
    schedule: str = "wsd"
    warnings: list[str] = field(default_factory=list)


def effective_tokens(tokens: float, unique: float | None) -> float:
    """Tokens of fresh data that `tokens` drawn from `unique` distinct tokens are worth:
    U + U * R* * (1 - exp(-R / R*)) with R = tokens / U - 1 repetitions (Muennighoff et al.)."""
    if unique is None or tokens <= unique:
        return tokens
    repeats = tokens / unique - 1
    return unique + unique * REPEAT_HALF_LIFE * (1 - math.exp(-repeats / REPEAT_HALF_LIFE))


def batch_and_lr(flops: float, seq_len: int, tokens: float) -> tuple[int, float]:
    """Sequences per batch (a power of two, 8..512) and peak LR for a run of `flops`, leaving at
    least MIN_STEPS optimizer steps."""
    scale = flops / ANCHOR_FLOPS
    sequences = ANCHOR_BATCH_TOKENS * scale**BATCH_EXPONENT / seq_len
    batch = 2 ** max(3, min(9, round(math.log2(max(1.0, sequences)))))
    while batch > 8 and tokens / (batch * seq_len) < MIN_STEPS:
        batch //= 2
    lr = min(6e-3, max(3e-4, ANCHOR_LR * scale**LR_EXPONENT))
    return batch, float(f"{lr:.2g}")


def make_plan(
    budget: Budget,
    sizes: Sequence[tuple[str, ModelConfig]],
    speed: Callable[[str, ModelConfig], float],
    law: LossLaw,
    overheads: Overheads,
    unique_tokens: int | None,
) -> Plan:
    """Evaluate candidate shapes (resolved, smallest first) under `budget`; `speed(size, config)`
    measures training tokens/s. Larger shapes are measured only while the predicted loss still
    improves: for a fixed budget it falls, then rises with size."""
    if budget.kind == "steps":
        raise UserError(
            f"plan needs a time, FLOP or token budget, not {budget}: the number of steps depends "
            "on the batch size the plan chooses (e.g. --budget 30m, 1e16flop or 50Mtok)"
        )
    candidates: list[Candidate] = []
    for size, config in sizes:
        candidate = _evaluate(size, config, budget, speed(size, config), law, overheads,
                              unique_tokens)  # fmt: skip
        if candidate is None:
            break  # a larger shape, slower and with more to set up, would buy nothing either
        candidates.append(candidate)
        best = min(candidates, key=_score(budget, law, sizes))
        if candidate is not best and len(candidates) >= 2:
            break
    if not candidates:
        smallest = sizes[0][0]
        raise UserError(
            f"budget {budget} is too small for the first steps of the smallest model "
            f"({smallest}) on this machine; raise --budget (e.g. --budget 2m)"
        )
    chosen = min(candidates, key=_score(budget, law, sizes))
    config = dict(sizes)[chosen.size]
    batch, lr = batch_and_lr(chosen.flops, config.seq_len, chosen.tokens)
    plan = Plan(budget, candidates, chosen, batch, lr)
    if chosen.epochs is not None and chosen.epochs > EPOCH_WARNING:
        plan.warnings.append(
            f"the data is small for this budget: {chosen.size} would see it {chosen.epochs:.1f} "
            f"times (more than ~{EPOCH_WARNING:g} epochs adds little, Muennighoff et al. 2023); "
            "add data, or expect diminishing returns from the budget"
        )
    return plan


def _evaluate(
    size: str,
    config: ModelConfig,
    budget: Budget,
    rate: float,
    law: LossLaw,
    overheads: Overheads,
    unique: int | None,
) -> Candidate | None:
    """What `budget` buys with this shape at `rate` tokens/s; None if it buys nothing."""
    per_token = flops_per_token(config)
    eval_seconds = overheads.eval_tokens / (3 * rate)
    if budget.kind == "seconds":
        eval_seconds = min(eval_seconds, overheads.eval_share * budget.amount)
    overhead = (
        overheads.setup_seconds
        + eval_seconds
        + overheads.sample_tokens / (3 * rate)
        + overheads.checkpoints * checkpoint_seconds(count_parameters(config)["total"])
    )
    if budget.kind == "seconds":
        tokens = (budget.amount - overhead) * rate
    elif budget.kind == "flops":
        tokens = budget.amount / per_token
    else:
        tokens = budget.amount
    if tokens < MIN_STEPS * 8 * config.seq_len / 4:  # under ~50 steps of the smallest batch
        return None
    params = count_parameters(config)["total"]
    seconds = tokens / rate + overhead
    return Candidate(
        size=size,
        parameters=params,
        tokens_per_second=rate,
        tokens=int(tokens),
        seconds=seconds,
        flops=per_token * tokens,
        epochs=tokens / unique if unique else None,
        predicted_loss=law.predict(params, effective_tokens(tokens, unique)),
    )


def _score(budget: Budget, law: LossLaw, sizes: Sequence[tuple[str, ModelConfig]]):
    """Lower is better: the predicted loss; for a token budget (where a larger model is always
    predicted better) the distance to the compute-optimal size for those tokens."""
    if budget.kind != "tokens":
        return lambda c: c.predicted_loss

    def distance(c: Candidate) -> float:
        optimal_params, _ = law.optimal_allocation(c.flops)
        return abs(math.log(c.parameters / optimal_params))

    return distance
