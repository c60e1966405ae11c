"""Activation checkpointing recomputes blocks in backward: the same loss and gradients, for the
native decoder and a transformers model alike."""

import pytest
import torch

from budgetlm.model.build import build_model
from budgetlm.model.config import ModelConfig
from budgetlm.train.recompute import checkpoint_blocks


def _loss_and_grads(model, ids):
    model.zero_grad()
    loss = model(ids[:, :-1], ids[:, 1:])
    loss.backward()
    return loss.item(), {
        n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None
    }


def _same_with_and_without(model):
    ids = torch.randint(0, 300, (2, 17), generator=torch.Generator().manual_seed(0))
    before = _loss_and_grads(model, ids)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    checkpoint_blocks(model)
    checkpoint_blocks(model)  # twice is once
    after = _loss_and_grads(model, ids)
    assert after[0] == pytest.approx(before[0], abs=1e-6)
    assert before[1].keys() == after[1].keys()
    assert all(torch.allclose(before[1][n], after[1][n], atol=1e-6) for n in before[1])
    assert model.state_dict().keys() == state.keys()  # checkpoints see the same model


def test_native_decoder_recomputes_to_the_same_gradients():
    torch.manual_seed(0)
    config = ModelConfig(size="custom", d_model=32, n_layers=2, n_heads=2, seq_len=32).resolved(300)
    _same_with_and_without(build_model(config))


def test_transformers_model_recomputes_to_the_same_gradients(tmp_path):
    pytest.importorskip("transformers")
    from budgetlm.model.hf_backend import hf_backend_config, read_architecture
    from tests.conftest import write_hf_model

    write_hf_model(tmp_path / "hf", "qwen3", head_dim=8)
    config = hf_backend_config(read_architecture(tmp_path / "hf"), str(tmp_path / "hf"))
    _same_with_and_without(build_model(config.resolved()))
