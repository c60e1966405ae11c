"""Read a Hugging Face Llama, Mistral or Qwen2 checkpoint into budgetlm's Decoder.

These three share one architecture, the one `decoder.py` implements: pre-norm RMSNorm blocks,
SwiGLU MLPs, grouped-query attention and rotary embeddings in the rotate-half layout, which
is the layout `transformers` stores q/k in, so q_proj and k_proj load without any
permutation (the permutation is only needed for Meta's original interleaved checkpoints).
What differs is checked, never guessed: an unsupported RoPE scaling, activation, bias or head
dim is a UserError naming the config key. Loading reads config.json and safetensors files
(or `pytorch_model.bin` with `torch.load(weights_only=True)`); `transformers` is not needed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from budgetlm.errors import UserError
from budgetlm.model.config import CUSTOM, ModelConfig
from budgetlm.model.decoder import Decoder

HF_CONFIG_FILE = "config.json"
SUPPORTED_TYPES = ("llama", "mistral", "qwen2")
DEFAULT_SEQ_LEN = 1024
"""Training context for an imported model unless set: its own maximum is often 4k-128k
tokens, which would make each step of a small-compute continual run very slow."""
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
HUB_FILES = ["*.json", "*.safetensors", "tokenizer.model"]

# HF parameter names (after "model.") -> budgetlm's; {i} is the layer index.
_LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "post_attention_layernorm.weight": "mlp_norm.weight",
    **{f"self_attn.{p}_proj.weight": f"attn.{p}_proj.weight" for p in "qkvo"},
    **{f"self_attn.{p}_proj.bias": f"attn.{p}_proj.bias" for p in "qkv"},
    **{f"mlp.{p}_proj.weight": f"mlp.{p}_proj.weight" for p in ("gate", "up", "down")},
}


def is_hf_model_dir(path: str | Path) -> bool:
    """True for a folder holding a Hugging Face config.json; callers tell a budgetlm run apart
    first (run/directory.is_run_dir), as open_parent does."""
    return (Path(path) / HF_CONFIG_FILE).is_file()


def resolve_hf_source(spec: str) -> Path:
    """The local folder of `spec`: a path as is, or a hub id ("org/name") downloaded into the
    Hugging Face cache (config, tokenizer and safetensors files only). Only a hub id the user
    named ever touches the network: "org/name" is read as a hub id only when no folder "org"
    exists here."""
    path = Path(spec).expanduser()
    if path.exists() or not HUB_ID.match(spec) or path.parent.is_dir():
        return path  # "runs/typo" is a missing local folder, not a hub id to download
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise UserError(
            f"'{spec}' is not a folder here, and downloading it as a hub id needs the "
            "huggingface_hub package: `pip install budgetlm[hf]`, or pass a local folder"
        ) from None
    try:
        return Path(snapshot_download(spec, allow_patterns=HUB_FILES))
    except Exception as e:  # offline, unknown repo, gated repo: all end the same way
        raise UserError(
            f"'{spec}' is not a folder here and could not be downloaded from the Hugging Face "
            f"hub ({type(e).__name__}: {str(e).splitlines()[0][:200]}); fix: check the id and "
            "the network, or download it yourself and pass the folder"
        ) from None


def read_hf_config(folder: str | Path) -> dict[str, Any]:
    """The parsed config.json of a Hugging Face model folder (UserError if absent or bad)."""
    file = Path(folder) / HF_CONFIG_FILE
    if not file.is_file():
        raise UserError(
            f"{folder} is neither a budgetlm run (no config.yaml) nor a Hugging Face model "
            f"(no {HF_CONFIG_FILE}); pass a run directory or a folder written by save_pretrained"
        )
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{file} is not valid JSON ({e}); re-save the model") from None
    if not isinstance(config, dict):
        raise UserError(f"{file} is not a JSON object; re-save the model")
    return config


def hf_model_config(hf: dict[str, Any], seq_len: int | None = None) -> ModelConfig:
    """budgetlm's ModelConfig for a Hugging Face Llama/Mistral/Qwen2 config.json.

    `seq_len` is the training context: by default the model's maximum capped at
    DEFAULT_SEQ_LEN; never beyond a sliding-attention window, so that full causal attention
    over the sequence is exactly what the model computes."""
    model_type = hf.get("model_type")
    if model_type not in SUPPORTED_TYPES:
        raise UserError(
            f"Hugging Face model_type {model_type!r} is not supported: budgetlm continues "
            f"{', '.join(SUPPORTED_TYPES)}-style decoders"
        )
    if hf.get("hidden_act", "silu") != "silu":
        raise _unsupported(hf, "hidden_act", "only SwiGLU MLPs (silu) are supported")
    for key in ("attention_bias", "mlp_bias"):
        if hf.get(key):
            raise _unsupported(hf, key, "biases outside q/k/v are not supported")
    rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type != "default":
        raise _unsupported(hf, "rope_parameters.rope_type", "only plain RoPE is supported")
    theta = rope.get("rope_theta", hf.get("rope_theta", 10000.0))
    d_model, n_heads = config_int(hf, "hidden_size"), config_int(hf, "num_attention_heads")
    head_dim = hf.get("head_dim") or d_model // n_heads
    if head_dim * n_heads != d_model:
        raise _unsupported(hf, "head_dim", "it must equal hidden_size / num_attention_heads")
    limit = config_int(hf, "max_position_embeddings")
    window = hf.get("sliding_window")
    if window and (model_type == "mistral" or hf.get("use_sliding_window")):
        limit = min(limit, int(window))
    if seq_len is not None and seq_len > limit:
        raise UserError(
            f"continual.seq_len {seq_len} is longer than the model's context ({limit} "
            f"tokens, from its max_position_embeddings/sliding_window); set at most {limit}"
        )
    return ModelConfig(
        size=CUSTOM,
        vocab_size=config_int(hf, "vocab_size"),
        d_model=d_model,
        n_layers=config_int(hf, "num_hidden_layers"),
        n_heads=n_heads,
        n_kv_heads=hf.get("num_key_value_heads") or n_heads,
        ffn_hidden=config_int(hf, "intermediate_size"),
        seq_len=seq_len or min(limit, DEFAULT_SEQ_LEN),
        tie_embeddings=bool(hf.get("tie_word_embeddings", model_type != "qwen2")),
        qkv_bias=model_type == "qwen2",
        rope_theta=float(theta),
        norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
        init_std=float(hf.get("initializer_range", 0.02)),
    ).resolved()


def read_hf_weights(folder: str | Path) -> dict[str, Tensor]:
    """All tensors of a Hugging Face model folder, under their HF names: model.safetensors,
    the shards listed in model.safetensors.index.json, or pytorch_model.bin (weights only)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    single, index = folder / "model.safetensors", folder / "model.safetensors.index.json"
    if single.is_file():
        return load_file(single)
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            shards = sorted(set(weight_map.values()))
        except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as e:
            raise UserError(
                f"{index} is not a valid safetensors index ({e}); re-save the model"
            ) from None
        missing = [s for s in shards if not (folder / s).is_file()]
        if missing:
            raise UserError(f"{folder} lacks the weight shards {missing}; download them again")
        state: dict[str, Tensor] = {}
        for shard in shards:
            state.update(load_file(folder / shard))
        return state
    legacy = folder / "pytorch_model.bin"
    if legacy.is_file():
        return torch.load(legacy, map_location="cpu", weights_only=True)
    raise UserError(
        f"{folder} has a {HF_CONFIG_FILE} but no weights (model.safetensors, "
        "model.safetensors.index.json or pytorch_model.bin); save the model with "
        "`model.save_pretrained(folder)` or download its weight files"
    )


