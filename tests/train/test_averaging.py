"""Uniform weight averaging of state dicts and checkpoints."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from budgetlm.errors import UserError
from budgetlm.train.averaging import (
    average_checkpoints,
    average_state_dicts,
    final_checkpoint,
    last_checkpoints,
)
from budgetlm.train.checkpoint import save_checkpoint


def test_average_of_identical_state_dicts_equals_them():
    state = {"w": torch.randn(3, 4), "b": torch.randn(4)}
    mean = average_state_dicts([state, state, state])
    for key in state:
        torch.testing.assert_close(mean[key], state[key], rtol=0, atol=1e-7)


def test_average_of_two_tensors_is_their_midpoint():
    a = {"w": torch.tensor([1.0, 2.0, -4.0])}
    b = {"w": torch.tensor([3.0, 6.0, 4.0])}
    assert torch.equal(average_state_dicts([a, b])["w"], torch.tensor([2.0, 4.0, 0.0]))


def test_average_keeps_the_dtype_and_is_exact_in_float64():
    states = [{"w": torch.full((2,), v, dtype=torch.bfloat16)} for v in (1.0, 2.0, 4.0, 8.0)]
    mean = average_state_dicts(states)["w"]
    assert mean.dtype == torch.bfloat16 and torch.equal(mean, torch.full((2,), 3.75).bfloat16())


def test_mismatched_state_dicts_are_refused():
    with pytest.raises(ValueError, match=r"shape \(3,\), not \(2,\)"):
        average_state_dicts([{"w": torch.zeros(2)}, {"w": torch.zeros(3)}])
    with pytest.raises(ValueError, match="differ in keys: v"):
        average_state_dicts([{"w": torch.zeros(2)}, {"v": torch.zeros(2)}])


def run_with_checkpoints(run_dir, values, tags=None):
    """Checkpoints at steps 1, 2, ... of a 1-weight linear whose weight is each value."""
    model = nn.Linear(1, 1, bias=False)
    for step, value in enumerate(values, start=1):
        with torch.no_grad():
            model.weight.fill_(value)
        tag = (tags or {}).get(step, [])
        save_checkpoint(run_dir, step, model, None, {"tags": tag, "lr_factor": 1.0})
    return model


def test_average_of_the_last_k_checkpoints(tmp_path):
    model = run_with_checkpoints(tmp_path, [10.0, 1.0, 2.0, 6.0])
    chosen = last_checkpoints(tmp_path, 3, log=lambda _: None)
    assert [state["step"] for _, state in chosen] == [2, 3, 4]  # oldest first
    average_checkpoints([path for path, _ in chosen], model)
    assert model.weight.item() == 3.0
    assert len(last_checkpoints(tmp_path, None)) == 4


def test_too_few_checkpoints_name_the_fix(tmp_path):
    run_with_checkpoints(tmp_path, [1.0, 2.0])
    with pytest.raises(UserError, match="fewer than --last 5.*--checkpoint.keep_last 5"):
        last_checkpoints(tmp_path, 5)
    with pytest.raises(UserError, match="positive"):
        last_checkpoints(tmp_path, 0)
    with pytest.raises(UserError, match="no checkpoint"):
        last_checkpoints(tmp_path / "empty", 1)


def test_corrupt_checkpoints_are_skipped(tmp_path):
    run_with_checkpoints(tmp_path, [1.0, 2.0, 3.0])
    (tmp_path / "checkpoints" / "step_000003" / "model.safetensors").write_bytes(b"broken")
    logged = []
    chosen = last_checkpoints(tmp_path, 2, log=logged.append)
    assert [state["step"] for _, state in chosen] == [1, 2] and "step_000003" in logged[0]


def test_final_checkpoint_is_the_newest_tagged_final(tmp_path):
    run_with_checkpoints(tmp_path, [1.0, 2.0, 3.0], tags={2: ["final"], 3: ["kept"]})
    path, state = final_checkpoint(tmp_path)
    assert path.name == "step_000002" and state["tags"] == ["final"]
    state_file = path / "state.json"
    state_file.write_text(json.dumps({**json.loads(state_file.read_text()), "tags": []}))
    with pytest.raises(UserError, match="no final checkpoint"):
        final_checkpoint(tmp_path)
