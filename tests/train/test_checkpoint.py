import json

import pytest
import torch

from budgetlm.errors import UserError
from budgetlm.model.config import ModelConfig
from budgetlm.model.decoder import Decoder
from budgetlm.train.checkpoint import (
    latest_checkpoint,
    list_checkpoints,
    load_optimizer,
    load_weights,
    prune_checkpoints,
    save_checkpoint,
)


def tiny_model(d_model=32, tie=True):
    cfg = ModelConfig(
        size="custom",
        d_model=d_model,
        n_layers=1,
        n_heads=2,
        vocab_size=50,
        seq_len=16,
        tie_embeddings=tie,
    ).resolved()
    return Decoder(cfg)


def test_roundtrip_weights_optimizer_and_state(tmp_path):
    torch.manual_seed(0)
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.randint(0, 50, (2, 8)), torch.randint(0, 50, (2, 8))).backward()
    opt.step()
    path = save_checkpoint(tmp_path, 5, model, opt, {"hello": 1})
    assert path.name == "step_000005"
    assert {p.name for p in path.iterdir()} == {"model.safetensors", "optim.pt", "state.json"}

    other = tiny_model()
    other_opt = torch.optim.AdamW(other.parameters(), lr=1e-2)
    load_weights(path, other)
    load_optimizer(path, other_opt)
    for a, b in zip(model.state_dict().values(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert other.lm_head.weight is other.tok_emb.weight  # tying survives the round trip
    found_path, state = latest_checkpoint(tmp_path)
    assert found_path == path and state["hello"] == 1 and state["step"] == 5
    assert torch.equal(
        opt.state_dict()["state"][0]["exp_avg"], other_opt.state_dict()["state"][0]["exp_avg"]
    )


def test_corrupt_newest_checkpoint_is_skipped(tmp_path):
    model = tiny_model()
    save_checkpoint(tmp_path, 1, model, None, {})
    newest = save_checkpoint(tmp_path, 2, model, None, {})
    with open(newest / "model.safetensors", "r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01\x02")
    messages = []
    path, state = latest_checkpoint(tmp_path, messages.append)
    assert path.name == "step_000001" and "skipping corrupt checkpoint step_000002" in messages[0]


def test_temporary_directories_are_not_checkpoints(tmp_path):
    save_checkpoint(tmp_path, 1, tiny_model(), None, {})
    (tmp_path / "checkpoints" / ".tmp-step_000002-99").mkdir()
    (tmp_path / "checkpoints" / "step_000003").mkdir()  # no state.json: never completed
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_000001"]


def test_other_architecture_is_a_user_error(tmp_path):
    path = save_checkpoint(tmp_path, 1, tiny_model(d_model=32), None, {})
    with pytest.raises(UserError, match="another shape"):
        load_weights(path, tiny_model(d_model=64))


def test_prune_keeps_last_k_and_tagged(tmp_path):
    model = tiny_model()
    for step, tags in [(1, []), (2, ["pre_decay"]), (3, []), (4, []), (5, [])]:
        save_checkpoint(tmp_path, step, model, None, {"tags": tags})
    prune_checkpoints(tmp_path, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "step_000002",
        "step_000004",
        "step_000005",
    ]


def test_saving_the_same_step_twice_replaces_it(tmp_path):
    model = tiny_model()
    save_checkpoint(tmp_path, 1, model, None, {"v": 1})
    path = save_checkpoint(tmp_path, 1, model, None, {"v": 2})
    assert json.loads((path / "state.json").read_text())["v"] == 2
    assert len(list((tmp_path / "checkpoints").iterdir())) == 1


def test_optimizer_state_of_another_kind_is_a_clear_error(tmp_path):
    import pytest

    from budgetlm.errors import UserError
    from budgetlm.model.config import ModelConfig
    from budgetlm.model.decoder import Decoder
    from budgetlm.train.checkpoint import load_optimizer, save_checkpoint
    from budgetlm.train.config import TrainConfig
    from budgetlm.train.optim import build_optimizer

    model = Decoder(ModelConfig(size="custom", d_model=32, n_layers=1, n_heads=2).resolved(64))
    muon = build_optimizer(model, TrainConfig(optimizer="muon"))
    path = save_checkpoint(tmp_path, 1, model, muon, {"tags": []})
    adamw = build_optimizer(model, TrainConfig(optimizer="adamw"))
    with pytest.raises(UserError, match=r"does not fit this run's optimizer .*train.optimizer"):
        load_optimizer(path, adamw)
