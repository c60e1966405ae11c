"""The transformers backend: any decoder-only model that `AutoModelForCausalLM` builds is trained
as it is, so a continued Qwen3 stays a Qwen3 (its QK-norm, RoPE variant, sliding layers and
soft-capping are transformers' code, not a re-implementation). `HFCausalLM` puts it behind the
native Decoder's interface: forward to logits or to the loss, `.blocks` (the decoder layers, to
shard or checkpoint), `.config` (budgetlm's ModelConfig).

The architecture travels in the run's config.yaml (`model.hf_config`, the model's config.json),
so a run is rebuilt from its own directory; the weights are the run's safetensors checkpoints.
A model that needs remote code is only built with `model.trust_remote_code` (--trust-remote-code).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from budgetlm.errors import UserError
from budgetlm.model.config import HF_BACKEND, ModelConfig
from budgetlm.model.decoder import next_token_loss
from budgetlm.model.hf_import import DEFAULT_SEQ_LEN, config_int, read_hf_config

INSTALL = "pip install 'budgetlm[hf]'"


def transformers_module():
    """transformers, or a UserError naming the install."""
    try:
        import transformers
    except ImportError:
        raise UserError(
            f"training a Hugging Face model needs the transformers package: `{INSTALL}`"
        ) from None
    return transformers


def read_architecture(folder: str | Path, trust_remote_code: bool = False) -> dict[str, Any]:
    """The config.json of a model folder, checked to be a decoder-only causal LM that
    transformers builds (remote code only when trusted)."""
    hf = read_hf_config(folder)
    check_causal_lm(hf, trust_remote_code, str(folder))
    return hf


def check_causal_lm(hf: dict[str, Any], trust_remote_code: bool, where: str) -> None:
    """UserError unless transformers builds `hf` (a config.json) as a decoder-only causal LM."""
    transformers = transformers_module()
    model_type = hf.get("model_type")
    if hf.get("auto_map") and not trust_remote_code:
        raise UserError(
            f"{where}: the model's code is not part of transformers (config.json has an "
            "auto_map); running it executes the folder's Python code: pass --trust-remote-code "
            "if you trust it"
        )
    if hf.get("auto_map"):
        return  # its own code decides; AutoModelForCausalLM fails clearly if it is not one
    causal = model_type in _names("MODEL_FOR_CAUSAL_LM")
    encoder = model_type in _names("MODEL_FOR_MASKED_LM")  # BERT-likes map to both
    if causal and not encoder and not hf.get("is_encoder_decoder"):
        return
    if hf.get("is_encoder_decoder") or model_type in _names("MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM"):
        kind = "an encoder-decoder (seq2seq) model"
    elif model_type in _names("MODEL_FOR_MASKED_LM"):
        kind = "an encoder-only (masked LM) model"
    else:
        version = transformers.__version__
        kind = f"model_type {model_type!r}, which transformers {version} has no causal LM for"
    raise UserError(
        f"{where} is {kind}; budgetlm continues decoder-only causal language models (Llama, "
        "Qwen, Gemma, Mistral, Phi, OLMo, SmolLM, ...)"
    )


def _names(mapping: str) -> dict[str, str]:
    auto = transformers_module().models.auto.modeling_auto
    return getattr(auto, f"{mapping}_MAPPING_NAMES", {})


def hf_backend_config(
    hf: dict[str, Any],
    source: str,
    seq_len: int | None = None,
    trust_remote_code: bool = False,
) -> ModelConfig:
    """budgetlm's ModelConfig for training the model of config.json `hf` with transformers:
    the architecture itself (hf_config), and its widths for the budget's FLOP and memory
    estimates. `seq_len` is the training context (default: the model's, capped at
    DEFAULT_SEQ_LEN)."""
    text = hf.get("text_config") if isinstance(hf.get("text_config"), dict) else hf
    limit = text.get("max_position_embeddings")
    if seq_len is not None and isinstance(limit, int) and seq_len > limit:
        raise UserError(
            f"continual.seq_len {seq_len} is longer than the model's context ({limit} tokens, "
            f"its max_position_embeddings); set at most {limit}"
        )
    if seq_len is None:
        seq_len = min(limit, DEFAULT_SEQ_LEN) if isinstance(limit, int) else DEFAULT_SEQ_LEN
    d_model = config_int(text, "hidden_size")
    n_heads = config_int(text, "num_attention_heads")
    return ModelConfig(
        size=str(hf.get("model_type", HF_BACKEND)),
        backend=HF_BACKEND,
        hf_config=hf,
        hf_source=source,
        trust_remote_code=trust_remote_code,
        vocab_size=config_int(text, "vocab_size"),
        d_model=d_model,
        n_layers=config_int(text, "num_hidden_layers"),
        n_heads=n_heads,
        n_kv_heads=text.get("num_key_value_heads") or n_heads,
        ffn_hidden=text.get("intermediate_size") or 4 * d_model,
        seq_len=seq_len,
        tie_embeddings=bool(text.get("tie_word_embeddings", hf.get("tie_word_embeddings", True))),
    )


def pretrained_config(config: ModelConfig):
    """The transformers PretrainedConfig of a hf-backend ModelConfig."""
    transformers = transformers_module()
    hf = dict(config.hf_config or {})
    if config.trust_remote_code and hf.get("auto_map"):
        if not config.hf_source:
            raise UserError("a remote-code model needs model.hf_source, the folder of its code")
        return transformers.AutoConfig.from_pretrained(config.hf_source, trust_remote_code=True)
    config_class = transformers.models.auto.configuration_auto.CONFIG_MAPPING[hf["model_type"]]
    return config_class.from_dict(hf)


class HFCausalLM(nn.Module):
    """A transformers causal LM with the native Decoder's interface: forward(idx) -> logits
    [B, T, V]; forward(idx, targets) -> the cross-entropy in float32 (as Decoder computes it)."""

    def __init__(self, config: ModelConfig, model: nn.Module | None = None) -> None:
        super().__init__()
        if config.backend != HF_BACKEND or not config.hf_config:
            raise ValueError("HFCausalLM needs a ModelConfig of backend 'hf' with hf_config")
        self.config = config
        self.hf = model if model is not None else _from_config(config)
        if config.adapter == "lora":
            from budgetlm.model.lora import add_lora

            self.hf = add_lora(
                self.hf,
                config.lora_rank,
                config.lora_alpha,
                config.lora_dropout,
                config.lora_targets,
                config.lora_train_embeddings,
            )

    @property
    def blocks(self) -> nn.ModuleList:
        """The decoder layers (the units FSDP2 shards and activation checkpointing wraps)."""
        return self.hf.get_decoder().layers

    def forward(
        self, idx: Tensor, targets: Tensor | None = None, reduction: str = "mean"
    ) -> Tensor:
        if idx.shape[1] > self.config.seq_len:
            raise ValueError(
                f"sequence length {idx.shape[1]} exceeds the model's seq_len {self.config.seq_len}"
            )
        logits = self.hf(input_ids=idx, use_cache=False).logits
        return logits if targets is None else next_token_loss(logits, targets, reduction)


def _from_config(config: ModelConfig) -> nn.Module:
    """The transformers model of the config, randomly initialised, in float32 (master weights)."""
    transformers = transformers_module()
    return transformers.AutoModelForCausalLM.from_config(
        pretrained_config(config),
        dtype=torch.float32,
        trust_remote_code=config.trust_remote_code,
    )


def load_pretrained(
    model: HFCausalLM,
    folder: str | Path,
    transform: Callable[[dict[str, Tensor], dict[str, Tensor]], dict[str, Tensor]] | None = None,
) -> None:
    """Load a model folder's weights into `model`, as `from_pretrained` reads them (sharded
    safetensors, renamed keys and tied heads handled by transformers); `transform(state,
    target)` may fit the state to the model first (more vocabulary rows)."""
    transformers = transformers_module()
    loaded = transformers.AutoModelForCausalLM.from_pretrained(
        folder, dtype=torch.float32, trust_remote_code=model.config.trust_remote_code
    )
    state = loaded.state_dict()
    del loaded
    if transform is not None:
        target = model.hf.state_dict()
        if model.config.adapter == "lora":
            from budgetlm.model.lora import base_name

            target = {base_name(n): t for n, t in target.items() if "lora_" not in n}
        state = transform(state, target)
    if model.config.adapter == "lora":  # the base weights under their LoRA wrappers' names
        from budgetlm.model.lora import base_state_to_adapted

        state = base_state_to_adapted(model.hf, state)
    missing, unexpected = model.hf.load_state_dict(state, strict=False)
    missing = [m for m in missing if "rotary_emb" not in m and "lora_" not in m]
    if unexpected or missing:
        raise UserError(
            f"the weights of {folder} do not fit its config.json (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}); the folder may mix two models"
        )


@lru_cache(maxsize=16)
def _counts(hf_json: str, trust_remote_code: bool, source: str | None) -> tuple[int, int, int]:
    """(total, embedding, matmul) parameter counts of the architecture, built on the meta
    device (no memory for weights). Tied matrices are counted once."""
    config = ModelConfig(
        backend=HF_BACKEND,
        hf_config=json.loads(hf_json),
        hf_source=source,
        trust_remote_code=trust_remote_code,
    )
    with torch.device("meta"):
        model = _from_config(config)
    unique = {id(p): p for p in model.parameters()}
    total = sum(p.numel() for p in unique.values())
    embedding_params = {id(p) for p in model.get_input_embeddings().parameters()}
    head = model.get_output_embeddings()
    if head is not None:
        embedding_params |= {id(p) for p in head.parameters()}
    embedding = sum(unique[i].numel() for i in embedding_params if i in unique)
    matmul = sum(
        m.weight.numel() for m in model.modules() if isinstance(m, nn.Linear)
    )  # the blocks' projections and the head (tied or not: the head does a matmul)
    return total, embedding, matmul


def hf_parameter_counts(config: ModelConfig) -> tuple[int, int, int]:
    """(total, embedding, matmul) parameters of a hf-backend model."""
    hf_json = json.dumps(config.hf_config, sort_keys=True)
    return _counts(hf_json, config.trust_remote_code, config.hf_source)
