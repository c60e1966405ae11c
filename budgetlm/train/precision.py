"""The mixed-precision context every forward pass runs in."""

from __future__ import annotations

import contextlib

import torch


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on CPU and CUDA with fp32 master weights; a no-op for 'fp32'. 'auto' must
    have been decided (machine/precision.py) before anything runs."""
    if precision not in ("bf16", "fp32"):
        raise ValueError(f"precision must be decided ('bf16' or 'fp32'), not {precision!r}")
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