def budgetlm_state_dict(hf_state: dict[str, Tensor], config: ModelConfig) -> dict[str, Tensor]:
    """HF tensor names -> budgetlm's (see `decoder.py`); UserError on any tensor that is
    missing or has no budgetlm counterpart, naming the first few."""
    state: dict[str, Tensor] = {}
    unknown = []
    for name, tensor in hf_state.items():
        target = _budgetlm_name(name)
        if target is None:
            if "rotary_emb.inv_freq" not in name:  # a derived buffer some versions save
                unknown.append(name)
        else:
            state[target] = tensor
    if config.tie_embeddings:
        state.pop("lm_head.weight", None)  # some tied checkpoints save the shared matrix twice
        if "tok_emb.weight" in state:
            state["lm_head.weight"] = state["tok_emb.weight"]
    with torch.device("meta"):  # the names only: no memory for the weights
        expected = set(Decoder(config).state_dict())
    missing = sorted(expected - set(state))
    unknown += sorted(set(state) - expected)
    if missing or unknown:
        raise UserError(
            "the Hugging Face weights do not match their config.json: "
            + (f"missing {missing[:4]} " if missing else "")
            + (f"unexpected {unknown[:4]} " if unknown else "")
            + "; the checkpoint may be of another architecture or incomplete"
        )
    return state


def load_hf_model(folder: str | Path, seq_len: int | None = None) -> Decoder:
    """A Decoder holding the weights of a Hugging Face Llama/Mistral/Qwen2 folder, in fp32
    (the trainer's master weights), with shapes checked tensor by tensor."""
    config = hf_model_config(read_hf_config(folder), seq_len)
    model = Decoder(config)
    load_hf_weights(folder, model)
    return model


def load_hf_weights(folder: str | Path, model: Decoder) -> None:
    """Copy a Hugging Face folder's weights into `model` (cast to its dtype)."""
    state = budgetlm_state_dict(read_hf_weights(folder), model.config)
    own = model.state_dict()
    for name, tensor in state.items():
        if tensor.shape != own[name].shape:
            raise UserError(
                f"Hugging Face tensor for {name} has shape {tuple(tensor.shape)}, expected "
                f"{tuple(own[name].shape)} from config.json; the files do not belong together"
            )
    model.load_state_dict(state, strict=True)


def _budgetlm_name(name: str) -> str | None:
    if name == "lm_head.weight":
        return name
    name = name.removeprefix("model.")
    if name == "embed_tokens.weight":
        return "tok_emb.weight"
    if name == "norm.weight":
        return name
    match = re.fullmatch(r"layers\.(\d+)\.(.+)", name)
    if match and match.group(2) in _LAYER_NAMES:
        return f"blocks.{match.group(1)}.{_LAYER_NAMES[match.group(2)]}"
    return None


def config_int(hf: dict[str, Any], key: str) -> int:
    """config.json's `key`, checked to be a positive integer (UserError naming it)."""
    value = hf.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UserError(f"config.json: {key} must be a positive integer, got {value!r}")
    return value


def _unsupported(hf: dict[str, Any], key: str, why: str) -> UserError:
    return UserError(
        f"this {hf.get('model_type')} checkpoint sets {key} in config.json, which budgetlm's "
        f"decoder does not implement: {why}"
    )
