"""The Llama-style decoder-only transformer, in one file read top to bottom.

RMSNorm pre-norm blocks, rotary positions, SwiGLU MLPs, optional grouped-query attention,
no biases except optional q/k/v ones (for Qwen2 checkpoints), fp32 parameters (the trainer
wraps calls in `torch.autocast` for bf16). Recipe options, all off by default: QK-norm,
ReLU^2 MLPs, value embeddings and document-masked attention (see ModelConfig).

Parameter names are plain and stable, and mirror HF Llama's so an export is a rename:
`tok_emb.weight`, `blocks.{i}.attn_norm.weight`, `blocks.{i}.attn.{q,k,v,o}_proj.weight`,
`blocks.{i}.mlp_norm.weight`, `blocks.{i}.mlp.{gate,up,down}_proj.weight`, `norm.weight`,
(with QK-norm `blocks.{i}.attn.{q,k}_norm.weight`, as Qwen3's; ReLU^2 has no gate_proj),
`lm_head.weight`. With tied embeddings `lm_head.weight` *is* `tok_emb.weight` (one tensor,
two state_dict keys); `tok_emb.weight` is the canonical key to save.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from budgetlm.model.config import ModelConfig


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned gain and no mean-centering or bias
    (Zhang & Sennrich, "Root Mean Square Layer Normalization")."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        # Normalise in float32 even under autocast: the mean of squares loses precision in bf16.
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return (x32 * self.weight.float()).type_as(x)


def rope_cache(seq_len: int, head_dim: int, theta: float) -> tuple[Tensor, Tensor]:
    """cos and sin tables [seq_len, head_dim] for rotary embeddings (Su et al., "RoFormer"), in
    HF Llama's rotate-half layout: frequency i drives dims i and i + head_dim/2."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos(), angles.sin()


