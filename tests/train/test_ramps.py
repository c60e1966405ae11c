"""Context and batch warm-ups: the stages they go through, and that a cut row keeps its tokens."""

from __future__ import annotations

import pytest
import torch

from budgetlm.errors import UserError
from budgetlm.train.config import TrainConfig
from budgetlm.train.objective import step_losses
from budgetlm.train.ramps import batch_splits, context_splits


def test_context_grows_in_quarters_of_the_warmup_then_stays_full() -> None:
    share = 0.2
    seen = [context_splits(p / 100, share, 256) for p in range(0, 100)]
    assert seen[0:5] == [8] * 5 and seen[5:10] == [4] * 5
    assert seen[10:15] == [2] * 5 and set(seen[15:]) == {1}
    assert context_splits(0.0, 0.0, 256) == 1  # off


def test_context_splits_keep_whole_rows_of_16_tokens_or_more() -> None:
    assert context_splits(0.0, 0.5, 64) == 4  # 8 would leave rows of 8 tokens
    assert context_splits(0.0, 0.5, 100) == 4  # 8 does not divide 100
    assert context_splits(0.0, 0.5, 17) == 1


def test_batch_is_spent_on_4_then_2_then_1_updates() -> None:
    assert [batch_splits(p, 0.3, 16) for p in (0.0, 0.09, 0.1, 0.19, 0.2, 0.29, 0.3)] == [
        4, 4, 2, 2, 1, 1, 1
    ]  # fmt: skip
    assert batch_splits(0.0, 0.3, 6) == 2 and batch_splits(0.0, 0.3, 1) == 1


@pytest.mark.parametrize("key", ["context_warmup", "batch_warmup"])
@pytest.mark.parametrize("bad", [-0.1, 1.0, "soon"])
def test_a_warmup_outside_0_1_is_refused(key, bad) -> None:
    with pytest.raises(UserError, match=f"train.{key}"):
        TrainConfig(**{key: bad})


def test_a_cut_row_is_scored_on_the_same_targets_with_shorter_context() -> None:
    seen = []

    def forward(inputs, targets, reduction="mean"):
        seen.append((inputs, targets))
        return inputs.float().mean()

    micro = torch.arange(2 * 33).view(2, 33)
    step_losses(forward, micro, context_splits=4)
    inputs, targets = seen[0]
    assert inputs.shape == targets.shape == (8, 8)
    assert torch.equal(targets - inputs, torch.ones_like(inputs))  # each target the next token
    assert torch.equal(inputs.flatten(), micro[:, :-1].flatten())
