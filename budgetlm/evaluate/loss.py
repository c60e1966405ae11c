"""Held-out loss per domain."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping

import numpy as np
import torch


@torch.no_grad()
def validation_loss(
    model: torch.nn.Module,
    streams: Mapping[str, np.ndarray],
    seq_len: int,
    max_tokens: int,
    batch_size: int,
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> dict[str, float]:
    """Mean next-token cross-entropy (nats) on the first `max_tokens` tokens of each domain's
    validation stream, in consecutive windows, so every evaluation scores the same tokens."""
    was_training = model.training
    model.eval()
    losses = {}
    for domain, stream in streams.items():
        windows = fixed_windows(stream, seq_len, max_tokens)
        total, count = 0.0, 0
        for i in range(0, len(windows), batch_size):
            batch = torch.from_numpy(windows[i : i + batch_size]).to(device)
            with autocast():
                loss = model(batch[:, :-1], batch[:, 1:], reduction="none")
            total += loss.float().sum().item()
            count += loss.numel()
        losses[domain] = total / count
    model.train(was_training)
    return losses


def fixed_windows(stream: np.ndarray, seq_len: int, max_tokens: int) -> np.ndarray:
    """Consecutive [n, L + 1] windows from the start of a stream (L = seq_len, or shorter when
    the stream is), covering at most max_tokens target tokens."""
    n, length = _window_shape(stream, seq_len, max_tokens)
    return np.stack(
        [np.asarray(stream[i * length : i * length + length + 1], dtype=np.int64) for i in range(n)]
    )


def scored_targets(stream: np.ndarray, seq_len: int, max_tokens: int) -> np.ndarray:
    """The target tokens `validation_loss` scores in a stream, in order: stream[1 : n*L + 1]
    of its fixed windows."""
    n, length = _window_shape(stream, seq_len, max_tokens)
    return np.asarray(stream[1 : n * length + 1])


def _window_shape(stream: np.ndarray, seq_len: int, max_tokens: int) -> tuple[int, int]:
    length = min(seq_len, len(stream) - 1)
    if length < 1:
        raise ValueError("a validation stream needs at least 2 tokens")
    return max(1, min(max_tokens // length, (len(stream) - 1) // length)), length
