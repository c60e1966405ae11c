"""Measure how many training tokens per second this machine runs for a model shape: a few real
optimizer steps (forward, backward, AdamW) on random tokens, cached per machine and setting so
that planning again costs nothing."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch

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
    """Measured training speed of one shape and setting on this machine."""

    tokens_per_second: float
    seconds_per_step: float
    """For a micro-batch of `micro_batch_size` sequences (one forward and backward)."""
    steps_timed: int
    cached: bool = False
    busy: bool = False
    """The CPU was busy with other work while measuring (load average above its cores): the
    figure understates this machine and is not cached."""


def machine_signature(device: torch.device) -> dict[str, str | int]:
    """What a measured speed depends on besides the model: CPU or GPU model, threads, torch."""
    if device.type == "cuda":
        hardware = torch.cuda.get_device_name(device)
    else:
        hardware = _cpu_model() or platform.processor() or platform.machine()
    return {
        "hardware": hardware,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": device.type,
    }


def measure_throughput(
    model: ModelConfig,
    train: TrainConfig,
    device: torch.device,
    seconds: float = 3.0,
    max_steps: int = 30,
    cache_file: Path | None = None,
) -> Throughput:
    """Training tokens/s of `model` (resolved) with train's micro batch, precision and optimizer,
    timed over about `seconds` after WARMUP_STEPS untimed steps; read from / written to
    `cache_file` (JSON) when given."""
    key = _cache_key(model, train, device)
    cache = _read_cache(cache_file)
    if key in cache:
        return Throughput(**cache[key], cached=True)
    if device.type == "cpu" and train.reuse_host_memory:
        reuse_freed_memory()  # as training will: it changes the CPU speed by up to 1.5x
    torch.manual_seed(0)
    net = Decoder(model).to(device)
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

    t0 = time.perf_counter()
    step()
    _synchronize(device)
    if time.perf_counter() - t0 < seconds:
        for _ in range(WARMUP_STEPS - 1):
            step()
    _synchronize(device)
    steps, t0 = 0, time.perf_counter()
    while steps == 0 or (steps < max_steps and time.perf_counter() - t0 < seconds):
        step()
        steps += 1
    _synchronize(device)
    per_step = (time.perf_counter() - t0) / steps
    busy = device.type == "cpu" and _cpu_busy()
    rate = train.micro_batch_size * model.seq_len / per_step
    result = Throughput(rate, per_step, steps, busy=busy)
    if cache_file is not None and not busy:
        fields = ("tokens_per_second", "seconds_per_step", "steps_timed")
        cache[key] = {k: getattr(result, k) for k in fields}
        _write_cache(cache_file, cache)
    return result


def _cache_key(model: ModelConfig, train: TrainConfig, device: torch.device) -> str:
    setting = {
        "model": dataclasses.asdict(model),
        "micro_batch_size": train.micro_batch_size,
        "precision": train.precision,
        "optimizer": train.optimizer,
        "compile": train.compile,
        "reuse_host_memory": train.reuse_host_memory,
        **machine_signature(device),
    }
    return hashlib.sha256(json.dumps(setting, sort_keys=True).encode()).hexdigest()[:20]


def _read_cache(path: Path | None) -> dict:
    if path is None or not path.is_file():
        return {}
    try:
        cache = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # a damaged cache is only a cache: measure again
    return cache if isinstance(cache, dict) else {}


def _write_cache(path: Path, cache: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(cache, indent=1), encoding="utf-8")
    os.replace(tmp, path)


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


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None
