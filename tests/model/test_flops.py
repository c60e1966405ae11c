"""Analytic parameter and FLOP counts agree with the module and with PyTorch's FLOP counter."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from budgetlm.model.config import MODEL_SIZES, ModelConfig
from budgetlm.model.decoder import Decoder
from budgetlm.model.flops import count_parameters, flops_per_token


def tiny(**overrides) -> ModelConfig:
    fields = dict(size="custom", d_model=32, n_layers=2, n_heads=4, vocab_size=64, seq_len=16)
    return ModelConfig(**{**fields, **overrides}).resolved()


def unique_numel(model: torch.nn.Module) -> int:
    # Module.parameters() already skips a tied tensor's second name; dedupe by identity anyway.
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())


@pytest.mark.parametrize(
    "config",
    [
        tiny(),
        tiny(tie_embeddings=False),
        tiny(n_kv_heads=2),
        tiny(n_kv_heads=1, tie_embeddings=False, ffn_hidden=40),
        tiny(qk_norm=True, mlp="relu2"),
        tiny(n_kv_heads=2, value_embeddings=1),
    ],
    ids=["tied", "untied", "gqa", "mqa-untied-ffn", "qknorm-relu2", "value-embeddings"],
)
def test_count_matches_module(config: ModelConfig) -> None:
    counts = count_parameters(config)
    model = Decoder(config)
    assert counts["total"] == unique_numel(model)
    assert counts["total"] == counts["embedding"] + counts["non_embedding"]
    vocab_matrix = config.vocab_size * config.d_model
    value_tables = config.value_embeddings * config.vocab_size * config.n_kv_heads * 8
    assert counts["embedding"] == vocab_matrix * (1 if config.tie_embeddings else 2) + value_tables


@pytest.mark.parametrize("size", list(MODEL_SIZES))
def test_count_matches_module_for_presets(size: str) -> None:
    config = ModelConfig(size=size).resolved(32000 if size == "base" else 4096)
    with torch.device("meta"):  # shapes only: no memory, no init cost
        model = Decoder(config)
    assert count_parameters(config)["total"] == unique_numel(model)


def test_hand_computed_tiny_config() -> None:
    config = tiny(n_kv_heads=2)  # head dim 8, kv width 16, ffn 96 (8/3*32 = 85.3 -> 3*32)
    assert config.ffn_hidden == 96
    attention = 32 * 32 + 32 * 16 + 32 * 16 + 32 * 32  # q, k, v, o = 3072
    mlp = 3 * 32 * 96  # gate, up, down = 9216
    norms = 2 * 32
    assert count_parameters(config) == {
        "total": 2 * (attention + mlp + norms) + 32 + 64 * 32,
        "embedding": 64 * 32,
        "non_embedding": 2 * (attention + mlp + norms) + 32,
    }
    matmul = 2 * (attention + mlp) + 64 * 32  # blocks + lm head = 26624
    assert flops_per_token(config) == 6 * matmul + 12 * 2 * 32 * 16 == 172032


@pytest.mark.parametrize("options", [{}, {"mlp": "relu2"}], ids=["swiglu", "relu2"])
def test_flops_equal_torch_flop_counter(options) -> None:
    # The math SDPA backend runs attention as bmm's that FlopCounterMode sees (the fused CPU
    # kernel is invisible to it); it computes the full T x T scores, as the formula assumes.
    config = tiny(n_kv_heads=2, tie_embeddings=False, **options)
    model = Decoder(config)
    batch, seq = 3, config.seq_len
    idx = torch.randint(0, config.vocab_size, (batch, seq))
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(idx, idx).backward()
    assert counter.get_total_flops() == flops_per_token(config) * batch * seq


def test_unresolved_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="resolved"):
        count_parameters(ModelConfig())
