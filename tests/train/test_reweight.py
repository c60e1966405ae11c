import math

import pytest
import torch

from budgetlm.config import load_config
from budgetlm.errors import UserError
from budgetlm.model.config import ModelConfig
from budgetlm.model.decoder import Decoder
from budgetlm.train.objective import step_losses
from budgetlm.train.reweight import normalize_losses, sample_weights


def test_normalize_maps_the_batch_to_minus_delta_plus_delta():
    x = normalize_losses(torch.tensor([2.0, 3.0, 4.0]), delta=0.5)
    assert torch.allclose(x, torch.tensor([-0.5, 0.0, 0.5]))
    assert torch.equal(normalize_losses(torch.tensor([3.0, 3.0])), torch.zeros(2))


@pytest.mark.parametrize("strategy", ["linupper", "quadratic", "extremes", "none"])
def test_weights_sum_to_one(strategy):
    losses = torch.tensor([1.0, 5.0, 2.5, 3.0, 4.2])
    w = sample_weights(losses, strategy)
    assert w.shape == losses.shape and (w > 0).all()
    assert math.isclose(w.sum().item(), 1.0, rel_tol=1e-6)


def test_linupper_grows_with_the_loss_up_to_the_midpoint_then_is_flat():
    losses = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0])  # normalized: -1, -0.5, 0, 0.5, 1
    w = sample_weights(losses, "linupper")
    # g = min(x + 1, 1) = 0, 0.5, 1, 1, 1: weights proportional to e^g
    expected = torch.exp(torch.tensor([0.0, 0.5, 1.0, 1.0, 1.0]))
    assert torch.allclose(w, expected / expected.sum())
    assert (w[1:] >= w[:-1]).all()  # never decreasing in the loss
    assert math.isclose(w[-1] / w[0], math.e, rel_tol=1e-6)  # e^(2 delta / 2) with delta 1


def test_quadratic_favours_the_middle_and_extremes_the_ends():
    losses = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0])
    q = sample_weights(losses, "quadratic")
    assert q.argmax() == 2 and torch.allclose(q, q.flip(0))
    e = sample_weights(losses, "extremes")
    assert e.argmin() == 2 and torch.allclose(e, e.flip(0))


def test_temperature_sharpens_and_equal_losses_weigh_equally():
    losses = torch.tensor([0.0, 4.0])
    soft = sample_weights(losses, "linupper", temperature=1.0)
    sharp = sample_weights(losses, "linupper", temperature=0.25)
    assert sharp[1] / sharp[0] > soft[1] / soft[0]
    assert torch.allclose(sample_weights(torch.full((4,), 2.0), "linupper"), torch.full((4,), 0.25))


def _model_and_batch():
    torch.manual_seed(0)
    config = ModelConfig(size="custom", d_model=32, n_layers=2, n_heads=2, seq_len=16)
    model = Decoder(config.resolved(vocab_size=50))
    micro = torch.randint(0, 50, (6, 17))
    return model, micro


def test_none_is_the_plain_forward_bitwise():
    model, micro = _model_and_batch()
    loss, objective = step_losses(model, micro, "none")
    assert loss is objective
    loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model(micro[:, :-1], micro[:, 1:]).backward()
    assert torch.equal(loss, model(micro[:, :-1], micro[:, 1:]))
    assert all(torch.equal(a, p.grad) for a, p in zip(grads, model.parameters(), strict=True))


def test_weighted_objective_logs_the_unweighted_mean():
    model, micro = _model_and_batch()
    loss, objective = step_losses(model, micro, "linupper")
    with torch.no_grad():
        per_token = model(micro[:, :-1], micro[:, 1:], reduction="none")
    assert torch.allclose(loss, model(micro[:, :-1], micro[:, 1:]), atol=1e-6)
    per_sequence = per_token.mean(dim=1)
    weights = sample_weights(per_sequence, "linupper")
    assert torch.allclose(objective, (weights * per_sequence).sum(), atol=1e-6)
    assert not torch.allclose(objective, loss)  # the weighting does change the objective


def test_bad_settings_fail_when_the_config_loads():
    with pytest.raises(UserError, match="linupper"):
        load_config(None, [("train.sample_weighting", "linuper")])
    with pytest.raises(UserError, match="temperature"):
        load_config(
            None,
            [("train.sample_weighting", "linupper"), ("train.sample_weighting_temperature", 0)],
        )


def test_a_reweighted_run_logs_the_same_first_loss(tiny_config):
    from budgetlm import api
    from budgetlm.run.records import read_metrics

    plain = api.pretrain(tiny_config(name="plain", budget="4steps"), log=lambda _: None)
    weighted = api.pretrain(
        tiny_config(name="weighted", budget="4steps", **{"train.sample_weighting": "linupper"}),
        log=lambda _: None,
    )
    first = [
        next(r["loss"] for r in read_metrics(run.run_dir) if r["type"] == "train")
        for run in (plain, weighted)
    ]
    assert math.isclose(first[0], first[1], rel_tol=1e-4)  # same model and batch at step 1
