"""A fingerprint of the machine a measurement was made on: the hardware, the CPU features that
change kernel speeds, the thread count and the torch build. A measurement is only reused on a
machine with the same fingerprint."""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path

import torch

SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_tile")
"""CPU flags that decide which matmul kernels run: AVX2 alone makes bf16 ~90x slower than fp32,
AVX512-BF16 and AMX make it faster (BENCHMARKS.md)."""


def machine_fingerprint(device: torch.device) -> dict[str, str | int]:
    """What a measured speed depends on besides the model: CPU model and flags or GPU name,
    threads, torch version."""
    if device.type == "cuda":
        hardware, features = torch.cuda.get_device_name(device), ""
    else:
        info = _cpuinfo()
        hardware = info.get("model name") or platform.processor() or platform.machine()
        flags = set(info.get("flags", "").split())
        features = " ".join(f for f in SPEED_FLAGS if f in flags)
    return {
        "hardware": hardware,
        "features": features,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": device.type,
    }


def describe_machine(device: torch.device) -> str:
    """One line for logs and benchmark tables: 'AMD EPYC (avx2 avx512f ...), 2 threads, torch X'."""
    f = machine_fingerprint(device)
    features = f" ({f['features']})" if f["features"] else ""
    return f"{f['hardware']}{features}, {f['threads']} threads, torch {f['torch']}"


def settings_key(setting: dict, device: torch.device) -> str:
    """A short stable key for a measured setting on this machine."""
    full = {**setting, **machine_fingerprint(device)}
    return hashlib.sha256(json.dumps(full, sort_keys=True).encode()).hexdigest()[:20]


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none, e.g. macOS)."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields
