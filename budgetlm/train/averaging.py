"""Uniform weight averaging of checkpoints: the last k of one run (LAWA, Kaddour, "Stop Wasting
My Time! Saving Days of ImageNet and BERT Training with Latest Weight Averaging", 2022; Sanyal
et al., "Early Weight Averaging meets High Learning Rates for LLM Pre-training", 2023) or the
final weights of runs sharing a parent (a uniform model soup, Wortsman et al., "Model soups:
averaging weights of multiple fine-tuned models improves accuracy without increasing inference
time", 2022)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from budgetlm.errors import UserError
from budgetlm.io import Log
from budgetlm.train.checkpoint import (
    STATE_FILE,
    CorruptCheckpoint,
    list_checkpoints,
    load_weights,
    read_state,
)


class RunningMean:
    """The element-wise mean of state dicts with the same keys and shapes, accumulated one at a
    time in float64 (so k checkpoints need memory for two models, not k)."""

    def __init__(self) -> None:
        self._sum: dict[str, Tensor] = {}
        self._dtypes: dict[str, torch.dtype] = {}
        self.count = 0

    def add(self, state: Mapping[str, Tensor]) -> None:
        if self.count and set(state) != set(self._sum):
            diff = sorted(set(state) ^ set(self._sum))
            raise ValueError(f"state dicts differ in keys: {', '.join(diff[:5])}")
        for key, tensor in state.items():
            tensor = tensor.detach()
            if not self.count:
                self._dtypes[key] = tensor.dtype
                floating = tensor.is_floating_point()
                self._sum[key] = tensor.to(torch.float64, copy=True) if floating else tensor.clone()
                continue
            if tensor.shape != self._sum[key].shape:
                raise ValueError(
                    f"{key} has shape {tuple(tensor.shape)}, not {tuple(self._sum[key].shape)}"
                )
            if tensor.is_floating_point():
                self._sum[key] += tensor.to(torch.float64)
            elif not torch.equal(tensor, self._sum[key]):
                raise ValueError(f"{key} is not a float tensor and differs between state dicts")
        self.count += 1

    def result(self) -> dict[str, Tensor]:
        if not self.count:
            raise ValueError("no state dict was added")
        return {
            key: (s / self.count).to(self._dtypes[key]) if s.is_floating_point() else s.clone()
            for key, s in self._sum.items()
        }


def average_state_dicts(states: Iterable[Mapping[str, Tensor]]) -> dict[str, Tensor]:
    """The uniform average of state dicts with the same keys and shapes."""
    mean = RunningMean()
    for state in states:
        mean.add(state)
    return mean.result()


def average_checkpoints(paths: Sequence[Path], model: torch.nn.Module) -> None:
    """Load the uniform average of the checkpoints' weights into `model` (of their shape)."""
    mean = RunningMean()
    for path in paths:
        load_weights(path, model)
        mean.add(model.state_dict())
    model.load_state_dict(mean.result())


def last_checkpoints(run_dir: Path, last: int | None, log: Log = print) -> list[tuple[Path, dict]]:
    """The run's newest `last` intact checkpoints (all when None), oldest first, with their
    training state; corrupt ones are reported and skipped."""
    if last is not None and last < 1:
        raise UserError(f"--last must be a positive number of checkpoints, got {last}")
    found = []
    for path in reversed(list_checkpoints(run_dir)):
        try:
            found.append((path, read_state(path)))
        except CorruptCheckpoint as e:
            log(f"skipping corrupt checkpoint {path.name}: {e}")
        if last is not None and len(found) == last:
            break
    if not found:
        raise UserError(f"run {run_dir} has no checkpoint yet; train it first")
    if last is not None and len(found) < last:
        raise UserError(
            f"run {run_dir} has {len(found)} checkpoint(s), fewer than --last {last}: average "
            f"--last {len(found)}, or train with more kept checkpoints (e.g. --checkpoint.every "
            f"0.05 --checkpoint.keep_last {last})"
        )
    return found[::-1]


def final_checkpoint(run_dir: Path) -> tuple[Path, dict]:
    """The run's newest checkpoint tagged 'final' (its finished model), with its state."""
    for path in reversed(list_checkpoints(run_dir)):
        tags = json.loads((path / STATE_FILE).read_text(encoding="utf-8")).get("tags", [])
        if "final" in tags:
            try:
                return path, read_state(path)
            except CorruptCheckpoint as e:
                raise UserError(f"the final checkpoint of {run_dir} is corrupt ({e})") from None
    raise UserError(f"run {run_dir} has no final checkpoint; finish it first (`--resume`)")
