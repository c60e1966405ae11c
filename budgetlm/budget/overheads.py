"""What a run spends besides its optimizer steps (evaluations, checkpoints, samples), estimated
from measured speeds so that a time budget can reserve it, and evaluation sized to its share."""

from __future__ import annotations

import math

EVAL_SHARE = 0.10
"""Evaluation's default share of a time budget (eval.max_share)."""
CHECKPOINT_BYTES_PER_SECOND = 300e6
"""Writing and hashing a checkpoint, as the planner assumes until a checkpoint is timed."""


def fit_eval_tokens(
    tokens_per_domain: int,
    domains: int,
    evaluations: int,
    budget_seconds: float,
    forward_tokens_per_second: float,
    share: float,
    seq_len: int,
) -> int:
    """Validation tokens per domain such that `evaluations` evaluations of `domains` domains
    take at most `share` of the budget at the measured forward speed; never more than asked,
    never under one sequence."""
    allowed = share * budget_seconds * forward_tokens_per_second / max(1, evaluations * domains)
    fitted = min(tokens_per_domain, int(allowed))
    return max(seq_len, fitted // seq_len * seq_len) if fitted < tokens_per_domain else fitted


def checkpoint_seconds(parameters: int) -> float:
    """Writing weights and AdamW moments (12 bytes per parameter) and hashing them."""
    return 2 * 12 * parameters / CHECKPOINT_BYTES_PER_SECOND


def evaluation_count(fractions: int) -> int:
    """Evaluations of a run: before training, at each share, and at the end."""
    return fractions + 2


def checkpoint_count(every: float, pre_decay: bool) -> int:
    """Checkpoints of a run: every `every` of the budget, the pre-decay one and the final one."""
    return (math.ceil(1 / every) if every > 0 else 0) + 1 + int(pre_decay)
