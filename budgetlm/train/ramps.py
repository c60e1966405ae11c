"""Warm-ups of the batch and of the context length over the first share of training.

Both keep the tokens of a step the same, so the budget's step-time plan is not thrown off:
- the context warm-up cuts each [B, T] row into k rows of T/k tokens (the same tokens and
  targets, less context), k = 8, 4, 2 then 1 (Li, Zhang & He, 2022, "The Stability-Efficiency
  Dilemma: Investigating Sequence Length Warmup for Training GPT Models");
- the batch warm-up spends a step's batch on k optimizer updates of B/k sequences each,
  k = 4, 2 then 1: smaller batches early, when the gradient noise scale is small (McCandlish
  et al., 2018, "An Empirical Model of Large-Batch Training"; GPT-3's batch ramp, Brown et al.,
  2020).
"""

from __future__ import annotations

from budgetlm.errors import UserError

CONTEXT_STAGES = (8, 4, 2, 1)
"""Rows per original row in each quarter of the context warm-up."""
BATCH_STAGES = (4, 2, 1)
"""Optimizer updates per step in each third of the batch warm-up."""


def check_warmup(key: str, share: float) -> None:
    """A UserError naming `key` unless 0 <= share < 1."""
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share < 1:
        raise UserError(
            f"{key} must be a share of the planned steps in [0, 1) (0 turns it off), got {share!r}"
        )


def _stage(progress: float, share: float, stages: tuple[int, ...]) -> int:
    if share <= 0 or progress >= share:
        return 1
    # (+1e-9: a stage starts exactly at its share despite float rounding, e.g. 0.15 / 0.2)
    return stages[min(len(stages) - 1, int(progress / share * len(stages) + 1e-9))]


def context_splits(progress: float, share: float, seq_len: int) -> int:
    """How many rows each [seq_len] row is cut into at this point of training (1: none); only
    splits that divide seq_len evenly and leave at least 16 tokens per row are used."""
    k = _stage(progress, share, CONTEXT_STAGES)
    while k > 1 and (seq_len % k or seq_len // k < 16):
        k //= 2
    return k


def batch_splits(progress: float, share: float, rows: int) -> int:
    """How many optimizer updates this step's `rows` sequences are spent on (1: one update);
    only splits that divide the rows evenly are used."""
    k = _stage(progress, share, BATCH_STAGES)
    while k > 1 and rows % k:
        k //= 2
    return k
