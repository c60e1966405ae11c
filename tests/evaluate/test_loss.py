import math

import numpy as np
import pytest
import torch

from budgetlm.evaluate.loss import fixed_windows, validation_loss


class UniformModel(torch.nn.Module):
    """Predicts every token with equal probability: its loss is exactly ln(vocab)."""

    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.vocab = vocab
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, idx, targets, reduction="mean"):
        logits = torch.zeros(*idx.shape, self.vocab) + self.dummy
        return torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), targets.flatten(), reduction=reduction
        ).view_as(targets)


def test_uniform_model_scores_ln_vocab_on_every_domain():
    streams = {"a": np.arange(100) % 7, "b": np.arange(50) % 7}
    losses = validation_loss(UniformModel(7), streams, 8, 64, 3, torch.device("cpu"))
    assert losses == pytest.approx({"a": math.log(7), "b": math.log(7)})


def test_windows_are_consecutive_and_capped():
    w = fixed_windows(np.arange(100), seq_len=10, max_tokens=35)
    assert w.shape == (3, 11) and w[1, 0] == 10 and w[2, -1] == 30


def test_short_stream_uses_one_shorter_window():
    w = fixed_windows(np.arange(6), seq_len=10, max_tokens=100)
    assert w.shape == (1, 6)
