"""Which torch device to train on: the one asked for, checked to exist, or the best there is."""

from __future__ import annotations

import torch

from budgetlm.errors import UserError


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; errors for unknown or unavailable devices."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise UserError(f"train.device must be 'auto', 'cpu' or 'cuda', got '{name}'")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(
            "train.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'"
        )
    return torch.device(name)
