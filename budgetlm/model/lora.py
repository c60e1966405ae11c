"""LoRA adapters on a transformers-backend model, through peft ("LoRA: Low-Rank Adaptation of
Large Language Models", Hu et al., 2021): the base weights are frozen and each targeted linear
learns a rank-r update B·A scaled by alpha/r. It needs far less optimizer memory than full
training, and it learns less and forgets less (Biderman et al., 2024, "LoRA Learns Less and
Forgets Less").

The adapted model keeps its place in budgetlm: its state dict (base and adapter weights) is
what checkpoints hold, so resume and averaging work as for full training; export merges the
adapter into the base weights, or writes the adapter alone.
"""

from __future__ import annotations

import copy
from pathlib import Path

from torch import Tensor, nn

from budgetlm.errors import UserError

ADAPTERS = ("none", "lora")
PEFT_PREFIX = "base_model.model."
INSTALL = "pip install 'budgetlm[hf]'"  # hf_backend imports this module: no import back


def _peft():
    try:
        import peft
    except ImportError:
        raise UserError(f"--adapter lora needs the peft package: `{INSTALL}`") from None
    return peft


def add_lora(
    model: nn.Module,
    rank: int,
    alpha: float,
    dropout: float,
    targets: str,
    train_embeddings: bool,
) -> nn.Module:
    """The transformers model `model` with LoRA adapters on `targets` ("all-linear", or
    comma-separated module names such as "q_proj,v_proj"); only the adapters train, plus the
    token embedding and output head when `train_embeddings`."""
    if rank < 1:
        raise UserError(f"model.lora_rank must be a positive integer, got {rank}")
    if not alpha > 0:
        raise UserError(f"model.lora_alpha must be positive, got {alpha}")
    if not 0 <= dropout < 1:
        raise UserError(f"model.lora_dropout must be in [0, 1), got {dropout}")
    peft = _peft()
    target_modules = targets if targets == "all-linear" else [t.strip() for t in targets.split(",")]
    saved = None
    if train_embeddings:
        saved = [_leaf(model.get_input_embeddings(), model)]
        head = model.get_output_embeddings()
        if head is not None and head.weight is not model.get_input_embeddings().weight:
            saved.append(_leaf(head, model))
    config = peft.LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=target_modules,
        modules_to_save=saved,
        task_type="CAUSAL_LM",
    )
    try:
        return peft.get_peft_model(model, config)
    except ValueError as e:  # e.g. a target module name the model does not have
        raise UserError(f"model.lora_targets {targets!r}: {str(e).splitlines()[0]}") from None


def _leaf(module: nn.Module, root: nn.Module) -> str:
    """The attribute name under which `root` holds `module` (what peft's modules_to_save takes)."""
    for name, child in root.named_modules():
        if child is module:
            return name.rsplit(".", 1)[-1]
    raise ValueError("module not found in the model")


def base_state_to_adapted(adapted: nn.Module, base: dict[str, Tensor]) -> dict[str, Tensor]:
    """A base model's state dict renamed into the adapted (peft-wrapped) model's names, so the
    pretrained weights load under their LoRA wrappers; the adapter weights keep their init."""
    state = {}
    for name in adapted.state_dict():
        key = base_name(name)
        if "lora_" not in name and key in base:
            state[name] = base[key]
    return state


def base_name(name: str) -> str:
    """The base model's name of an adapted model's state-dict entry (peft's prefixes and
    wrappers taken off)."""
    key = name.removeprefix(PEFT_PREFIX).replace(".base_layer.", ".")
    return key.replace(".modules_to_save.default.", ".").replace(".original_module.", ".")


def merged(adapted: nn.Module) -> nn.Module:
    """A copy of the transformers model with the adapters merged into its weights."""
    return copy.deepcopy(adapted).merge_and_unload()


def save_adapter(adapted: nn.Module, out: str | Path) -> None:
    """The adapter alone (adapter_model.safetensors, adapter_config.json), for peft to load
    onto the base model."""
    adapted.save_pretrained(out, safe_serialization=True)
