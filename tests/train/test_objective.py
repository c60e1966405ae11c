"""The step objective: the logged loss is plain cross-entropy; the z-loss only joins the one
backpropagated, and pulls the softmax normaliser toward 1."""

from __future__ import annotations

import pytest
import torch

from budgetlm.errors import UserError
from budgetlm.model.config import ModelConfig
from budgetlm.model.decoder import Decoder
from budgetlm.train.config import TrainConfig
from budgetlm.train.objective import step_losses


def model() -> Decoder:
    torch.manual_seed(0)
    config = ModelConfig(size="custom", d_model=32, n_layers=1, n_heads=4, vocab_size=64)
    return Decoder(config.resolved())


def micro() -> torch.Tensor:
    return torch.randint(0, 64, (4, 17), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("strategy", ["none", "linupper"])
def test_z_loss_adds_the_mean_squared_log_normaliser_to_the_objective_only(strategy) -> None:
    net, batch = model(), micro()
    with torch.no_grad():
        net.lm_head.weight.mul_(20)  # logits far from a normalised softmax: log Z well above 0
        plain_loss, plain_objective = step_losses(net, batch, strategy)
        loss, objective = step_losses(net, batch, strategy, z_loss=1e-2)
        log_z = torch.logsumexp(net(batch[:, :-1]), dim=-1)
    torch.testing.assert_close(loss, plain_loss)
    torch.testing.assert_close(objective, plain_objective + 1e-2 * log_z.square().mean())


def test_z_loss_steps_lower_the_normaliser() -> None:
    batch = micro()

    def log_z_after(z_loss: float) -> float:
        net = model()
        optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
        for _ in range(20):
            _, objective = step_losses(net, batch, z_loss=z_loss)
            optimizer.zero_grad()
            objective.backward()
            optimizer.step()
        with torch.no_grad():
            return torch.logsumexp(net(batch[:, :-1]), dim=-1).square().mean().item()

    assert log_z_after(1.0) < 0.8 * log_z_after(0.0)


@pytest.mark.parametrize("bad", [-1e-4, "high", True])
def test_a_bad_z_loss_is_refused(bad) -> None:
    with pytest.raises(UserError, match="train.z_loss"):
        TrainConfig(z_loss=bad)
