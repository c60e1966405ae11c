"""Decoder behaviour: causality, init loss, RoPE, GQA, overfitting, reductions, bf16 autocast."""

from __future__ import annotations

import math

import pytest
import torch

from budgetlm.errors import UserError
from budgetlm.model.config import ModelConfig
from budgetlm.model.decoder import Decoder, apply_rope, rope_cache

VOCAB = 64


def tiny(**overrides) -> ModelConfig:
    fields = dict(size="custom", d_model=32, n_layers=2, n_heads=4, vocab_size=VOCAB, seq_len=16)
    return ModelConfig(**{**fields, **overrides}).resolved()


def tokens(batch: int = 4, seq: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, VOCAB, (batch, seq), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_logits_shape_and_dtype() -> None:
    model = Decoder(tiny())
    logits = model(tokens(3, 10))
    assert logits.shape == (3, 10, VOCAB) and logits.dtype == torch.float32


def test_parameter_names_are_plain() -> None:
    names = set(Decoder(tiny(tie_embeddings=False)).state_dict())
    for name in [
        "tok_emb.weight",
        "blocks.0.attn_norm.weight",
        "blocks.0.attn.q_proj.weight",
        "blocks.1.attn.k_proj.weight",
        "blocks.1.attn.v_proj.weight",
        "blocks.1.attn.o_proj.weight",
        "blocks.0.mlp_norm.weight",
        "blocks.0.mlp.gate_proj.weight",
        "blocks.0.mlp.up_proj.weight",
        "blocks.0.mlp.down_proj.weight",
        "norm.weight",
        "lm_head.weight",
    ]:
        assert name in names
    assert not any("rope" in n for n in names)  # RoPE tables are derived, never saved


def test_tied_embeddings_share_one_tensor() -> None:
    tied = Decoder(tiny())
    assert tied.lm_head.weight is tied.tok_emb.weight
    untied = Decoder(tiny(tie_embeddings=False))
    assert untied.lm_head.weight.data_ptr() != untied.tok_emb.weight.data_ptr()


def test_init_scales() -> None:
    config = tiny(d_model=256, n_heads=4, n_layers=8, vocab_size=512)
    model = Decoder(config)
    assert torch.equal(model.norm.weight, torch.ones(256))
    q_std = model.blocks[0].attn.q_proj.weight.std().item()
    o_std = model.blocks[0].attn.o_proj.weight.std().item()
    down_std = model.blocks[0].mlp.down_proj.weight.std().item()
    # 65k samples each: the sample std is within ~1% of the true one.
    assert q_std == pytest.approx(0.02, rel=0.05)
    assert o_std == pytest.approx(0.02 / math.sqrt(2 * 8), rel=0.05)
    assert down_std == pytest.approx(0.02 / math.sqrt(2 * 8), rel=0.05)


def test_unresolved_config_and_too_long_input_raise() -> None:
    with pytest.raises(ValueError, match="resolved"):
        Decoder(ModelConfig(size="nano"))
    model = Decoder(tiny())
    model(tokens(1, 16))  # exactly seq_len is fine
    with pytest.raises(ValueError, match="seq_len"):
        model(tokens(1, 17))


def test_causality() -> None:
    model = Decoder(tiny())
    idx = tokens(2, 16)
    changed = idx.clone()
    changed[:, 10] = (changed[:, 10] + 1) % VOCAB
    a, b = model(idx), model(changed)
    torch.testing.assert_close(a[:, :10], b[:, :10], rtol=0, atol=0)
    assert not torch.allclose(a[:, 10:], b[:, 10:])


def test_loss_at_init_is_about_ln_vocab() -> None:
    # The final RMSNorm gives unit-RMS features h, and each logit h . w has w ~ N(0, 0.02^2),
    # so logits are ~N(0, s^2) with s = 0.02 * sqrt(32) = 0.11. For random targets the expected
    # cross-entropy is then ln V + s^2/2 = ln 64 + 0.006, and the mean over 512 tokens has
    # noise of about s / sqrt(512) < 0.01: 0.03 is a comfortable bound.
    model = Decoder(tiny(tie_embeddings=False))
    idx, targets = tokens(8, 16, seed=1), tokens(8, 16, seed=2)
    loss = model(idx, targets).item()
    assert abs(loss - math.log(VOCAB)) < 0.03


def test_reduction_none_mean_equals_mean_and_sum() -> None:
    model = Decoder(tiny())
    idx, targets = tokens(), tokens(seed=1)
    per_token = model(idx, targets, reduction="none")
    assert per_token.shape == targets.shape
    torch.testing.assert_close(per_token.mean(), model(idx, targets))
    torch.testing.assert_close(per_token.sum(), model(idx, targets, reduction="sum"))
    with pytest.raises(ValueError, match="reduction"):
        model(idx, targets, reduction="max")


def test_loss_is_float32_under_bf16_autocast_and_close_to_fp32() -> None:
    model = Decoder(tiny())
    idx, targets = tokens(), tokens(seed=1)
    ref_logits, ref_loss = model(idx), model(idx, targets)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(idx)
        loss = model(idx, targets)
    assert logits.dtype == torch.bfloat16 and loss.dtype == torch.float32
    # bf16 keeps 8 mantissa bits (relative error 2^-9 per rounding); logits here are ~0.1 in
    # size, so a few roundings through two blocks stay well under 0.01 absolute.
    torch.testing.assert_close(logits.float(), ref_logits, rtol=0, atol=1e-2)
    assert abs(loss.item() - ref_loss.item()) < 1e-2
    loss.backward()  # gradients flow to the fp32 parameters
    assert model.tok_emb.weight.grad is not None


def test_gqa_with_all_kv_heads_is_mha() -> None:
    mha = Decoder(tiny())
    explicit = Decoder(tiny(n_kv_heads=4))
    assert explicit.config == mha.config
    assert {k: v.shape for k, v in explicit.state_dict().items()} == {
        k: v.shape for k, v in mha.state_dict().items()
    }


def test_gqa_equals_mha_with_repeated_kv_heads() -> None:
    # GQA with 2 kv heads for 4 query heads: query head h reads kv head h // 2. An MHA model
    # whose k/v projections repeat each kv head twice must give the same logits.
    gqa = Decoder(tiny(n_kv_heads=2))
    assert gqa.blocks[0].attn.k_proj.weight.shape == (2 * 8, 32)
    mha = Decoder(tiny())
    state = gqa.state_dict()
    for name, weight in list(state.items()):
        if name.endswith(("k_proj.weight", "v_proj.weight")):
            state[name] = weight.view(2, 8, 32).repeat_interleave(2, dim=0).reshape(32, 32)
    mha.load_state_dict(state)
    idx = tokens()
    torch.testing.assert_close(mha(idx), gqa(idx))


def test_rope_depends_only_on_relative_position() -> None:
    head_dim, n = 16, 32
    cos, sin = rope_cache(n, head_dim, theta=10000.0)
    q, k = torch.randn(head_dim), torch.randn(head_dim)
    q_rot = apply_rope(q.expand(n, head_dim), cos, sin)  # q placed at every position
    k_rot = apply_rope(k.expand(n, head_dim), cos, sin)
    scores = q_rot @ k_rot.T  # scores[m, n] = q at position m . k at position n
    for shift in (1, 5, 13):
        torch.testing.assert_close(scores[shift:, shift:], scores[:-shift, :-shift])
    torch.testing.assert_close(scores.diagonal(), (q @ k).expand(n))  # offset 0: no rotation


def test_rope_is_rotate_half_layout() -> None:
    # HF Llama's layout: dims i and i + head_dim/2 form the complex number x_i + j*x_{i+d/2},
    # rotated by position * theta^(-2i/d). Checking against that formula pins the layout.
    head_dim, n = 8, 6
    cos, sin = rope_cache(n, head_dim, theta=100.0)
    x = torch.randn(n, head_dim)
    half = head_dim // 2
    z = torch.complex(x[:, :half], x[:, half:])
    freqs = 100.0 ** (-torch.arange(half) * 2 / head_dim)
    z = z * torch.polar(torch.ones(n, half), torch.arange(n)[:, None] * freqs)
    torch.testing.assert_close(apply_rope(x, cos, sin), torch.cat([z.real, z.imag], dim=-1))


def test_meta_device_build_then_materialise() -> None:
    config = tiny()
    with torch.device("meta"):
        model = Decoder(config)
    model.to_empty(device="cpu")
    model.init_weights()
    reference = Decoder(config)
    torch.testing.assert_close(model.rope_cos, reference.rope_cos)
    assert model.lm_head.weight is model.tok_emb.weight
    assert abs(model(tokens(), tokens(seed=1)).item() - math.log(VOCAB)) < 0.05


def test_overfits_one_batch() -> None:
    # 4 x 16 random tokens are pure memorisation: a working model + optimiser drives the
    # loss from ln 64 = 4.16 to near zero; a broken mask or gradient path would not.
    model = Decoder(tiny())
    idx = tokens(4, 16)
    x, y = idx[:, :-1], idx[:, 1:]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        loss = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5


RECIPES = {
    "qk_norm": dict(qk_norm=True),
    "relu2": dict(mlp="relu2"),
    "value_embeddings": dict(value_embeddings=2),
    "document_mask": dict(document_mask=True, eos_id=0),
}


@pytest.mark.parametrize("options", RECIPES.values(), ids=RECIPES.keys())
def test_each_recipe_option_is_causal_and_overfits(options) -> None:
    model = Decoder(tiny(**options))
    idx = tokens(4, 16).clamp(min=1)  # no EOS: one document per row
    changed = idx.clone()
    changed[:, 10] = changed[:, 10] % (VOCAB - 1) + 1
    torch.testing.assert_close(model(idx)[:, :10], model(changed)[:, :10], rtol=0, atol=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        loss = model(idx[:, :-1], idx[:, 1:])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5


def test_document_mask_makes_each_document_see_only_itself() -> None:
    # RoPE scores depend only on offsets, so a document packed after another gives the same
    # logits as the document alone at the start of a row, once attention stops at its EOS.
    eos = 0
    first, second = tokens(1, 7, seed=1).clamp(min=1), tokens(1, 8, seed=2).clamp(min=1)
    second[0, 0] = eos  # the EOS that ends the first document opens the second
    packed = torch.cat([first, second], dim=1)
    masked = Decoder(tiny(document_mask=True, eos_id=eos))
    plain = Decoder(tiny())
    plain.load_state_dict(masked.state_dict())
    alone = masked(second)
    torch.testing.assert_close(masked(packed)[:, 7:], alone, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(plain(packed)[:, 7:], alone, atol=1e-3)
    # the mask does nothing to a row with a single document
    torch.testing.assert_close(masked(first), plain(first), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("qk_norm", [True, False])
def test_qk_norm_makes_attention_blind_to_the_scale_of_q_and_k(qk_norm) -> None:
    model = Decoder(tiny(qk_norm=qk_norm))
    names = set(model.state_dict())
    assert ("blocks.1.attn.k_norm.weight" in names) == qk_norm
    idx = tokens(2, 16)
    before = model(idx)
    with torch.no_grad():
        for block in model.blocks:
            block.attn.q_proj.weight.mul_(7.0)
            block.attn.k_proj.weight.mul_(3.0)
    change = (model(idx) - before).abs().max().item()
    assert change < 5e-4 if qk_norm else change > 1e-2


def test_relu2_mlp_is_ungated_and_four_times_wide() -> None:
    config = tiny(mlp="relu2")
    assert config.ffn_hidden == 4 * 32
    names = set(Decoder(config).state_dict())
    assert "blocks.0.mlp.up_proj.weight" in names and "blocks.0.mlp.gate_proj.weight" not in names
    with pytest.raises(UserError, match="model.mlp: unknown kind 'relu3'.*relu2"):
        tiny(mlp="relu3")


def test_value_embeddings_feed_the_first_blocks_values() -> None:
    model = Decoder(tiny(value_embeddings=1))
    assert len(model.value_embeds) == 1
    assert model.blocks[0].attn.value_lambdas.tolist() == [0.5, 0.5]
    assert model.blocks[1].attn.value_lambdas is None
    idx = tokens(1, 16)
    before = model(idx)
    with torch.no_grad():
        model.value_embeds[0].weight[idx[0, 3]] += 1.0
    after = model(idx)
    assert not torch.allclose(before[:, 3:], after[:, 3:])
    with pytest.raises(UserError, match="value_embeddings is 3 but the model has 2 blocks"):
        tiny(value_embeddings=3)


def test_document_mask_needs_the_separator_id() -> None:
    with pytest.raises(UserError, match="model.eos_id"):
        tiny(document_mask=True)
