"""Bits per byte: the loss per byte of UTF-8 text instead of per token. A model's loss per token
depends on how much text its tokenizer packs into a token, so it cannot compare models with
different tokenizers (a continued model with an extended vocabulary against its parent); bits
per byte can (Gao et al., 2020, "The Pile: An 800GB Dataset of Diverse Text for Language
Modeling"). Bytes per token is the tokenizer's compression of the same text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from budgetlm.data.store.tokenizer import Tokenizer


def bytes_per_token(tokenizer: Tokenizer, targets: np.ndarray) -> float | None:
    """UTF-8 bytes of text per token over `targets` (the scored tokens, in order; special
    tokens count as no text); None when there are no targets or no text."""
    if len(targets) == 0:
        return None
    nbytes = tokenizer.text_bytes(targets)
    return nbytes / len(targets) if nbytes > 0 else None


def bits_per_byte(
    losses: Mapping[str, float], bytes_per_token: Mapping[str, float | None]
) -> dict[str, float]:
    """Mean loss (nats per token) per domain as bits per byte of the text scored:
    loss / (ln 2 x bytes per token). Domains without a byte count are left out."""
    return {
        domain: loss / (math.log(2) * bytes_per_token[domain])
        for domain, loss in losses.items()
        if bytes_per_token.get(domain)
    }
