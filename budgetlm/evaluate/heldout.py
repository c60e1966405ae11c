"""Held-out loss per domain of a finished model over whole validation streams, in bounded memory."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping

import numpy as np
import torch

from budgetlm.evaluate.loss import validation_loss
from budgetlm.io import Log

WINDOWS_PER_PIECE = 256
"""Windows scored per call of validation_loss, so a long stream is never copied whole."""


def heldout_loss(
    model: torch.nn.Module,
    streams: Mapping[str, np.ndarray],
    seq_len: int,
    max_tokens: int | None,
    batch_size: int,
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    log: Log = print,
) -> tuple[dict[str, float], dict[str, int]]:
    """Mean next-token loss (nats) per domain over the first `max_tokens` target tokens of its
    validation stream (all of them when None), and the number of tokens scored.

    The stream is scored by `validation_loss` in pieces of consecutive seq_len windows, the
    tokens after the last full window as one shorter window, so every token up to the cap is
    scored exactly once. Domains with fewer than 2 validation tokens are left out (and said so).
    """
    losses, counts = {}, {}
    for domain, stream in streams.items():
        limit = len(stream) - 1 if max_tokens is None else min(max_tokens, len(stream) - 1)
        if limit < 1:
            log(f"{domain}: no validation tokens to score; left out")
            continue
        whole = limit - limit % seq_len  # tokens in full windows; the rest is one short window
        step = seq_len * WINDOWS_PER_PIECE
        pieces = [(a, min(a + step, whole)) for a in range(0, whole, step)]
        pieces += [(whole, limit)] if whole < limit else []
        total = 0.0
        for a, b in pieces:
            piece = stream[a : b + 1]
            loss = validation_loss(
                model, {domain: piece}, seq_len, b - a, batch_size, device, autocast
            )[domain]
            total += loss * (b - a)
        losses[domain], counts[domain] = total / limit, limit
    return losses, counts
