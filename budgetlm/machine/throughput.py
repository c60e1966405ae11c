"""Measure how fast this machine trains a model shape in one precision: a few real optimizer
steps (forward, backward, AdamW) on random tokens, and a few forward passes as evaluation runs
them; cached under the machine's fingerprint and the setting, so measuring again costs nothing."""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from budgetlm.machine.cache import read_measurements, write_measurement
from budgetlm.machine.fingerprint import settings_key
from budgetlm.model.build import build_model
from budgetlm.model.config import ModelConfig
from budgetlm.model.decoder import Decoder
from budgetlm.train.config import TrainConfig
from budgetlm.train.host_memory import reuse_freed_memory
from budgetlm.train.optim import build_optimizer
from budgetlm.train.precision import autocast

WARMUP_STEPS = 2
"""Untimed first steps: allocation and kernel selection make them slow (one only when a step
takes longer than the whole measurement was meant to)."""


@dataclass(frozen=True)
class Throughput:
    """Measured speed of one shape, precision and micro-batch on this machine."""

    tokens_per_second: float
    """Training tokens per second."""
    seconds_per_step: float
    """For a micro-batch of `micro_batch_size` sequences (one forward and backward and an
    optimizer step); for a measurement given up on, the first (untimed) step's time."""
    steps_timed: int
    """0 when the measurement was given up after its first step (`give_up_after`)."""
    precision: str = "fp32"
    forward_tokens_per_second: float | None = None
    """Tokens per second of forward passes without gradients, as evaluation runs them."""
    cached: bool = False
    busy: bool = False
    """The CPU was busy with other work while measuring (load average above its cores): the
    figure understates this machine and is not cached."""


def measure_throughput(
    model: ModelConfig,
    train: TrainConfig,
    device: torch.device,
    seconds: float = 3.0,
    max_steps: int = 30,
    cache_file: Path | None = None,
    give_up_after: float | None = None,
) -> Throughput:
    """Training tokens/s of `model` (resolved) with train's micro batch, precision ('fp32' or
    'bf16') and optimizer, timed over about `seconds` (at most `max_steps` steps) after
    WARMUP_STEPS untimed steps. When the first step alone takes longer than `give_up_after`
    seconds, nothing more is timed: that precision is too slow to matter. Read from / written to
    `cache_file` (JSON) when given."""
    if train.precision not in ("fp32", "bf16"):
        raise ValueError(f"measure one precision, 'fp32' or 'bf16', not {train.precision!r}")
    key = _cache_key(model, train, device)
    cached = read_measurements(cache_file).get(key)
    if cached is not None:
        try:
            return Throughput(**cached, cached=True)
        except TypeError:
            pass  # written by another version: measure again
    if device.type == "cpu" and train.reuse_host_memory:
        reuse_freed_memory()  # as training will: it changes the CPU speed by up to 1.5x
    torch.manual_seed(0)
    net = build_model(model).to(device)
    optimizer = build_optimizer(net, train)
    batch = torch.randint(
        0, model.vocab_size, (train.micro_batch_size, model.seq_len + 1), device=device
    )

    def step() -> None:
        with autocast(device, train.precision):
            loss = net(batch[:, :-1], batch[:, 1:])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    tokens = train.micro_batch_size * model.seq_len
    t0 = time.perf_counter()
    step()
    _synchronize(device)
    first = time.perf_counter() - t0
    if give_up_after is not None and first > give_up_after:
        return _store(
            cache_file, key, Throughput(tokens / first, first, 0, train.precision), device
        )
    if first < seconds:
        for _ in range(WARMUP_STEPS - 1):
            step()
    _synchronize(device)
    steps, t0 = 0, time.perf_counter()
    while steps == 0 or (steps < max_steps and time.perf_counter() - t0 < seconds):
        step()
        steps += 1
    _synchronize(device)
    per_step = (time.perf_counter() - t0) / steps
    forward = _forward_rate(net, batch, device, train.precision, budget=max(per_step, seconds / 4))
    result = Throughput(tokens / per_step, per_step, steps, train.precision, forward)
    return _store(cache_file, key, result, device)


def _forward_rate(
    net: Decoder, batch: torch.Tensor, device: torch.device, precision: str, budget: float
) -> float:
    """Tokens/s of no-grad forward passes (with the loss), timed over about `budget` seconds."""
    net.eval()
    with torch.no_grad(), autocast(device, precision):
        net(batch[:, :-1], batch[:, 1:])  # untimed: its buffers differ from training's
        _synchronize(device)
        passes, t0 = 0, time.perf_counter()
        while passes == 0 or (passes < 20 and time.perf_counter() - t0 < budget):
            net(batch[:, :-1], batch[:, 1:])
            passes += 1
        _synchronize(device)
    net.train()
    return passes * batch[:, :-1].numel() / (time.perf_counter() - t0)


def _store(cache_file: Path | None, key: str, result: Throughput, device: torch.device):
    busy = device.type == "cpu" and _cpu_busy()
    if busy:
        return dataclasses.replace(result, busy=True)
    fields = ("tokens_per_second", "seconds_per_step", "steps_timed", "precision",
              "forward_tokens_per_second")  # fmt: skip
    write_measurement(cache_file, key, {k: getattr(result, k) for k in fields})
    return result


def _cache_key(model: ModelConfig, train: TrainConfig, device: torch.device) -> str:
    setting = {
        "model": model.key_fields(),
        "micro_batch_size": train.micro_batch_size,
        "precision": train.precision,
        "optimizer": train.optimizer,
        "reuse_host_memory": train.reuse_host_memory,
    }
    return settings_key(setting, device)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _cpu_busy() -> bool:
    """Whether other processes kept the CPU busy: the 1-minute load average, which counts this
    process's own threads too, exceeds the cores by more than one."""
    try:
        return os.getloadavg()[0] > (os.cpu_count() or 1) + 1
    except OSError:
        return False
