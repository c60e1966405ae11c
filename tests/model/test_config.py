"""ModelConfig: presets resolve near their nominal sizes, explicit fields win, bad input is a
UserError naming the key."""

from __future__ import annotations

import pytest

from budgetlm.errors import UserError
from budgetlm.model.config import MODEL_SIZES, ModelConfig, swiglu_hidden
from budgetlm.model.flops import count_parameters

# Nominal parameter counts; all at vocab 4096 except "base" (vocab 32000).
NOMINAL = {"nano": 1e6, "micro": 3e6, "tiny": 8e6, "small": 25e6, "medium": 50e6, "base": 125e6}


def test_presets_are_ordered_and_have_nominal_targets() -> None:
    assert list(MODEL_SIZES) == list(NOMINAL)
    totals = [
        count_parameters(ModelConfig(size=s).resolved(32000 if s == "base" else 4096))["total"]
        for s in MODEL_SIZES
    ]
    assert totals == sorted(totals)


@pytest.mark.parametrize("size", list(MODEL_SIZES))
def test_every_preset_resolves_near_its_nominal_size(size: str) -> None:
    vocab = 32000 if size == "base" else 4096
    config = ModelConfig(size=size).resolved(vocab)
    assert config.is_resolved()
    total = count_parameters(config)["total"]
    # "~N params" is a name, not a contract: within 10% of the nominal count.
    assert abs(total - NOMINAL[size]) / NOMINAL[size] < 0.10, (size, total)


def test_base_is_about_125m_at_vocab_32000() -> None:
    total = count_parameters(ModelConfig(size="base").resolved(32000))["total"]
    assert abs(total - 125e6) < 0.02 * 125e6


def test_resolve_fills_preset_and_derived_fields() -> None:
    config = ModelConfig(size="small").resolved(vocab_size=100)
    preset = MODEL_SIZES["small"]
    assert (config.d_model, config.n_layers, config.n_heads) == (
        preset["d_model"],
        preset["n_layers"],
        preset["n_heads"],
    )
    assert config.n_kv_heads == preset["n_kv_heads"]
    assert config.vocab_size == 100
    assert config.ffn_hidden == swiglu_hidden(512) == 1376  # 8/3*512 = 1365.3 -> 43*32
    assert config.size == "small"


def test_mha_by_default_when_preset_has_no_kv_heads() -> None:
    config = ModelConfig(size="nano").resolved(64)
    assert config.n_kv_heads == config.n_heads


def test_explicit_fields_override_the_preset() -> None:
    config = ModelConfig(size="micro", d_model=384, n_layers=3, ffn_hidden=100).resolved(64)
    assert (config.d_model, config.n_layers, config.ffn_hidden) == (384, 3, 100)
    assert config.n_heads == MODEL_SIZES["micro"]["n_heads"]


def test_explicit_vocab_wins_and_must_cover_the_tokenizer() -> None:
    assert ModelConfig(size="nano", vocab_size=128).resolved(100).vocab_size == 128
    with pytest.raises(UserError, match="model.vocab_size"):
        ModelConfig(size="nano", vocab_size=64).resolved(100)


def test_resolved_is_idempotent_and_does_not_mutate() -> None:
    original = ModelConfig(size="tiny")
    once = original.resolved(4096)
    assert once.resolved() == once
    assert original.d_model is None and not original.is_resolved()


def test_custom_size() -> None:
    config = ModelConfig(size="custom", d_model=48, n_layers=1, n_heads=3, vocab_size=10).resolved()
    assert config.head_dim == 16 and config.n_kv_heads == 3
    with pytest.raises(UserError, match=r"model\.n_layers.*model\.n_heads|model\.n_layers"):
        ModelConfig(size="custom", d_model=48).resolved(10)


def test_unknown_size_suggests_the_closest() -> None:
    with pytest.raises(UserError, match=r"model\.size.*did you mean 'micro'"):
        ModelConfig(size="mirco").resolved(64)


def test_missing_vocab() -> None:
    with pytest.raises(UserError, match="model.vocab_size"):
        ModelConfig(size="nano").resolved()


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"d_model": 100, "n_heads": 3}, "model.d_model"),  # 100 % 3 != 0
        ({"d_model": 60, "n_heads": 4}, "model.n_heads"),  # head dim 15 is odd
        ({"n_heads": 4, "n_kv_heads": 3}, "model.n_kv_heads"),
        ({"n_layers": 0}, "model.n_layers"),
        ({"d_model": -8}, "model.d_model"),
        ({"seq_len": 0}, "model.seq_len"),
        ({"ffn_hidden": 0}, "model.ffn_hidden"),
        ({"n_kv_heads": 0}, "model.n_kv_heads"),
        ({"norm_eps": 0.0}, "model.norm_eps"),
        ({"init_std": -0.1}, "model.init_std"),
        ({"rope_theta": 0}, "model.rope_theta"),
        ({"n_layers": 2.5}, "model.n_layers"),
    ],
)
def test_invalid_shapes_name_the_key(overrides: dict, key: str) -> None:
    with pytest.raises(UserError, match=key.replace(".", r"\.")):
        ModelConfig(size="nano", **overrides).resolved(64)
