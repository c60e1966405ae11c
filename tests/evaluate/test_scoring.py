import math

import numpy as np
import torch

from budgetlm.data.store.shards import ShardWriter, TokenShard
from budgetlm.evaluate.scoring import document_losses


class Uniform(torch.nn.Module):
    """Equal probability for each of 7 tokens: every document scores ln 7."""

    def forward(self, idx, targets, reduction="mean"):
        logits = torch.zeros(*idx.shape, 7)
        return torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), targets.flatten(), reduction=reduction
        ).view_as(targets)


def test_every_document_gets_its_mean_loss(tmp_path):
    writer = ShardWriter(tmp_path / "s", np.dtype("<u2"))
    for doc in ([1, 2, 3], [4], [], [5, 6, 1, 2, 3, 4, 5, 6, 1, 2]):
        writer.add_document(doc, eos_id=0)
    writer.close()
    shard = TokenShard(tmp_path / "s", np.dtype("<u2"))
    scores = document_losses(Uniform(), shard, seq_len=4, device=torch.device("cpu"))
    assert np.allclose(scores[[0, 1, 3]], math.log(7))
    assert np.isnan(scores[2])  # a lone EOS has nothing to predict


class TargetIdLoss(torch.nn.Module):
    """The loss of predicting token t is t itself (0 for ignored targets): scores are the mean
    of the scored target ids, so which tokens were scored can be read off them."""

    def forward(self, idx, targets, reduction="mean"):
        return torch.where(targets == -100, 0, targets).float()


def test_windows_score_later_tokens_and_padding_is_ignored(tmp_path):
    writer = ShardWriter(tmp_path / "s", np.dtype("<u2"))
    writer.add_document(list(range(1, 10)), eos_id=0)  # 1..9 then EOS: targets 2..9, 0
    writer.add_document([7, 8], eos_id=0)  # a short window padded in the same batch
    writer.close()
    shard = TokenShard(tmp_path / "s", np.dtype("<u2"))

    def score(windows):
        return document_losses(TargetIdLoss(), shard, 4, torch.device("cpu"), windows=windows)

    assert score(1)[0] == np.mean([2, 3, 4, 5])  # the first seq_len + 1 tokens
    assert score(2)[0] == np.mean(range(2, 10))
    assert score(3)[0] == np.mean([*range(2, 10), 0])  # the whole document, EOS included
    assert score(1)[1] == np.mean([8, 0])
