import io

import pytest
import torch

from budgetlm.errors import UserError
from budgetlm.model.config import ModelConfig
from budgetlm.model.decoder import Decoder
from budgetlm.train.config import TrainConfig
from budgetlm.train.muon import MuonAdamW
from budgetlm.train.optim import build_adamw, build_optimizer, split_parameters


def tiny_decoder(seed=0, **shape):
    torch.manual_seed(seed)
    values = {"size": "custom", "d_model": 32, "n_layers": 2, "n_heads": 2, "vocab_size": 64}
    return Decoder(ModelConfig(**{**values, "seq_len": 16, **shape}).resolved())


def batches(steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(0, 64, (4, 17), generator=g) for _ in range(steps)]


def train(model, optimizer, data, lr=1e-2):
    """The trainer's step: every group's "lr" set from the schedule, then step and zero_grad."""
    losses = []
    for batch in data:
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss = model(batch[:, :-1], batch[:, 1:])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return losses


def names(model, params):
    ids = {id(p) for p in params}
    return {n for n, p in model.named_parameters() if id(p) in ids}


@pytest.mark.parametrize("tie", [True, False])
def test_split_gives_muon_the_hidden_matrices_only(tie):
    model = tiny_decoder(tie_embeddings=tie, qkv_bias=True)
    split = split_parameters(model)
    assert names(model, split.hidden) == {
        f"blocks.{i}.{m}.weight"
        for i in range(2)
        for m in ("attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.o_proj")
        + ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")
    }
    assert names(model, split.matrices) == (
        {"tok_emb.weight"} if tie else {"tok_emb.weight", "lm_head.weight"}
    )
    assert {n.rsplit(".", 2)[-2] for n in names(model, split.vectors)} == {
        "attn_norm",
        "mlp_norm",
        "q_proj",
        "k_proj",
        "v_proj",
        "norm",
    }
    every = split.hidden + split.matrices + split.vectors
    assert len(every) == len({id(p) for p in every}) == len(list(model.parameters()))


def test_adamw_is_fused_on_cpu_and_decays_matrices_only():
    model = tiny_decoder()
    opt = build_optimizer(model, TrainConfig())
    assert isinstance(opt, torch.optim.AdamW)
    if tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 4):
        assert opt.defaults["fused"]
    decay, no_decay = opt.param_groups
    assert all(p.ndim == 2 for p in decay["params"]) and decay["weight_decay"] == 0.1
    assert all(p.ndim == 1 for p in no_decay["params"]) and no_decay["weight_decay"] == 0.0
    assert isinstance(build_adamw(model, TrainConfig(), torch.device("cpu")), torch.optim.AdamW)


def test_muon_groups_follow_the_trainers_lr():
    model = tiny_decoder()
    opt = build_optimizer(model, TrainConfig(optimizer="muon", muon_lr_scale=2.0))
    assert isinstance(opt, MuonAdamW)
    assert [g.get("lr_scale") for g in opt.param_groups] == [2.0, None, None]
    before = [p.detach().clone() for p in model.parameters()]
    train(model, opt, batches(1), lr=0.0)  # LR 0 everywhere: no update and no decay
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))
    train(model, opt, batches(1), lr=1e-2)
    assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))


def test_muon_lowers_a_decoders_loss():
    model = tiny_decoder()
    opt = build_optimizer(model, TrainConfig(optimizer="muon"))
    data = batches(1) * 6  # one batch over and over: memorised, the loss falls below ln(64)
    losses = train(model, opt, data, lr=1e-2)
    assert losses[0] > 4.0 and losses[-1] < losses[0] - 0.7


