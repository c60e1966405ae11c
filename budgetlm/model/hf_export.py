"""Write a Decoder as a Hugging Face model folder that `transformers` loads as is.

The inverse of `hf_import.py`: budgetlm's parameter names map one to one onto HF Llama's
(Qwen2's when the model has q/k/v biases, Qwen3's with QK-norm), and RoPE is already in HF's
rotate-half layout, so export is a rename plus a config.json. `transformers` is not needed to
export, only to load the result.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from budgetlm.data.store.tokenizer import Tokenizer
from budgetlm.errors import UserError
from budgetlm.model.config import ModelConfig
from budgetlm.model.decoder import Decoder

_LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "mlp_norm.weight": "post_attention_layernorm.weight",
    **{f"attn.{p}_proj.weight": f"self_attn.{p}_proj.weight" for p in "qkvo"},
    **{f"attn.{p}_proj.bias": f"self_attn.{p}_proj.bias" for p in "qkv"},
    **{f"mlp.{p}_proj.weight": f"mlp.{p}_proj.weight" for p in ("gate", "up", "down")},
    "attn.q_norm.weight": "self_attn.q_norm.weight",
    "attn.k_norm.weight": "self_attn.k_norm.weight",
}


def hf_architecture(config: ModelConfig) -> str:
    """The transformers model_type a native model exports as: 'llama', 'qwen2' (q/k/v biases)
    or 'qwen3' (QK-norm); a UserError naming the option when no transformers class has it."""
    unsupported = []
    if config.mlp != "swiglu":
        unsupported.append(f"model.mlp {config.mlp}")
    if config.value_embeddings:
        unsupported.append("model.value_embeddings")
    if config.qk_norm and config.qkv_bias:
        unsupported.append("model.qk_norm with model.qkv_bias")
    if unsupported:
        raise UserError(
            f"cannot export this model to transformers: {', '.join(unsupported)} has no "
            "transformers architecture (Llama, Qwen2 and Qwen3 are what export writes); its "
            "checkpoints still load in budgetlm (`budgetlm generate`, `budgetlm eval`)"
        )
    return "qwen3" if config.qk_norm else "qwen2" if config.qkv_bias else "llama"


def hf_config(config: ModelConfig, tokenizer: Tokenizer) -> dict[str, Any]:
    """config.json for a budgetlm ModelConfig: Llama, Qwen2 when q/k/v have biases, Qwen3 with
    QK-norm. Document masking is a training choice and is not exported: a transformers model
    attends over its whole context, which is the same for a single document."""
    model_type = hf_architecture(config)
    qwen = model_type != "llama"
    rope = {"rope_type": "default", "rope_theta": config.rope_theta}
    name = {"llama": "Llama", "qwen2": "Qwen2", "qwen3": "Qwen3"}[model_type]
    return {
        "architectures": [f"{name}ForCausalLM"],
        "model_type": model_type,
        "vocab_size": config.vocab_size,
        "hidden_size": config.d_model,
        "intermediate_size": config.ffn_hidden,
        "num_hidden_layers": config.n_layers,
        "num_attention_heads": config.n_heads,
        "num_key_value_heads": config.n_kv_heads,
        "head_dim": config.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": config.seq_len,
        "rms_norm_eps": config.norm_eps,
        "rope_theta": config.rope_theta,  # transformers < 5 reads this ...
        "rope_parameters": rope,  # ... and >= 5 this
        "rope_scaling": None,
        "tie_word_embeddings": config.tie_embeddings,
        "initializer_range": config.init_std,
        "bos_token_id": tokenizer.bos_id,
        "eos_token_id": tokenizer.eos_id,
        "torch_dtype": "float32",
        **({} if model_type == "qwen2" else {"attention_bias": False}),
        **({} if qwen else {"mlp_bias": False}),
        **({"use_sliding_window": False, "sliding_window": None} if qwen else {}),
    }


def hf_state_dict(model: Decoder) -> dict[str, torch.Tensor]:
    """The model's tensors under HF names (lm_head omitted when tied: transformers re-ties it)."""
    state = {}
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and model.config.tie_embeddings:
            continue
        state[_hf_name(name)] = tensor.detach().to("cpu").contiguous().clone()
    return state


