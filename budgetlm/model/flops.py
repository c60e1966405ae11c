"""Parameter and FLOP counts of a ModelConfig: computed analytically for the native decoder, and
from the architecture built on the meta device (no weights) for a transformers model."""

from __future__ import annotations

from budgetlm.model.config import HF_BACKEND, ModelConfig


def _hf_counts(config: ModelConfig) -> tuple[int, int, int]:
    from budgetlm.model.hf_backend import hf_parameter_counts  # transformers only when used

    return hf_parameter_counts(config)


def _resolved(config: ModelConfig) -> ModelConfig:
    if not config.is_resolved():
        raise ValueError("counting needs a resolved ModelConfig; call config.resolved(vocab)")
    return config


def _matmul_params_per_layer(config: ModelConfig) -> int:
    """Weights of the linears in one block: q, k, v, o and the MLP's (SwiGLU gate, up, down;
    ReLU^2 up, down)."""
    d, kv_dim = config.d_model, config.n_kv_heads * config.head_dim
    attention = 2 * d * d + 2 * d * kv_dim
    mlp = (3 if config.mlp == "swiglu" else 2) * d * config.ffn_hidden
    return attention + mlp


def count_parameters(config: ModelConfig) -> dict[str, int]:
    """Exact counts {'total', 'embedding', 'non_embedding'} of Decoder(config), tied head counted
    once. 'embedding' holds every vocab-sized matrix: the token embedding, plus the lm head when
    untied, plus any value-embedding tables; 'non_embedding' (Kaplan et al.'s N) is the rest,
    blocks and norms."""
    c = _resolved(config)
    if c.backend == HF_BACKEND:
        total, embedding, _ = _hf_counts(c)
        return {"total": total, "embedding": embedding, "non_embedding": total - embedding}
    d = c.d_model
    per_layer = _matmul_params_per_layer(c) + 2 * d  # + attn_norm and mlp_norm gains
    if c.qk_norm:
        per_layer += 2 * c.head_dim
    # + final norm, + the 2 mixing scalars of each block with a value embedding
    non_embedding = c.n_layers * per_layer + d + 2 * c.value_embeddings
    value_tables = c.value_embeddings * c.vocab_size * c.n_kv_heads * c.head_dim
    embedding = c.vocab_size * d * (1 if c.tie_embeddings else 2) + value_tables
    return {
        "total": embedding + non_embedding,
        "embedding": embedding,
        "non_embedding": non_embedding,
    }


def flops_per_token(config: ModelConfig) -> int:
    """Training FLOPs per token, forward + backward: 6 * (matmul weights of the blocks + lm head)
    + 12 * n_layers * d_model * seq_len for attention scores and values, as in PaLM (Chowdhery
    et al. 2022, appendix B) and nanoGPT's estimate_mfu. Norm gains and the embedding lookup
    do no matmul, so they are left out; the causal mask's saving is not subtracted."""
    c = _resolved(config)
    if c.backend == HF_BACKEND:  # every linear's weight, counted on the built architecture
        return 6 * _hf_counts(c)[2] + 12 * c.n_layers * c.d_model * c.seq_len
    matmul_params = c.n_layers * _matmul_params_per_layer(c) + c.vocab_size * c.d_model
    return 6 * matmul_params + 12 * c.n_layers * c.d_model * c.seq_len