@pytest.mark.parametrize("name", ["adamw", "muon"])
def test_state_dict_round_trip_resumes_exactly(name):
    config = TrainConfig(optimizer=name)
    data = batches(6)
    whole = tiny_decoder()
    train(whole, build_optimizer(whole, config), data)

    first = tiny_decoder()
    opt = build_optimizer(first, config)
    train(first, opt, data[:3])
    buffer = io.BytesIO()  # as a checkpoint stores it: torch.save, loaded with weights_only
    torch.save({"model": first.state_dict(), "optimizer": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed = tiny_decoder(seed=1)  # other initial weights: everything must come from the save
    resumed.load_state_dict(saved["model"])
    opt = build_optimizer(resumed, config)
    opt.load_state_dict(saved["optimizer"])
    train(resumed, opt, data[3:])
    for a, b in zip(whole.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)


def test_bad_names_and_scales():
    model = tiny_decoder()
    with pytest.raises(UserError, match="did you mean 'muon'"):
        build_optimizer(model, TrainConfig(optimizer="moun"))
    with pytest.raises(UserError, match="muon_lr_scale"):
        build_optimizer(model, TrainConfig(optimizer="muon", muon_lr_scale=0.0))


def test_embedding_lr_scale_gives_the_embeddings_their_own_lr(tiny_config):
    import torch

    from budgetlm import api
    from budgetlm.data.store.dataset import PreparedDataset
    from budgetlm.model.decoder import Decoder

    config = tiny_config(**{"train.embedding_lr_scale": 0.0, "train.precision": "fp32"})
    result = api.pretrain(config, log=lambda _: None)
    torch.manual_seed(config.train.seed)  # the run's initial weights
    vocab = PreparedDataset(config.data.prepared).tokenizer.vocab_size
    initial = Decoder(config.model.resolved(vocab)).state_dict()
    trained = api.load_model(result.run_dir).state_dict()
    assert torch.equal(trained["tok_emb.weight"], initial["tok_emb.weight"])  # LR 0: unmoved
    assert not torch.equal(
        trained["blocks.0.attn.q_proj.weight"], initial["blocks.0.attn.q_proj.weight"]
    )


def test_the_default_keeps_two_adamw_groups():
    from budgetlm.model.config import ModelConfig
    from budgetlm.model.decoder import Decoder
    from budgetlm.train.config import TrainConfig
    from budgetlm.train.optim import build_adamw

    model = Decoder(ModelConfig(size="custom", d_model=32, n_layers=1, n_heads=2).resolved(64))
    assert len(build_adamw(model, TrainConfig()).param_groups) == 2
    scaled = build_adamw(model, TrainConfig(embedding_lr_scale=0.5)).param_groups
    assert [g.get("lr_multiplier", 1.0) for g in scaled] == [1.0, 1.0, 0.5]
    assert model.tok_emb.weight in scaled[2]["params"]


def test_auto_is_muon_from_scratch_and_adamw_for_what_continues_or_shards() -> None:
    from budgetlm.train.optim import choose_optimizer

    native = ModelConfig(size="nano").resolved(64)
    auto = TrainConfig(optimizer="auto")
    assert choose_optimizer(auto, native) == "muon"
    assert choose_optimizer(auto, native, continued=True) == "adamw"
    assert choose_optimizer(TrainConfig(parallel="fsdp"), native) == "adamw"
    hf = ModelConfig(backend="hf", hf_config={"model_type": "llama"}, adapter="lora")
    assert choose_optimizer(auto, hf) == "adamw"
    assert choose_optimizer(TrainConfig(optimizer="adamw"), native) == "adamw"  # obeyed


def test_a_job_records_the_optimizer_it_chose(tiny_prepared, tmp_path) -> None:
    from budgetlm import api
    from budgetlm.config import load_config
    from budgetlm.run.directory import load_run_config

    from ..conftest import TINY_MODEL

    values = {**TINY_MODEL, "data.prepared": str(tiny_prepared), "out_dir": str(tmp_path),
              "name": "auto", "budget": "2steps", "train.batch_size": 4,
              "train.micro_batch_size": 4, "eval.count": 1, "eval.tokens_per_domain": 64,
              "samples.max_new_tokens": 2, "train.optimizer": "auto"}  # fmt: skip
    lines = []
    run = api.pretrain(load_config(None, list(values.items())), log=lines.append).run_dir
    assert load_run_config(run, "--out").train.optimizer == "muon"
    assert any(line.startswith("optimizer muon (training from scratch") for line in lines)
