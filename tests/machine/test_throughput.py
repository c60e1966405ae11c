"""Measured training speed of a shape, and its cache."""

import json

import pytest
import torch

from budgetlm.machine.throughput import measure_throughput
from budgetlm.model.config import ModelConfig
from budgetlm.train.config import TrainConfig

MODEL = ModelConfig(size="custom", d_model=32, n_layers=1, n_heads=2, seq_len=32).resolved(300)


@pytest.fixture
def quiet(monkeypatch):
    monkeypatch.setattr("budgetlm.machine.throughput._cpu_busy", lambda: False)


def test_measures_tokens_per_second_and_caches_per_precision(tmp_path, quiet):
    train = TrainConfig(micro_batch_size=4, precision="bf16")
    cache = tmp_path / "machine.json"
    first = measure_throughput(MODEL, train, torch.device("cpu"), seconds=0.2, cache_file=cache)
    assert not first.cached and first.steps_timed >= 1 and first.precision == "bf16"
    assert first.tokens_per_second == 4 * 32 / first.seconds_per_step
    assert first.forward_tokens_per_second > 0
    again = measure_throughput(MODEL, train, torch.device("cpu"), cache_file=cache)
    assert again.cached and again.tokens_per_second == first.tokens_per_second
    fp32 = TrainConfig(micro_batch_size=4, precision="fp32")
    other = measure_throughput(MODEL, fp32, torch.device("cpu"), seconds=0.2, cache_file=cache)
    assert not other.cached and len(json.loads(cache.read_text())) == 2


def test_a_measurement_of_another_machine_is_not_reused(tmp_path, quiet, monkeypatch):
    train = TrainConfig(micro_batch_size=2, precision="fp32")
    cache = tmp_path / "machine.json"
    measure_throughput(MODEL, train, torch.device("cpu"), seconds=0.1, cache_file=cache)
    monkeypatch.setattr(
        "budgetlm.machine.fingerprint._cpuinfo",
        lambda: {"model name": "Other CPU", "flags": "avx2 amx_bf16 amx_tile"},
    )
    moved = measure_throughput(MODEL, train, torch.device("cpu"), seconds=0.1, cache_file=cache)
    assert not moved.cached and len(json.loads(cache.read_text())) == 2


def test_a_precision_too_slow_to_matter_is_given_up_after_its_first_step(tmp_path, quiet):
    train = TrainConfig(micro_batch_size=2, precision="bf16")
    result = measure_throughput(MODEL, train, torch.device("cpu"), seconds=5.0,
                                cache_file=tmp_path / "m.json", give_up_after=0.0)  # fmt: skip
    assert result.steps_timed == 0 and result.seconds_per_step > 0


def test_auto_is_not_a_precision_to_measure():
    with pytest.raises(ValueError, match="measure one precision"):
        measure_throughput(MODEL, TrainConfig(precision="auto"), torch.device("cpu"))


def test_a_measurement_on_a_busy_machine_is_flagged_and_not_cached(tmp_path, monkeypatch):
    monkeypatch.setattr("budgetlm.machine.throughput._cpu_busy", lambda: True)
    cache = tmp_path / "machine.json"
    result = measure_throughput(MODEL, TrainConfig(micro_batch_size=2, precision="fp32"),
                                torch.device("cpu"), seconds=0.1, cache_file=cache)  # fmt: skip
    assert result.busy and not cache.exists()


def test_a_damaged_cache_is_measured_again(tmp_path, quiet):
    cache = tmp_path / "machine.json"
    cache.write_text("{not json")
    result = measure_throughput(MODEL, TrainConfig(micro_batch_size=2, precision="fp32"),
                                torch.device("cpu"), seconds=0.1, cache_file=cache)  # fmt: skip
    assert not result.cached and json.loads(cache.read_text())
