"""Shape of the decoder: named size presets and the `ModelConfig` dataclass that resolves them."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from budgetlm.errors import UserError, closest

# Named presets, ordered small -> large. Parameter counts (tied embeddings, SwiGLU width
# ~8/3*d_model) are at vocab 4096 except "base", which is sized at vocab 32000:
#   nano 0.93M, micro 3.0M, tiny 7.5M, small 25.3M, medium 48.1M, base 125.3M.
# Head dim is 32 for the two smallest and 64 from "tiny" up; the three largest use
# grouped-query attention (Ainslie et al., "GQA: Training Generalized Multi-Query
# Transformer Models from Multi-Head Checkpoints") with 2-3 query heads per key/value head.
MODEL_SIZES: dict[str, dict[str, int]] = {
    "nano": {"d_model": 128, "n_layers": 2, "n_heads": 4},
    "micro": {"d_model": 192, "n_layers": 5, "n_heads": 6},
    "tiny": {"d_model": 256, "n_layers": 8, "n_heads": 4},
    "small": {"d_model": 512, "n_layers": 8, "n_heads": 8, "n_kv_heads": 4},
    "medium": {"d_model": 640, "n_layers": 10, "n_heads": 10, "n_kv_heads": 5},
    "base": {"d_model": 768, "n_layers": 16, "n_heads": 12, "n_kv_heads": 4},
}

CUSTOM = "custom"
AUTO_SIZE = "auto"
NATIVE_BACKEND = "native"
HF_BACKEND = "hf"
BACKENDS = (NATIVE_BACKEND, HF_BACKEND)
ADAPTERS = ("none", "lora")
MLP_KINDS = ("swiglu", "relu2")
ADAPTER_FIELDS = (
    "adapter",
    "lora_rank",
    "lora_alpha",
    "lora_dropout",
    "lora_targets",
    "lora_train_embeddings",
)
"""What a continual run takes from its own config, not from the model it continues."""
"""model.size chosen for the budget by the planner (`budgetlm plan`) before the model is built."""


def swiglu_hidden(d_model: int, multiple_of: int = 32) -> int:
    """SwiGLU width ~8/3*d_model rounded up to `multiple_of`: keeps the FFN's parameter count
    equal to a 4*d_model GELU MLP (Shazeer, "GLU Variants Improve Transformer")."""
    return multiple_of * math.ceil(8 * d_model / 3 / multiple_of)


@dataclass
class ModelConfig:
    """The model: budgetlm's Llama-style decoder (backend 'native'), whose shape `size` picks
    from a preset with any field set explicitly overriding it, or a transformers model
    (backend 'hf', the architecture in hf_config; the shape fields then only feed the FLOP and
    memory estimates). Call `resolved(vocab_size)` to get the filled-in, validated copy."""

    backend: str = NATIVE_BACKEND
    """'native': budgetlm's decoder (pre-training from scratch, growth, research); 'hf': a
    transformers AutoModelForCausalLM trained as it is (what `budgetlm continue --from HF_DIR`
    sets), so that a continued model keeps its architecture."""
    hf_config: dict | None = None
    """backend 'hf': the model's config.json, kept in the run's config.yaml so the run is
    rebuilt from its own directory."""
    hf_source: str | None = None
    """backend 'hf': the folder or hub id the model came from (its remote code, if trusted)."""
    trust_remote_code: bool = False
    """backend 'hf': build a model whose code is not part of transformers (runs that code)."""
    adapter: str = "none"
    """backend 'hf': 'none' (train every weight) or 'lora' (freeze them and train low-rank
    adapters, model/lora.py)."""
    lora_rank: int = 16
    """LoRA: rank r of each adapter's update B·A."""
    lora_alpha: float = 32.0
    """LoRA: the update is scaled by alpha / r."""
    lora_dropout: float = 0.0
    """LoRA: dropout on the adapters' input."""
    lora_targets: str = "all-linear"
    """LoRA: the linears adapted: 'all-linear' (every one but the output head) or names such
    as 'q_proj,v_proj'."""
    lora_train_embeddings: bool = False
    """LoRA: also train the token embedding and output head in full (e.g. for a new language)."""

    size: str = "nano"
    """A MODEL_SIZES key, "custom" (then d_model, n_layers and n_heads are required) or "auto"
    (the size `budgetlm plan` recommends for the budget on this machine)."""
    vocab_size: int | None = None
    """Number of token ids; filled from the tokenizer when None."""
    d_model: int | None = None
    """Width of the residual stream."""
    n_layers: int | None = None
    """Number of transformer blocks."""
    n_heads: int | None = None
    """Query heads; head dim = d_model / n_heads and must be even (RoPE rotates pairs)."""
    n_kv_heads: int | None = None
    """Key/value heads: None -> n_heads (multi-head); fewer -> grouped-query attention."""
    ffn_hidden: int | None = None
    """SwiGLU hidden width; None -> ~8/3*d_model rounded up to a multiple of 32."""
    seq_len: int = 256
    """Context length in tokens (the longest sequence the model accepts)."""
    tie_embeddings: bool = True
    """Share one matrix between the token embedding and the output head."""
    qkv_bias: bool = False
    """Biases on the query/key/value projections (Qwen2 has them; Llama and Mistral do not)."""
    rope_theta: float = 10000.0
    """RoPE base (Su et al., "RoFormer: Enhanced Transformer with Rotary Position Embedding")."""
    norm_eps: float = 1e-5
    """Epsilon inside RMSNorm's square root."""
    init_std: float = 0.02
    """Std of the normal init of linears and embeddings (residual outputs are scaled down)."""
    qk_norm: bool = False
    """RMSNorm each query and key head before RoPE (Henry et al., 2020, "Query-Key
    Normalization for Transformers"; as Qwen3 does, so such a model exports as Qwen3)."""
    mlp: str = "swiglu"
    """Feed-forward kind: 'swiglu' (gated, Llama's) or 'relu2': down(relu(up(x))^2), ungated
    (So et al., 2021, "Primer: Searching for Efficient Transformers for Language Modeling")."""
    value_embeddings: int = 0
    """Give the first k blocks each a token-embedding table of its own, mixed into the
    attention values with two learned scalars (the modded-nanogpt speedrun's value
    embeddings); 0 turns them off."""
    document_mask: bool = False
    """Let each token attend only to earlier tokens of its own document in a packed row
    (a row joins documents with EOS, which starts the next document), instead of to every
    earlier token of the row."""
    eos_id: int | None = None
    """The token id that separates documents, for document_mask: set from the tokenizer by the
    job (job/decide.py)."""

    def resolved(self, vocab_size: int | None = None) -> ModelConfig:
        """A copy with every field filled from the preset (explicit fields win) and validated.

        `vocab_size` is the tokenizer's; it fills `self.vocab_size` when that is None.
        Raises UserError naming the `model.*` key and the fix.
        """
        if self.backend not in BACKENDS:
            raise UserError(
                f"model.backend: unknown backend {self.backend!r}"
                f"{closest(str(self.backend), BACKENDS)}; choose one of {', '.join(BACKENDS)}"
            )
        if self.adapter not in ADAPTERS:
            raise UserError(
                f"model.adapter must be one of {', '.join(ADAPTERS)}, got {self.adapter!r}"
            )
        if self.backend == HF_BACKEND:
            return self._resolved_hf(vocab_size)
        if self.adapter != "none":
            raise UserError(
                f"model.adapter {self.adapter} applies to transformers models (`budgetlm "
                "continue --from HF_DIR`); budgetlm's native decoder trains every weight"
            )
        if self.size == CUSTOM:
            preset: dict[str, int] = {}
            missing = [k for k in ("d_model", "n_layers", "n_heads") if getattr(self, k) is None]
            if missing:
                keys = ", ".join(f"model.{k}" for k in missing)
                raise UserError(
                    f"model.size is 'custom' but {keys} not set: set them, or pick a preset "
                    f"size ({', '.join(MODEL_SIZES)})"
                )
        elif self.size in MODEL_SIZES:
            preset = MODEL_SIZES[self.size]
        elif self.size == AUTO_SIZE:
            raise UserError(
                "model.size 'auto' is chosen by the planner, which `budgetlm pretrain` runs; "
                f"elsewhere pick a size ({', '.join(MODEL_SIZES)})"
            )
        else:
            raise UserError(
                f"model.size: unknown size {self.size!r}{closest(str(self.size), MODEL_SIZES)}; "
                f"choose one of {', '.join(MODEL_SIZES)} or 'custom'"
            )

        def pick(key: str) -> int | None:
            value = getattr(self, key)
            return value if value is not None else preset.get(key)

        vocab = self.vocab_size if self.vocab_size is not None else vocab_size
        if vocab is None:
            raise UserError(
                "model.vocab_size is not set and no tokenizer vocab size was given: set "
                "model.vocab_size or resolve the config with the tokenizer's vocab size"
            )
        if self.vocab_size is not None and vocab_size is not None and self.vocab_size < vocab_size:
            raise UserError(
                f"model.vocab_size is {self.vocab_size} but the tokenizer has {vocab_size} tokens: "
                f"set model.vocab_size >= {vocab_size} or leave it unset"
            )
        d_model = pick("d_model")
        n_heads = pick("n_heads")
        n_kv_heads = pick("n_kv_heads")
        out = dataclasses.replace(
            self,
            vocab_size=vocab,
            d_model=d_model,
            n_layers=pick("n_layers"),
            n_heads=n_heads,
            n_kv_heads=n_kv_heads if n_kv_heads is not None else n_heads,
        )
        _check_positive_ints(out, ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads"))
        if out.mlp not in MLP_KINDS:
            raise UserError(
                f"model.mlp: unknown kind {out.mlp!r}{closest(str(out.mlp), MLP_KINDS)}; "
                f"choose one of {', '.join(MLP_KINDS)}"
            )
        if out.ffn_hidden is None:  # either kind: 8 * d_model^2 weights per block's MLP
            out.ffn_hidden = swiglu_hidden(out.d_model) if out.mlp == "swiglu" else 4 * out.d_model
        _check_positive_ints(out, ("ffn_hidden", "seq_len"))
        for key in ("rope_theta", "norm_eps", "init_std"):
            value = getattr(out, key)
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise UserError(f"model.{key} must be a positive number, got {value!r}")
        if isinstance(out.value_embeddings, bool) or not isinstance(out.value_embeddings, int):
            raise UserError(
                f"model.value_embeddings must be a whole number of blocks, got "
                f"{out.value_embeddings!r}"
            )
        if not 0 <= out.value_embeddings <= out.n_layers:
            raise UserError(
                f"model.value_embeddings is {out.value_embeddings} but the model has "
                f"{out.n_layers} blocks: choose 0 to {out.n_layers}"
            )
        for key in ("tie_embeddings", "qkv_bias", "qk_norm", "document_mask"):
            if not isinstance(getattr(out, key), bool):
                raise UserError(f"model.{key} must be true or false, got {getattr(out, key)!r}")
        if out.document_mask and out.eos_id is None:
            raise UserError(
                "model.document_mask needs the id of the token that ends documents "
                "(model.eos_id): the job sets it from the tokenizer; set it when building "
                "a model by hand"
            )

        if out.d_model % out.n_heads:
            raise UserError(
                f"model.d_model ({out.d_model}) is not divisible by model.n_heads "
                f"({out.n_heads}): choose n_heads that divides d_model"
            )
        head_dim = out.d_model // out.n_heads
        if head_dim % 2:
            raise UserError(
                f"model.d_model / model.n_heads = {head_dim} is odd, but RoPE rotates pairs of "
                f"dimensions: choose d_model and n_heads so the head dim is even"
            )
        if out.n_heads % out.n_kv_heads:
            raise UserError(
                f"model.n_heads ({out.n_heads}) is not divisible by model.n_kv_heads "
                f"({out.n_kv_heads}): choose n_kv_heads that divides n_heads"
            )
        return out

    def _resolved_hf(self, vocab_size: int | None) -> ModelConfig:
        """A hf-backend config is filled when opened (hf_backend.hf_backend_config); check it."""
        if not isinstance(self.hf_config, dict) or not self.hf_config.get("model_type"):
            raise UserError(
                "model.backend 'hf' needs model.hf_config (the model's config.json); continue a "
                "Hugging Face model with `budgetlm continue --from HF_DIR` instead of setting it"
            )
        if self.vocab_size is not None and vocab_size is not None and self.vocab_size < vocab_size:
            raise UserError(
                f"the model has {self.vocab_size} token embeddings but the tokenizer has "
                f"{vocab_size} tokens; tokenize the data with the model's own tokenizer"
            )
        return dataclasses.replace(self)

    def key_fields(self) -> dict:
        """The fields that identify the model in measurement caches: a native model's keys
        leave out the hf-only fields, so measurements cached before they existed still count."""
        fields = dataclasses.asdict(self)
        for key, default in _RECIPE_DEFAULTS.items():  # so do those of the recipe options
            if fields[key] == default:
                fields.pop(key)
        if self.backend == NATIVE_BACKEND:
            for key in ("backend", "hf_config", "hf_source", "trust_remote_code"):
                fields.pop(key)
        if self.adapter == "none":
            for key in [k for k in fields if k == "adapter" or k.startswith("lora_")]:
                fields.pop(key)
        return fields

    def is_resolved(self) -> bool:
        """True when every shape field is filled in (as `resolved()` returns)."""
        return all(
            getattr(self, key) is not None
            for key in ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "ffn_hidden")
        )

    @property
    def head_dim(self) -> int:
        """Per-head width d_model / n_heads (resolved configs only)."""
        if self.d_model is None or self.n_heads is None:
            raise ValueError("head_dim needs a resolved ModelConfig; call .resolved() first")
        return self.d_model // self.n_heads


_RECIPE_DEFAULTS = {
    "qk_norm": False,
    "mlp": "swiglu",
    "value_embeddings": 0,
    "document_mask": False,
    "eos_id": None,
}
"""The architecture options added after measurements were first cached, at their defaults."""


def _check_positive_ints(config: ModelConfig, keys: tuple[str, ...]) -> None:
    for key in keys:
        value = getattr(config, key)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise UserError(f"model.{key} must be a positive integer, got {value!r}")