def apply_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate x [..., T, head_dim] by its position: x*cos + rotate_half(x)*sin, which makes
    q.k depend on positions only through their offset. Computed in x's dtype (bf16 under
    autocast), as HF Llama does: promoting to fp32 cost 6% of the step at the 25M size."""
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos.to(x.dtype) + rotated * sin.to(x.dtype)


class Attention(nn.Module):
    """Causal self-attention with RoPE and grouped-query attention (Ainslie et al., "GQA");
    n_kv_heads == n_heads is plain multi-head attention. Optionally QK-norm, and a value
    embedding mixed into the values."""

    def __init__(self, config: ModelConfig, value_embedding: bool = False) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.n_kv_heads = config.n_kv_heads
        self.head_dim = config.d_model // config.n_heads
        d, kv_dim = config.d_model, config.n_kv_heads * self.head_dim
        self.q_proj = nn.Linear(d, d, bias=config.qkv_bias)
        self.k_proj = nn.Linear(d, kv_dim, bias=config.qkv_bias)
        self.v_proj = nn.Linear(d, kv_dim, bias=config.qkv_bias)
        self.o_proj = nn.Linear(d, d, bias=False)
        self.q_norm = RMSNorm(self.head_dim, config.norm_eps) if config.qk_norm else None
        self.k_norm = RMSNorm(self.head_dim, config.norm_eps) if config.qk_norm else None
        # v = lambdas[0] * v + lambdas[1] * value_embedding, both learned (as modded-nanogpt)
        self.value_lambdas = nn.Parameter(torch.full((2,), 0.5)) if value_embedding else None

    def forward(
        self,
        x: Tensor,
        cos: Tensor,
        sin: Tensor,
        mask: Tensor | None = None,
        value_embedding: Tensor | None = None,
    ) -> Tensor:
        """`mask` [B, 1, T, T] (True: may attend) replaces the causal mask when given."""
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if self.value_lambdas is not None:
            ve = value_embedding.view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)
            v = self.value_lambdas[0] * v + self.value_lambdas[1] * ve.type_as(v)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        # With GQA, query head h reads key/value head h // group (as HF Llama's repeat_kv), done
        # inside the attention kernel instead of by copying k and v.
        gqa = self.n_kv_heads != self.n_heads
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=mask is None, enable_gqa=gqa
        )
        return self.o_proj(y.transpose(1, 2).reshape(B, T, -1))


def document_causal_mask(idx: Tensor, eos_id: int) -> Tensor:
    """[B, 1, T, T] boolean mask: position t may attend to position s <= t of the same document.
    A row is documents joined by EOS; each EOS opens the next document (it is the BOS the next
    document's first token is predicted from), so documents number cumsum(idx == eos)."""
    document = (idx == eos_id).cumsum(dim=1)
    same = document[:, :, None] == document[:, None, :]
    causal = torch.ones(idx.shape[1], idx.shape[1], dtype=torch.bool, device=idx.device).tril()
    return (same & causal).unsqueeze(1)


class MLP(nn.Module):
    """SwiGLU feed-forward: down(silu(gate(x)) * up(x)) (Shazeer, "GLU Variants Improve
    Transformer"); or, with model.mlp 'relu2', ungated down(relu(up(x))^2) (So et al.,
    "Primer")."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        gated = config.mlp == "swiglu"
        self.gate_proj = nn.Linear(config.d_model, config.ffn_hidden, bias=False) if gated else None
        self.up_proj = nn.Linear(config.d_model, config.ffn_hidden, bias=False)
        self.down_proj = nn.Linear(config.ffn_hidden, config.d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        if self.gate_proj is None:
            return self.down_proj(F.relu(self.up_proj(x)).square())
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: ModelConfig, value_embedding: bool = False) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(config.d_model, config.norm_eps)
        self.attn = Attention(config, value_embedding)
        self.mlp_norm = RMSNorm(config.d_model, config.norm_eps)
        self.mlp = MLP(config)

    def forward(
        self,
        x: Tensor,
        cos: Tensor,
        sin: Tensor,
        mask: Tensor | None = None,
        value_embedding: Tensor | None = None,
    ) -> Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin, mask, value_embedding)
        return x + self.mlp(self.mlp_norm(x))


class Decoder(nn.Module):
    """Decoder-only language model: token embedding, n_layers blocks, final norm, lm head."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if not config.is_resolved():
            raise ValueError("Decoder needs a resolved ModelConfig; call config.resolved(vocab)")
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        n_value = config.value_embeddings
        self.blocks = nn.ModuleList(Block(config, i < n_value) for i in range(config.n_layers))
        kv_dim = config.n_kv_heads * config.head_dim
        self.value_embeds = nn.ModuleList(
            nn.Embedding(config.vocab_size, kv_dim) for _ in range(n_value)
        )
        self.norm = RMSNorm(config.d_model, config.norm_eps)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        # Non-persistent: derived from the config, so never saved in or loaded from checkpoints.
        self.register_buffer("rope_cos", torch.empty(0), persistent=False)
        self.register_buffer("rope_sin", torch.empty(0), persistent=False)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        """(Re)tie the embeddings and initialise parameters and RoPE tables in place; call it after
        `to_empty()` of a model built on the meta device (which unties shared weights). Residual
        output projections get std / sqrt(2*n_layers) so the residual stream's variance does not
        grow with depth (GPT-2, Radford et al.)."""
        if self.config.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight
        std = self.config.init_std
        residual_std = std / math.sqrt(2 * self.config.n_layers)
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, mean=0.0, std=std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, RMSNorm):
                nn.init.ones_(module.weight)
            elif isinstance(module, Attention) and module.value_lambdas is not None:
                nn.init.constant_(module.value_lambdas, 0.5)
        for block in self.blocks:
            nn.init.normal_(block.attn.o_proj.weight, mean=0.0, std=residual_std)
            nn.init.normal_(block.mlp.down_proj.weight, mean=0.0, std=residual_std)
        device = self.tok_emb.weight.device
        cos, sin = rope_cache(self.config.seq_len, self.config.head_dim, self.config.rope_theta)
        self.rope_cos = cos.to(device)
        self.rope_sin = sin.to(device)

    def forward(
        self, idx: Tensor, targets: Tensor | None = None, reduction: str = "mean"
    ) -> Tensor:
        """Logits [B, T, V] when targets is None; else the cross-entropy computed in float32
        (scalar for 'mean'/'sum', [B, T] for 'none'; targets of -100 are ignored)."""
        length, max_length = idx.shape[1], self.config.seq_len
        if length > max_length:
            raise ValueError(f"sequence length {length} exceeds the model's seq_len {max_length}")
        cos, sin = self.rope_cos[:length], self.rope_sin[:length]
        mask = document_causal_mask(idx, self.config.eos_id) if self.config.document_mask else None
        values = [table(idx) for table in self.value_embeds]
        x = self.tok_emb(idx)
        for i, block in enumerate(self.blocks):
            x = block(x, cos, sin, mask, values[i] if i < len(values) else None)
        logits = self.lm_head(self.norm(x))
        return logits if targets is None else next_token_loss(logits, targets, reduction)


def next_token_loss(logits: Tensor, targets: Tensor, reduction: str = "mean") -> Tensor:
    """Cross-entropy of [B, T, V] logits against [B, T] targets, computed in float32 (scalar for
    'mean'/'sum', [B, T] for 'none'; targets of -100 are ignored); both backends use it."""
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    loss = F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction=reduction)
    return loss.view_as(targets) if reduction == "none" else loss
