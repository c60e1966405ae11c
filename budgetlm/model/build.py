"""Build the model a ModelConfig describes, whichever backend: the one constructor every room
uses, so no caller asks which backend it has."""

from __future__ import annotations

from typing import Protocol

from torch import Tensor, nn

from budgetlm.model.config import HF_BACKEND, ModelConfig
from budgetlm.model.decoder import Decoder


class LanguageModel(Protocol):
    """What every room asks of a model, whichever backend (an nn.Module besides): forward to
    logits [B, T, V] or, with targets, to the float32 cross-entropy; `.config`, the ModelConfig
    it was built from; `.blocks`, the layers to shard (FSDP2) or recompute (activation
    checkpointing). Parameters (split by train/optim.py by module kind and requires_grad) and
    state_dict (the safetensors checkpoints) are nn.Module's own."""

    config: ModelConfig

    @property
    def blocks(self) -> nn.ModuleList: ...

    def __call__(
        self, idx: Tensor, targets: Tensor | None = None, reduction: str = "mean"
    ) -> Tensor: ...


def build_model(config: ModelConfig) -> nn.Module:
    """The model of a resolved config, freshly initialised: budgetlm's Decoder (backend
    'native') or a transformers model behind the same interface (backend 'hf', HFCausalLM).
    Both take (idx[, targets, reduction]), return logits or the float32 loss, and expose
    `.config` and `.blocks`."""
    if config.backend == HF_BACKEND:
        from budgetlm.model.hf_backend import HFCausalLM  # transformers only when used

        return HFCausalLM(config)
    return Decoder(config)
