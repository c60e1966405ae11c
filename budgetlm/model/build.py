"""Build the model a ModelConfig describes, whichever backend: the one constructor every room
uses, so no caller asks which backend it has."""

from __future__ import annotations

from torch import nn

from budgetlm.model.config import HF_BACKEND, ModelConfig
from budgetlm.model.decoder import Decoder


def build_model(config: ModelConfig) -> nn.Module:
    """The model of a resolved config, freshly initialised: budgetlm's Decoder (backend
    'native') or a transformers model behind the same interface (backend 'hf', HFCausalLM).
    Both take (idx[, targets, reduction]), return logits or the float32 loss, and expose
    `.config` and `.blocks`."""
    if config.backend == HF_BACKEND:
        from budgetlm.model.hf_backend import HFCausalLM  # transformers only when used

        return HFCausalLM(config)
    return Decoder(config)
