"""G_stack growth: a deeper model whose blocks repeat a small model's, in order."""

from __future__ import annotations

import pytest
import torch

from budgetlm.errors import UserError
from budgetlm.model.config import ModelConfig
from budgetlm.model.decoder import Decoder
from budgetlm.model.growth import growth_factor, stack_flags, stack_layers


def shape(n_layers: int, **overrides) -> ModelConfig:
    fields = dict(size="custom", d_model=32, n_layers=n_layers, n_heads=4, vocab_size=64)
    return ModelConfig(**{**fields, "seq_len": 16, **overrides}).resolved()


def trained_like(config: ModelConfig, seed: int = 0) -> Decoder:
    """A model with every parameter random (norm gains too), so copies are recognisable."""
    torch.manual_seed(seed)
    model = Decoder(config)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.1 + (1.0 if p.ndim == 1 else 0.0))
    return model


@pytest.mark.parametrize(
    ("small_layers", "large_layers", "extra"),
    [
        (2, 4, {}),
        (2, 6, {}),
        (1, 3, {"tie_embeddings": False, "qkv_bias": True, "n_kv_heads": 2}),
    ],
)
def test_stacking_fills_every_block_of_the_large_model_in_order(small_layers, large_layers, extra):
    small_cfg, large_cfg = shape(small_layers, **extra), shape(large_layers, **extra)
    small = trained_like(small_cfg)
    grown = stack_layers(small.state_dict(), small_cfg, large_cfg)
    large = Decoder(large_cfg)
    expected = large.state_dict()
    assert set(grown) == set(expected)
    assert all(grown[k].shape == expected[k].shape for k in expected)
    large.load_state_dict(grown)  # strict
    source = small.state_dict()
    for key, tensor in large.state_dict().items():
        if key.startswith("blocks."):
            index, rest = key.split(".", 2)[1:]
            key = f"blocks.{int(index) % small_layers}.{rest}"
        assert torch.equal(tensor, source[key]), key


def test_grown_model_computes_the_small_models_blocks_in_sequence():
    """Stacking 2 blocks twice gives blocks 0, 1, 0, 1 (not 0, 0, 1, 1): the large model's
    logits equal the small model's modules applied in that order."""
    small_cfg, large_cfg = shape(2), shape(4)
    small = trained_like(small_cfg).eval()
    large = Decoder(large_cfg).eval()
    large.load_state_dict(stack_layers(small.state_dict(), small_cfg, large_cfg))
    idx = torch.randint(0, 64, (2, 10))
    cos, sin = small.rope_cos[:10], small.rope_sin[:10]
    with torch.no_grad():
        x = small.tok_emb(idx)
        for i in (0, 1, 0, 1):
            x = small.blocks[i](x, cos, sin)
        expected = small.lm_head(small.norm(x))
        torch.testing.assert_close(large(idx), expected)


def test_stacked_copies_are_independent_tensors():
    small_cfg, large_cfg = shape(2), shape(4)
    small = trained_like(small_cfg)
    grown = stack_layers(small.state_dict(), small_cfg, large_cfg)
    before = small.blocks[0].attn.q_proj.weight.clone()
    grown["blocks.0.attn.q_proj.weight"].add_(1.0)
    assert torch.equal(grown["blocks.2.attn.q_proj.weight"], before)
    assert torch.equal(small.blocks[0].attn.q_proj.weight, before)


def test_width_mismatch_names_the_shapes_and_the_fix():
    with pytest.raises(UserError) as e:
        growth_factor(shape(2), shape(4, d_model=64))
    message = str(e.value)
    assert "model.d_model 32 vs 64" in message and "model.ffn_hidden" in message
    assert "--model.size custom --model.d_model 32 --model.n_heads 4" in message
    assert "--model.n_layers 4" in message


@pytest.mark.parametrize("large_layers", [2, 3, 5])
def test_depth_must_be_a_multiple_of_at_least_two(large_layers):
    with pytest.raises(UserError, match=f"model.n_layers {large_layers} is not a multiple"):
        growth_factor(shape(2), shape(large_layers))


def test_growth_factor_counts_the_copies():
    assert growth_factor(shape(2), shape(8)) == 4
    assert growth_factor(shape(3), shape(6)) == 2


def test_a_model_with_value_embeddings_cannot_grow() -> None:
    small = shape(2, value_embeddings=1)
    with pytest.raises(UserError, match="value embeddings"):
        growth_factor(small, shape(4))


def test_stack_flags_keep_the_recipe_options() -> None:
    flags = stack_flags(shape(2, qk_norm=True, mlp="relu2"), 2)
    assert "--model.qk_norm true" in flags and "--model.mlp relu2" in flags
    assert "ffn_hidden" not in flags  # relu2's default width
    assert growth_factor(shape(2, qk_norm=True), shape(4, qk_norm=True)) == 2
    with pytest.raises(UserError, match="qk_norm"):
        growth_factor(shape(2, qk_norm=True), shape(4))
