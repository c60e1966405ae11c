"""The precision decision, with the machine's timings injected."""

import pytest
import torch

from budgetlm.errors import UserError
from budgetlm.machine import precision as p
from budgetlm.machine.precision import choose_precision, faster_precision
from budgetlm.machine.throughput import Throughput
from budgetlm.model.config import ModelConfig
from budgetlm.train.config import TrainConfig

MODEL = ModelConfig(size="custom", d_model=32, n_layers=1, n_heads=2, seq_len=32).resolved(300)
CPU = torch.device("cpu")


def test_bf16_only_when_clearly_faster():
    assert faster_precision(1.0, 0.25) == "bf16"  # AMX: ~4x faster
    assert faster_precision(0.089, 8.0) == "fp32"  # AVX2 only: ~90x slower
    assert faster_precision(1.0, 0.97) == "fp32"  # within the margin: the exact one


def timings(monkeypatch, fp32_seconds, bf16_seconds):
    """measure_throughput replaced by fixed step times; records the give-up limit it was given."""
    seen = {}

    def measure(model, train, device, seconds, cache_file=None, give_up_after=None):
        seen[train.precision] = give_up_after
        t = fp32_seconds if train.precision == "fp32" else bf16_seconds
        timed = 0 if give_up_after is not None and t > give_up_after else 5
        return Throughput(128 / t, t, timed, train.precision)

    monkeypatch.setattr(p, "measure_throughput", measure)
    return seen


@pytest.mark.parametrize(("fp32", "bf16", "chosen"), [(0.4, 0.1, "bf16"), (0.1, 9.0, "fp32")])
def test_auto_takes_the_faster_measured_step(monkeypatch, fp32, bf16, chosen):
    seen = timings(monkeypatch, fp32, bf16)
    choice = choose_precision(MODEL, TrainConfig(precision="auto"), CPU)
    assert choice.precision == chosen and choice.reason == "measured"
    assert seen["fp32"] is None and seen["bf16"] == pytest.approx(4 * fp32 + 1)
    text = choice.describe()
    assert f"precision {chosen}" in text and f"fp32 {fp32:.3g} s/step" in text
    assert ("given up" in text) == (bf16 > 4 * fp32 + 1)


def test_a_precision_the_user_sets_is_obeyed_without_measuring(monkeypatch):
    seen = timings(monkeypatch, 0.1, 9.0)
    choice = choose_precision(MODEL, TrainConfig(precision="bf16"), CPU)
    assert choice.precision == "bf16" and choice.reason == "set" and not seen


def test_cuda_takes_bf16_where_the_gpu_supports_it(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    choice = choose_precision(MODEL, TrainConfig(precision="auto"), torch.device("cuda"))
    assert choice.precision == "fp32" and "does not support" in choice.describe()
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert choose_precision(MODEL, TrainConfig(), torch.device("cuda")).precision == "bf16"


def test_an_unknown_precision_is_a_clear_error():
    with pytest.raises(UserError, match="train.precision must be one of auto, bf16, fp32"):
        choose_precision(MODEL, TrainConfig(precision="fp16"), CPU)


def test_a_real_measurement_on_this_machine_picks_one_and_caches_both(tmp_path):
    cache = tmp_path / "machine.json"
    first = choose_precision(MODEL, TrainConfig(micro_batch_size=2), CPU, cache, seconds=0.05)
    assert first.precision in ("fp32", "bf16") and not first.fp32.cached
    again = choose_precision(MODEL, TrainConfig(micro_batch_size=2), CPU, cache, seconds=0.05)
    assert again.precision == first.precision and again.fp32.cached and again.bf16.cached
