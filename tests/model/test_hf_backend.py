"""The transformers backend: which folders it accepts, the one-line refusals, the interface it
shares with the native decoder, and its exact parameter counts."""

import json

import pytest
import torch

from budgetlm.errors import UserError
from budgetlm.model.build import build_model
from budgetlm.model.flops import count_parameters, flops_per_token
from tests.conftest import write_hf_model

transformers = pytest.importorskip("transformers")

from budgetlm.model.hf_backend import (  # noqa: E402
    HFCausalLM,
    hf_backend_config,
    load_pretrained,
    read_architecture,
)


def _config_json(folder, **values):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(values))
    return folder


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"model_type": "bert"}, "encoder-only"),
        ({"model_type": "t5", "is_encoder_decoder": True}, "encoder-decoder"),
        ({"model_type": "no-such-arch"}, "has no causal LM for"),
        (
            {"model_type": "llama", "auto_map": {"AutoModelForCausalLM": "x.Y"}},
            "--trust-remote-code",
        ),
    ],
)
def test_folders_transformers_cannot_train_as_a_causal_lm_are_refused(tmp_path, values, message):
    with pytest.raises(UserError, match=message) as error:
        read_architecture(_config_json(tmp_path / "m", **values))
    assert "\n" not in str(error.value)


def test_remote_code_is_accepted_only_when_trusted(tmp_path):
    folder = _config_json(
        tmp_path / "m", model_type="llama", auto_map={"AutoModelForCausalLM": "x.Y"}
    )
    assert read_architecture(folder, trust_remote_code=True)["model_type"] == "llama"


def test_the_wrapped_model_computes_transformers_own_logits_and_loss(tmp_path):
    hf_model = write_hf_model(tmp_path / "hf", "qwen3", head_dim=8)
    config = hf_backend_config(read_architecture(tmp_path / "hf"), str(tmp_path / "hf"))
    model = build_model(config.resolved())
    assert isinstance(model, HFCausalLM) and config.seq_len == 64
    load_pretrained(model, tmp_path / "hf")
    model.eval()
    ids = torch.randint(0, 320, (2, 17), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        theirs = hf_model(ids[:, :-1], labels=ids[:, :-1]).logits
        assert torch.allclose(model(ids[:, :-1]), theirs, atol=1e-5)
        targets = ids[:, 1:].clone()
        targets[0, :4] = -100
        loss = model(ids[:, :-1], targets)
        expected = torch.nn.functional.cross_entropy(
            theirs.flatten(0, 1), targets.flatten(), ignore_index=-100
        )
        assert loss.item() == pytest.approx(expected.item(), abs=1e-5)
        assert model(ids[:, :-1], targets, reduction="none").shape == targets.shape
    assert len(model.blocks) == 2  # the decoder layers, for sharding and checkpointing
    with pytest.raises(ValueError, match="exceeds the model's seq_len"):
        model(torch.zeros(1, 65, dtype=torch.long))


@pytest.mark.parametrize("tie", [False, True])
def test_parameter_counts_are_the_built_models(tmp_path, tie):
    hf_model = write_hf_model(tmp_path / "hf", "olmo2", tie=tie)
    config = hf_backend_config(read_architecture(tmp_path / "hf"), str(tmp_path / "hf"))
    counts = count_parameters(config)
    unique = {id(p): p for p in hf_model.parameters()}
    assert counts["total"] == sum(p.numel() for p in unique.values())
    vocab_matrix = 328 * 32
    assert counts["embedding"] == vocab_matrix * (1 if tie else 2)
    linears = sum(m.weight.numel() for m in hf_model.modules() if isinstance(m, torch.nn.Linear))
    assert flops_per_token(config) == 6 * linears + 12 * 2 * 32 * config.seq_len


def test_a_backend_config_needs_its_architecture():
    from budgetlm.model.config import ModelConfig

    with pytest.raises(UserError, match="model.backend 'hf' needs model.hf_config"):
        ModelConfig(backend="hf").resolved(100)
    with pytest.raises(UserError, match="unknown backend 'hff'.*did you mean 'hf'"):
        ModelConfig(backend="hff").resolved(100)
