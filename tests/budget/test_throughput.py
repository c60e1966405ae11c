"""Measured training speed of a shape, and its cache."""

import json

import pytest
import torch

from budgetlm.budget.throughput import measure_throughput
from budgetlm.model.config import ModelConfig
from budgetlm.train.config import TrainConfig


@pytest.fixture
def quiet(monkeypatch):
    monkeypatch.setattr("budgetlm.budget.throughput._cpu_busy", lambda: False)


def test_measures_tokens_per_second_and_caches_per_setting(tmp_path, quiet):
    model = ModelConfig(size="custom", d_model=32, n_layers=1, n_heads=2, seq_len=32).resolved(300)
    train = TrainConfig(micro_batch_size=4)
    cache = tmp_path / "throughput.json"
    first = measure_throughput(model, train, torch.device("cpu"), seconds=0.2, cache_file=cache)
    assert not first.cached and first.steps_timed >= 1
    assert first.tokens_per_second == 4 * 32 / first.seconds_per_step
    again = measure_throughput(model, train, torch.device("cpu"), cache_file=cache)
    assert again.cached and again.tokens_per_second == first.tokens_per_second
    fp32 = TrainConfig(micro_batch_size=4, precision="fp32")
    other = measure_throughput(model, fp32, torch.device("cpu"), seconds=0.2, cache_file=cache)
    assert not other.cached and len(json.loads(cache.read_text())) == 2


def test_a_measurement_on_a_busy_machine_is_flagged_and_not_cached(tmp_path, monkeypatch):
    monkeypatch.setattr("budgetlm.budget.throughput._cpu_busy", lambda: True)
    model = ModelConfig(size="custom", d_model=32, n_layers=1, n_heads=2, seq_len=32).resolved(300)
    cache = tmp_path / "throughput.json"
    result = measure_throughput(model, TrainConfig(micro_batch_size=2), torch.device("cpu"),
                                seconds=0.1, cache_file=cache)  # fmt: skip
    assert result.busy and not cache.exists()


def test_a_damaged_cache_is_measured_again(tmp_path, quiet):
    model = ModelConfig(size="custom", d_model=32, n_layers=1, n_heads=2, seq_len=32).resolved(300)
    cache = tmp_path / "throughput.json"
    cache.write_text("{not json")
    result = measure_throughput(model, TrainConfig(micro_batch_size=2), torch.device("cpu"),
                                seconds=0.1, cache_file=cache)  # fmt: skip
    assert not result.cached and json.loads(cache.read_text())
