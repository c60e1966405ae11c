import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from budgetlm import api
from budgetlm.config import load_config
from budgetlm.errors import UserError
from budgetlm.model.build import build_model
from budgetlm.model.decoder import Decoder
from budgetlm.train.optim import build_optimizer
from budgetlm.workflows.continual.parent import open_parent
from budgetlm.workflows.continual.recipes import RECIPES, get_recipe
from tests.conftest import TINY_MODEL, write_hf_model

FINAL = [n for n, r in RECIPES.items() if r.checkpoint == "final"]
PRE_DECAY = [n for n, r in RECIPES.items() if r.checkpoint == "pre_decay"]


@pytest.fixture(scope="module")
def run(tiny_prepared, tmp_path_factory):
    """A finished 4-step run: step_000002 is tagged pre_decay, step_000004 final."""
    values = {
        **TINY_MODEL,
        "data.prepared": str(tiny_prepared),
        "out_dir": str(tmp_path_factory.mktemp("parent")),
        "name": "run",
        "budget": "4steps",
        "train.batch_size": 8,
        "train.micro_batch_size": 8,
        "train.precision": "bf16",
        "train.lr": 2e-3,
        # two decay steps: the last one alone (at LR 0) would leave the weights as they were
        "train.decay_fraction": 0.5,
        "eval.count": 1,
        "eval.tokens_per_domain": 64,
        "checkpoint.every": 0,
        "samples.max_new_tokens": 1,
        "samples.prompts_per_domain": 1,
    }
    return api.pretrain(load_config(None, list(values.items())), log=lambda _: None).run_dir


@pytest.fixture
def copy(run, tmp_path):
    """A copy of the run to break."""
    return shutil.copytree(run, tmp_path / "copy")


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hf") / "model"
    return folder, write_hf_model(folder)


def tags(run_dir):
    return {
        p.name: json.loads((p / "state.json").read_text())["tags"]
        for p in (run_dir / "checkpoints").iterdir()
    }


def set_tags(run_dir, step_name, new):
    path = run_dir / "checkpoints" / step_name / "state.json"
    state = json.loads(path.read_text())
    path.write_text(json.dumps(dict(state, tags=new)))


def test_missing_folder_is_a_user_error_naming_from(tmp_path):
    missing = tmp_path / "missing"
    with pytest.raises(UserError, match=rf"--from {missing}: no such directory"):
        open_parent(str(missing))


def test_folder_that_is_neither_a_run_nor_a_model_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(UserError, match="not a budgetlm run directory.*nor a Hugging Face"):
        open_parent(str(tmp_path))


def test_run_parent_has_the_runs_model_tokenizer_lr_and_final_losses(run):
    assert tags(run) == {"step_000002": ["pre_decay"], "step_000004": ["final"]}
    parent = open_parent(str(run))
    saved = load_config(run / "config.yaml")
    assert parent.is_run and parent.source == str(run) and parent.path == run
    assert parent.model == saved.model
    assert (parent.model.d_model, parent.model.n_layers, parent.model.vocab_size) == (32, 2, 300)
    assert parent.tokenizer == run / "tokenizer.json" and parent.tokenizer.is_file()
    assert parent.lr == pytest.approx(2e-3)
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    last_eval = [r for r in lines if r["type"] == "eval"][-1]
    assert last_eval["step"] == 4
    assert parent.final_val_loss == last_eval["val_loss"]
    assert set(parent.final_val_loss) == {"prose", "code"}


def test_run_parent_seq_len_argument_does_not_change_the_runs_model(run):
    assert open_parent(str(run), seq_len=8).model.seq_len == 32


def test_run_without_evaluations_has_no_final_losses(copy):
    (copy / "metrics.jsonl").unlink()
    assert open_parent(str(copy)).final_val_loss == {}


@pytest.mark.parametrize("name", FINAL)
def test_final_recipes_start_from_the_final_checkpoint(run, name):
    assert open_parent(str(run)).start_point(get_recipe(name)) == "step_000004"


@pytest.mark.parametrize("name", PRE_DECAY)
def test_infinite_recipes_start_from_the_pre_decay_checkpoint(run, name):
    assert open_parent(str(run)).start_point(get_recipe(name)) == "step_000002"


def test_the_newest_tagged_checkpoint_is_the_start(copy):
    set_tags(copy, "step_000004", ["pre_decay", "final"])
    assert open_parent(str(copy)).start_point(get_recipe("infinite")) == "step_000004"