def export_hf(
    model: Decoder, tokenizer: Tokenizer, out: str | Path, card: str | None = None
) -> Path:
    """Write config.json, model.safetensors and the tokenizer files into `out`, atomically (a
    temporary folder renamed into place); UserError if `out` exists and is not empty."""
    from safetensors.torch import save_file

    hf_architecture(model.config)  # before anything is written: raises when none fits

    def write(folder: Path) -> None:
        config = hf_config(model.config, tokenizer)
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        save_file(hf_state_dict(model), folder / "model.safetensors", metadata={"format": "pt"})
        _write_tokenizer(folder, tokenizer, model.config)
        generation = {"bos_token_id": tokenizer.bos_id, "eos_token_id": tokenizer.eos_id}
        (folder / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
        if card is not None:
            (folder / "README.md").write_text(card, encoding="utf-8")

    return write_folder(out, write)


def export_transformers(
    model: nn.Module,
    tokenizer: Tokenizer,
    out: str | Path,
    adapter_only: bool = False,
    card: str | None = None,
) -> Path:
    """Write a transformers-backend model (HFCausalLM) with `save_pretrained`: the same
    model_type and config it was trained as, its generation config, safetensors weights, and
    the tokenizer it was trained with (with the original tokenizer_config.json when the source
    folder still has one). A LoRA model is written with its adapters merged into the weights,
    or, with `adapter_only`, as the adapter alone (for peft to load onto the base model)."""
    lora = model.config.adapter == "lora"
    if adapter_only and not lora:
        raise UserError("--adapter-only exports a LoRA adapter; this run trained every weight")

    def write(folder: Path) -> None:
        if lora:
            from budgetlm.model.lora import merged, save_adapter

            if adapter_only:
                save_adapter(model.hf, folder)
            else:
                merged(model.hf).save_pretrained(folder, safe_serialization=True)
        else:
            model.hf.save_pretrained(folder, safe_serialization=True)
        _write_tokenizer(folder, tokenizer, model.config)
        source = Path(model.config.hf_source or "")
        for name in ("special_tokens_map.json", "chat_template.jinja"):
            if (source / name).is_file():
                shutil.copyfile(source / name, folder / name)
        own = source / "tokenizer_config.json"
        if own.is_file():  # the model's own settings win over the generic ones ...
            settings = json.loads(own.read_text(encoding="utf-8"))
            # ... but without a class of its own, transformers would pick the model_type's,
            # which may re-normalise text: the generic class reads tokenizer.json as it is
            settings.setdefault("tokenizer_class", "PreTrainedTokenizerFast")
            (folder / "tokenizer_config.json").write_text(
                json.dumps(settings, indent=2) + "\n", encoding="utf-8"
            )
        if card is not None:  # after save_pretrained, which may write a generic one
            (folder / "README.md").write_text(card, encoding="utf-8")

    return write_folder(out, write)


def write_folder(out: str | Path, write: Callable[[Path], None]) -> Path:
    """Fill a new folder `out` with `write`, atomically (a temporary folder renamed into
    place); UserError if `out` exists and is not empty."""
    out = Path(out).expanduser()
    if out.is_file() or (out.is_dir() and any(out.iterdir())):
        raise UserError(f"--out {out} already exists and is not empty; choose another folder")
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        write(tmp)
        if out.is_dir():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write_tokenizer(folder: Path, tokenizer: Tokenizer, config: ModelConfig) -> None:
    tokenizer.save(folder / "tokenizer.json")
    (folder / "tokenizer_config.json").write_text(
        json.dumps(_tokenizer_config(tokenizer, config), indent=2) + "\n", encoding="utf-8"
    )


def _tokenizer_config(tokenizer: Tokenizer, config: ModelConfig) -> dict[str, Any]:
    """What PreTrainedTokenizerFast needs beside tokenizer.json: the special tokens and length."""
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "eos_token": tokenizer.eos_token,
        "bos_token": tokenizer.token(tokenizer.bos_id) if tokenizer.bos_id is not None else None,
        "model_max_length": config.seq_len,
        "clean_up_tokenization_spaces": False,
    }


def _hf_name(name: str) -> str:
    if name == "tok_emb.weight":
        return "model.embed_tokens.weight"
    if name == "norm.weight":
        return "model.norm.weight"
    if name == "lm_head.weight":
        return name
    _, index, rest = name.split(".", 2)  # blocks.{i}.{rest}
    return f"model.layers.{index}.{_LAYER_NAMES[rest]}"
