"""Micro-batch sizing: the estimate grows as it should, and the fit keeps the global batch."""

import pytest
import torch

from budgetlm.model.config import ModelConfig
from budgetlm.train import memory
from budgetlm.train.memory import activation_bytes, available_bytes, fit_micro_batch


def test_activation_estimate_scales_with_sequences_width_and_depth():
    small = ModelConfig(size="custom", d_model=64, n_layers=2, n_heads=2).resolved(256)
    assert activation_bytes(small, 8) == 8 * activation_bytes(small, 1)
    wider = ModelConfig(size="custom", d_model=128, n_layers=2, n_heads=2).resolved(256)
    deeper = ModelConfig(size="custom", d_model=64, n_layers=4, n_heads=2).resolved(256)
    assert activation_bytes(wider, 1) > activation_bytes(small, 1)
    assert activation_bytes(deeper, 1) > activation_bytes(small, 1)
    # 34 bytes per layer, width and token (Korthikanti et al.), plus fp32 logits, x1.5
    per_token = 2 * 34 * 64 + 12 * 256
    assert activation_bytes(small, 1) == int(1.5 * small.seq_len * per_token)


def test_fit_takes_the_largest_dividing_micro_batch_that_fits():
    assert fit_micro_batch(16, 16, per_sequence=100, fixed=0, available=None) == 16
    assert fit_micro_batch(16, 16, per_sequence=100, fixed=0, available=10_000) == 16
    assert fit_micro_batch(16, 16, per_sequence=100, fixed=0, available=1_000) == 8
    assert fit_micro_batch(16, 12, per_sequence=100, fixed=500, available=1_000) == 4
    assert fit_micro_batch(16, 16, per_sequence=100, fixed=5_000, available=1_000) == 1


def test_cpu_memory_is_read_from_the_os():
    free = available_bytes(torch.device("cpu"))
    assert free is None or free > 0


def test_a_run_that_does_not_fit_accumulates_smaller_micro_batches(tiny_config, monkeypatch):
    from budgetlm import api
    from budgetlm.config import load_config
    from budgetlm.data.store.dataset import PreparedDataset
    from budgetlm.model.flops import count_parameters

    config = tiny_config(**{"train.micro_batch_size": 8})
    model = config.model.resolved(PreparedDataset(config.data.prepared).tokenizer.vocab_size)
    value = memory.activation_value_bytes(config.train.precision)
    # memory this tight is within the probe margin: the fit measures the activations
    per_sequence = memory.measured_sequence_bytes(model, False, value)
    needed = memory.state_bytes(count_parameters(model)["total"]) + 2 * per_sequence
    monkeypatch.setattr("budgetlm.job.decide.available_bytes", lambda device: needed)
    logs = []
    result = api.pretrain(config, log=logs.append)
    assert any("using 2 and accumulating 4 micro-batches" in line for line in logs)
    saved = load_config(result.run_dir / "config.yaml")
    assert (saved.train.micro_batch_size, saved.train.batch_size) == (2, 8)


def test_recomputed_activations_and_frozen_weights_cost_less():
    config = ModelConfig(size="custom", d_model=64, n_layers=8, n_heads=4, seq_len=64).resolved(300)
    assert activation_bytes(config, 1, recompute=True) < activation_bytes(config, 1) / 2
    assert memory.state_bytes(1000) == 16_000
    assert memory.state_bytes(1000, trainable=10) == 4_000 + 120


def test_checkpointing_turns_on_only_when_nothing_fits_without_it(tiny_config, monkeypatch):
    from budgetlm import api
    from budgetlm.config import load_config
    from budgetlm.data.store.dataset import PreparedDataset
    from budgetlm.model.flops import count_parameters

    config = tiny_config(**{"train.micro_batch_size": 8})
    model = config.model.resolved(PreparedDataset(config.data.prepared).tokenizer.vocab_size)
    fixed = memory.state_bytes(count_parameters(model)["total"])
    value = memory.activation_value_bytes(config.train.precision)
    free = fixed + memory.measured_sequence_bytes(model, True, value)  # one recomputed fits
    assert free < fixed + memory.measured_sequence_bytes(model, False, value)  # no plain one
    monkeypatch.setattr("budgetlm.job.decide.available_bytes", lambda device: free)
    logs = []
    result = api.pretrain(config, log=logs.append)
    assert any(line.startswith("activation checkpointing on") for line in logs)
    saved = load_config(result.run_dir / "config.yaml")
    assert saved.train.activation_checkpointing is True and saved.train.micro_batch_size == 1


def test_a_job_that_fits_nowhere_names_the_smallest_fix(tiny_config, monkeypatch):
    from budgetlm import api
    from budgetlm.errors import UserError

    monkeypatch.setattr("budgetlm.job.decide.available_bytes", lambda device: 1000)
    with pytest.raises(UserError, match=r"training needs ~.* GiB .* free; fix: a shorter"):
        api.pretrain(tiny_config(), log=lambda _: None)


def test_plentiful_memory_uses_the_formula_and_tight_memory_measures(tiny_config, monkeypatch):
    from budgetlm import api

    calls = []
    measure = memory.measured_sequence_bytes
    monkeypatch.setattr(
        "budgetlm.job.decide.measured_sequence_bytes",
        lambda *a: calls.append(a) or measure(*a),
    )
    api.pretrain(tiny_config(**{"budget": "2steps"}), log=lambda _: None)
    assert calls == []  # this machine's free memory is far above a tiny model's needs
    monkeypatch.setattr("budgetlm.job.decide.available_bytes", lambda device: 1000)
    with pytest.raises(Exception, match="training needs"):
        api.pretrain(tiny_config(**{"budget": "2steps", "name": "tight"}), log=lambda _: None)
    assert calls  # within the margin: measured


def test_the_optimizer_step_temporaries_count_on_cuda_only():
    assert memory.optimizer_step_bytes(1000, torch.device("cuda")) == 4000
    assert memory.optimizer_step_bytes(1000, torch.device("cpu")) == 0
