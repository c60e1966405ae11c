"""What the FSDP2 helpers do in a single process without a process group: on an unsharded model
they must read and write the same one-file formats an unsharded run checkpoints (the two-process
sharded path is in test_distributed.py)."""

import io

import pytest
import torch

from budgetlm.model.config import ModelConfig
from budgetlm.model.decoder import Decoder
from budgetlm.train.sharding import (
    gather_optimizer,
    gather_weights,
    is_sharded,
    load_full_state,
    local_value,
)


def tiny(seed, tie=True):
    torch.manual_seed(seed)
    cfg = ModelConfig(
        size="custom",
        d_model=32,
        n_layers=2,
        n_heads=2,
        vocab_size=50,
        seq_len=16,
        tie_embeddings=tie,
    ).resolved()
    model = Decoder(cfg)
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=1e-2,
    )
    return model, optimizer


def train_step(model, optimizer):
    tokens = torch.randint(0, 50, (2, 8))
    model(tokens, tokens).backward()
    optimizer.step()
    optimizer.zero_grad()


def saved(value):
    """`value` after a torch.save / torch.load round trip, as a checkpoint holds it (unshared)."""
    buffer = io.BytesIO()
    torch.save(value, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_a_plain_module_is_not_sharded():
    model, _ = tiny(0)
    assert not is_sharded(model)
    assert not is_sharded(torch.nn.Linear(2, 2))


def test_local_value_of_a_plain_tensor_is_the_tensor_itself():
    t = torch.tensor([1.5, 2.0])
    assert local_value(t) is t


@pytest.mark.parametrize("tie", [True, False])
def test_gather_weights_of_an_unsharded_model_is_its_full_state_on_cpu(tie):
    model, _ = tiny(0, tie=tie)
    weights = gather_weights(model)
    expected = model.state_dict()
    assert set(weights) == set(expected)
    for name, value in weights.items():
        assert value.device.type == "cpu"
        assert torch.equal(value, expected[name]), name


def test_gather_optimizer_of_an_unsharded_model_is_its_index_keyed_state_dict():
    model, optimizer = tiny(0)
    train_step(model, optimizer)
    gathered = gather_optimizer(model, optimizer)
    expected = optimizer.state_dict()
    assert gathered["param_groups"] == expected["param_groups"]
    assert set(gathered["state"]) == set(expected["state"]) == set(range(len(expected["state"])))
    for i, state in expected["state"].items():
        for key in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(gathered["state"][i][key], state[key]), (i, key)
        assert float(gathered["state"][i]["step"]) == float(state["step"]) == 1.0


def test_gather_then_load_full_state_reproduces_the_training_run():
    model, optimizer = tiny(0)
    train_step(model, optimizer)
    weights, state = saved(gather_weights(model)), saved(gather_optimizer(model, optimizer))
    copy, copy_optimizer = tiny(1)  # other initial weights and fresh moments
    assert not torch.equal(copy.tok_emb.weight, model.tok_emb.weight)
    load_full_state(copy, copy_optimizer, weights, state)
    for name, value in model.state_dict().items():
        assert torch.equal(copy.state_dict()[name], value), name
    # the next step from the loaded state is the same step
    torch.manual_seed(7)
    train_step(model, optimizer)
    torch.manual_seed(7)
    train_step(copy, copy_optimizer)
    for name, value in model.state_dict().items():
        assert torch.allclose(copy.state_dict()[name], value, atol=1e-6), name


def test_load_full_state_accepts_what_optimizer_state_dict_saves():
    """An unsharded run's optim.pt holds optimizer.state_dict(): the same format loads."""
    model, optimizer = tiny(0)
    train_step(model, optimizer)
    copy, copy_optimizer = tiny(1)
    load_full_state(copy, copy_optimizer, model.state_dict(), saved(optimizer.state_dict()))
    loaded = copy_optimizer.state_dict()["state"]
    for i, state in optimizer.state_dict()["state"].items():
        assert torch.equal(loaded[i]["exp_avg_sq"], state["exp_avg_sq"])


def test_load_full_state_loads_only_what_it_is_given():
    model, optimizer = tiny(0)
    train_step(model, optimizer)
    copy, copy_optimizer = tiny(1)
    before = {k: v.clone() for k, v in copy.state_dict().items()}
    load_full_state(copy, copy_optimizer, None, optimizer.state_dict())
    assert all(torch.equal(copy.state_dict()[k], v) for k, v in before.items())
    assert len(copy_optimizer.state_dict()["state"]) == len(optimizer.state_dict()["state"])
    # weights only: no optimizer, or an empty optimizer state, leaves the moments fresh
    fresh, fresh_optimizer = tiny(1)
    load_full_state(fresh, None, model.state_dict(), None)
    load_full_state(fresh, fresh_optimizer, model.state_dict(), {"state": {}, "param_groups": []})
    assert fresh_optimizer.state_dict()["state"] == {}
    assert torch.equal(fresh.tok_emb.weight, model.tok_emb.weight)