def test_run_without_a_pre_decay_checkpoint_refuses_the_infinite_recipes(copy):
    shutil.rmtree(copy / "checkpoints" / "step_000002")
    parent = open_parent(str(copy))
    with pytest.raises(UserError, match="no pre-decay checkpoint, which recipe 'infinite'"):
        parent.start_point(get_recipe("infinite"))
    with pytest.raises(UserError, match="use --recipe rewarm or --recipe replay"):
        parent.weight_loader(get_recipe("infinite-replay"))
    assert parent.start_point(get_recipe("replay")) == "step_000004"


def test_unfinished_run_has_no_final_checkpoint(copy):
    set_tags(copy, "step_000004", [])
    parent = open_parent(str(copy))
    with pytest.raises(UserError, match="has no final checkpoint; finish it first"):
        parent.start_point(get_recipe("rewarm"))
    assert parent.start_point(get_recipe("infinite")) == "step_000002"


def test_weight_loader_loads_the_recipes_checkpoint(run):
    parent = open_parent(str(run))
    for name, step in (("replay", "step_000004"), ("infinite", "step_000002")):
        model = Decoder(parent.model)
        parent.weight_loader(get_recipe(name))(model)
        saved = load_file(run / "checkpoints" / step / "model.safetensors")
        own = model.state_dict()
        assert saved and set(saved) <= set(own)  # tied embeddings are saved once
        for key, value in saved.items():
            assert torch.equal(own[key], value), (name, key)
    final = load_file(run / "checkpoints" / "step_000004" / "model.safetensors")
    pre = load_file(run / "checkpoints" / "step_000002" / "model.safetensors")
    assert any(not torch.equal(final[k], pre[k]) for k in final)


def test_restore_optimizer_continues_the_saved_moments(run, copy):
    parent = open_parent(str(run))
    model = Decoder(parent.model)
    optimizer = build_optimizer(model, parent.config.train)
    assert optimizer.state_dict()["state"] == {}
    parent.restore_optimizer(get_recipe("infinite"), optimizer)
    saved = torch.load(run / "checkpoints" / "step_000002" / "optim.pt", weights_only=True)
    state = optimizer.state_dict()["state"]
    assert set(state) == set(saved["optimizer"]["state"]) and state
    for i, moments in saved["optimizer"]["state"].items():
        assert torch.equal(state[i]["exp_avg"], moments["exp_avg"])
        assert float(state[i]["step"]) == 2  # the pre-decay checkpoint's, not the final one's
    # an averaged run keeps no optimizer state: the moments start fresh
    (copy / "checkpoints" / "step_000004" / "optim.pt").unlink()
    fresh = build_optimizer(model, parent.config.train)
    open_parent(str(copy)).restore_optimizer(get_recipe("replay"), fresh)
    assert fresh.state_dict()["state"] == {}


def test_hf_folder_is_read_with_no_run_config(hf):
    folder, _ = hf
    parent = open_parent(str(folder))
    assert not parent.is_run and parent.config is None
    assert parent.lr is None and parent.final_val_loss == {}
    assert parent.path == folder and parent.tokenizer == folder / "tokenizer.json"
    m = parent.model
    assert (m.vocab_size, m.d_model, m.n_layers, m.n_heads, m.n_kv_heads) == (328, 32, 2, 4, 2)
    assert m.ffn_hidden == 48 and m.seq_len == 64 and not m.tie_embeddings
    assert open_parent(str(folder), seq_len=16).model.seq_len == 16


def test_hf_parent_starts_from_its_weights_and_has_no_pre_decay(hf):
    folder, hf_model = hf
    parent = open_parent(str(folder))
    for name in FINAL:
        assert parent.start_point(get_recipe(name)) == "hf"
    for name in PRE_DECAY:
        with pytest.raises(UserError, match=f"recipe '{name}'.*Hugging Face model does not"):
            parent.start_point(get_recipe(name))
    model = build_model(parent.model)
    assert parent.model.backend == "hf"
    parent.weight_loader(get_recipe("replay"))(model)
    assert torch.equal(model.hf.model.embed_tokens.weight, hf_model.model.embed_tokens.weight)
    assert torch.equal(model.hf.lm_head.weight, hf_model.lm_head.weight)
    optimizer = torch.optim.AdamW(model.parameters())
    parent.restore_optimizer(get_recipe("replay"), optimizer)
    assert optimizer.state_dict()["state"] == {}


def test_hf_folder_without_a_fast_tokenizer_is_refused(hf, tmp_path):
    folder = shutil.copytree(hf[0], tmp_path / "model")
    (folder / "tokenizer.json").unlink()
    with pytest.raises(UserError, match="has no tokenizer.json"):
        open_parent(str(folder))
