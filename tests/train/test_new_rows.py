"""The new-rows rules: an embeddings-only warm-up, and a learning-rate multiplier for new rows."""

import copy

import torch

from budgetlm.model.config import ModelConfig
from budgetlm.model.decoder import Decoder
from budgetlm.train.config import TrainConfig
from budgetlm.train.new_rows import NewRowsRule
from budgetlm.train.optim import build_optimizer

NEW = [60, 61, 62, 63]


def model_and_batch():
    torch.manual_seed(0)
    config = ModelConfig(size="custom", d_model=16, n_layers=1, n_heads=2, seq_len=8)
    model = Decoder(config.resolved(64))  # its MLP also has 64 rows: not vocabulary weights
    return model, torch.randint(0, 64, (4, 9))


def step(model, batch, rule, at, total=10, optimizer=None):
    optimizer = optimizer or build_optimizer(model, TrainConfig(lr=1e-2))
    model(batch[:, :-1], batch[:, 1:]).backward()
    rule.before_step(at, total)
    optimizer.step()
    rule.after_step()
    optimizer.zero_grad(set_to_none=True)
    return optimizer


def test_the_warmup_moves_only_the_embedding_and_head_then_everything():
    model, batch = model_and_batch()
    rule = NewRowsRule(model, 64, NEW, warmup=0.2, lr_scale=1.0)
    before = copy.deepcopy(model.state_dict())
    optimizer = step(model, batch, rule, at=1)  # step 1 of 10 < 2: warm-up
    after = model.state_dict()
    assert not torch.equal(after["tok_emb.weight"], before["tok_emb.weight"])
    others = [k for k in after if "emb" not in k and "lm_head" not in k]
    assert others and all(torch.equal(after[k], before[k]) for k in others)
    step(model, batch, rule, at=2, optimizer=optimizer)  # warm-up over
    assert any(not torch.equal(model.state_dict()[k], before[k]) for k in others)


def test_the_new_rows_move_lr_scale_times_as_far():
    model, batch = model_and_batch()
    twin = copy.deepcopy(model)
    start = model.tok_emb.weight.detach().clone()
    step(model, batch, NewRowsRule(model, 64, NEW, warmup=0.0, lr_scale=1.0), at=0)
    step(twin, batch, NewRowsRule(twin, 64, NEW, warmup=0.0, lr_scale=3.0), at=0)
    plain = model.tok_emb.weight.detach() - start
    scaled = twin.tok_emb.weight.detach() - start
    torch.testing.assert_close(scaled[NEW], 3 * plain[NEW])
    torch.testing.assert_close(scaled[:60], plain[:60])
