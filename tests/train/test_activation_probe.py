"""The activation probe: a fake-tensor run counts what a real run keeps alive, for native and
transformers models, with and without recomputation and LoRA."""

import copy

import pytest
import torch

from budgetlm.model.build import build_model
from budgetlm.model.config import ModelConfig
from budgetlm.train.activation_probe import LiveBytes, peak_activation_bytes
from budgetlm.train.recompute import checkpoint_blocks

pytest.importorskip("transformers")

LLAMA = {
    "model_type": "llama", "vocab_size": 300, "hidden_size": 64, "intermediate_size": 96,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
}  # fmt: skip


def native() -> ModelConfig:
    return ModelConfig(size="custom", d_model=64, n_layers=2, n_heads=2, seq_len=64).resolved(300)


def llama(adapter: str = "none", dropout: float = 0.0) -> ModelConfig:
    from budgetlm.model.hf_backend import hf_backend_config

    config = hf_backend_config(dict(LLAMA), ".", 64)
    config.adapter, config.lora_dropout = adapter, dropout
    return config


def real_peak(config: ModelConfig, sequences: int, recompute: bool) -> int:
    """The same count on real CPU tensors: one forward and backward, weight gradients freed as
    they are made (as the probe does)."""
    torch.manual_seed(0)
    model = build_model(config)
    if recompute:
        checkpoint_blocks(model)
    for p in model.parameters():
        if p.requires_grad:
            p.register_post_accumulate_grad_hook(lambda p: setattr(p, "grad", None))
    tokens = torch.randint(0, config.vocab_size, (sequences, config.seq_len + 1))
    counter = LiveBytes()
    with counter:
        model(tokens[:, :-1], tokens[:, 1:]).backward()
    return counter.peak


@pytest.mark.parametrize("recompute", [False, True])
@pytest.mark.parametrize("name", ["native", "llama", "llama lora"])
def test_the_probe_matches_a_real_run_or_counts_more(name, recompute):
    config = {"native": native, "llama": llama, "llama lora": lambda: llama("lora")}[name]()
    probe, real = peak_activation_bytes(config, 2, recompute), real_peak(config, 2, recompute)
    # measured: native 1.07 (0.99 recomputed); transformers 1.21-1.26 (the fake run keeps more)
    assert 0.95 * real <= probe <= 1.35 * real


def test_the_peak_grows_with_sequences_and_falls_with_recomputation():
    config = native()
    one, two = peak_activation_bytes(config, 1), peak_activation_bytes(config, 2)
    assert 1.8 * one < two < 2.2 * one
    deeper = copy.deepcopy(config)
    deeper.n_layers = 6
    assert peak_activation_bytes(deeper, 1, recompute=True) < peak_activation_bytes(deeper, 1) / 2


def test_lora_dropout_keeps_its_own_copy_of_each_adapted_input():
    plain, dropped = peak_activation_bytes(llama("lora")), peak_activation_bytes(llama("lora", 0.1))
    assert dropped > 1.2 * plain
