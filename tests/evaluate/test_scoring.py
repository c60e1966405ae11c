import math

import numpy as np
import torch

from budgetlm.data.shards import ShardWriter, TokenShard
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
