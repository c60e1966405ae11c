"""Write a Decoder as a Hugging Face model folder that `transformers` loads as is.

The inverse of `hf_import.py`: budgetlm's parameter names map one to one onto HF Llama's (Qwen2's
when the model has q/k/v biases), and RoPE is already in HF's rotate-half layout, so export is
a rename plus a config.json. `transformers` is not needed to export, only to load the result.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch

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
}


def hf_config(config: ModelConfig, tokenizer: Tokenizer) -> dict[str, Any]:
    """config.json for a budgetlm ModelConfig: Llama, or Qwen2 when q/k/v have biases."""
    qwen = config.qkv_bias
    rope = {"rope_type": "default", "rope_theta": config.rope_theta}
    return {
        "architectures": ["Qwen2ForCausalLM" if qwen else "LlamaForCausalLM"],
        "model_type": "qwen2" if qwen else "llama",
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
        **({} if qwen else {"attention_bias": False, "mlp_bias": False}),
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


def export_hf(model: Decoder, tokenizer: Tokenizer, out: str | Path) -> Path:
    """Write config.json, model.safetensors and the tokenizer files into `out`, atomically (a
    temporary folder renamed into place); UserError if `out` exists and is not empty."""
    from safetensors.torch import save_file

    out = Path(out).expanduser()
    if out.is_file() or (out.is_dir() and any(out.iterdir())):
        raise UserError(f"--out {out} already exists and is not empty; choose another folder")
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        config = hf_config(model.config, tokenizer)
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        save_file(hf_state_dict(model), tmp / "model.safetensors", metadata={"format": "pt"})
        tokenizer.save(tmp / "tokenizer.json")
        (tmp / "tokenizer_config.json").write_text(
            json.dumps(_tokenizer_config(tokenizer, model.config), indent=2) + "\n",
            encoding="utf-8",
        )
        generation = {"bos_token_id": tokenizer.bos_id, "eos_token_id": tokenizer.eos_id}
        (tmp / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
        if out.is_dir():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


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
