"""`continue --extend-vocab N`: the run trains with the extended tokenizer on re-tokenized new
and replayed data, its old rows are the parent's and its new rows start as asked, forgetting
is measured in bits per byte, it resumes exactly, and an exported transformers model reloads
with its grown tokenizer."""

import json
from pathlib import Path

import pytest
import torch

from budgetlm import api
from budgetlm.config import load_config
from budgetlm.data.store.dataset import PreparedDataset
from budgetlm.data.store.tokenizer import Tokenizer
from budgetlm.errors import UserError
from tests.conftest import kill_after_step, write_corpus

TINY = {
    "model.size": "custom",
    "model.d_model": 32,
    "model.n_layers": 2,
    "model.n_heads": 2,
    "model.seq_len": 32,
    "train.batch_size": 4,
    "train.micro_batch_size": 4,
    "train.precision": "fp32",
    "eval.count": 2,
    "eval.tokens_per_domain": 256,
    "checkpoint.every": 0,
    "samples.max_new_tokens": 4,
    "samples.prompts_per_domain": 1,
    "data.val_fraction": 0.2,
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("vocab")
    prose, code = write_corpus(root)
    values = {
        **TINY, "data.sources": [prose], "data.vocab_size": 300, "name": "parent",
        "budget": "10steps", "data.cache_dir": str(root / "cache"), "out_dir": str(root / "runs"),
    }  # fmt: skip
    parent = api.pretrain(load_config(None, list(values.items())), log=lambda _: None)
    return root, parent.run_dir, code


def continued(setup, name, resume=False, **extra):
    root, parent, code = setup
    values = {
        **TINY, "continual.from_run": str(parent), "data.sources": [code], "name": name,
        "budget": "8steps", "data.cache_dir": str(root / "cache"), "out_dir": str(root / "runs"),
        "continual.extend_vocab": 40, **extra,
    }  # fmt: skip
    return api.continue_pretraining(load_config(None, list(values.items())), log=lambda _: None)


def records(run_dir, kind):
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == kind]


def test_the_run_trains_a_grown_vocabulary_on_retokenized_data(setup):
    _, parent, _ = setup
    result = continued(setup, "grown")
    start = records(result.run_dir, "start")[0]
    grown = start["vocab_extension"]
    old_size = Tokenizer.load(parent).vocab_size  # the prose tokenizer ran out of merges
    assert grown["added"] == 40 and grown["first_id"] == old_size
    old_rows = load_config(Path(parent) / "config.yaml").model.vocab_size
    assert grown["rows"] == max(old_rows, old_size + 40)
    code_before, code_after = grown["bytes_per_token_before"], grown["bytes_per_token_after"]
    assert code_after["code"] > 1.3 * code_before["code"]  # the new tokens compress the new text
    tokenizer = Tokenizer.load(result.run_dir)
    assert tokenizer.vocab_size == old_size + 40
    for path in start["data"].values():  # new and replayed data: the grown tokenizer's
        assert PreparedDataset(path).tokenizer.fingerprint == tokenizer.fingerprint
    model, before = api.load_model(result.run_dir), api.load_model(parent)
    assert model.tok_emb.weight.shape == (grown["rows"], 32)
    summary = records(result.run_dir, "continual")[-1]
    parent_bpb = records(parent, "eval")[-1]["val_bpb"]["prose"]
    final_bpb = records(result.run_dir, "eval")[-1]["val_bpb"]["prose"]
    assert summary["bpb"]["forgetting"]["prose"] == pytest.approx(final_bpb - parent_bpb)
    assert "bits/byte against the parent's final model" in result.summary
    assert before.tok_emb.weight.shape == (old_rows, 32)


def test_new_rows_start_as_asked_and_old_rows_as_the_parent(setup):
    from budgetlm.model.build import build_model
    from budgetlm.train.checkpoint import latest_checkpoint
    from budgetlm.workflows.continual.vocab import plan_vocabulary

    root, parent, code = setup
    parent_state = api.load_model(parent).state_dict()
    config = load_config(None, [("data.sources", [code]), ("continual.extend_vocab", 40),
                                ("continual.vocab_init", "mean"),
                                ("data.cache_dir", str(root / "cache"))])  # fmt: skip
    from budgetlm.workflows.data import open_data

    new = open_data(config, Path(parent) / "tokenizer.json", lambda _: None)
    child = load_config(Path(parent) / "config.yaml")
    old_rows = child.model.vocab_size
    plan = plan_vocabulary(config, Path(parent) / "tokenizer.json", old_rows, new, lambda _: None)
    plan.fit_model(child)
    model = build_model(child.model)
    from budgetlm.train.checkpoint import load_weights

    load_weights(latest_checkpoint(parent)[0], model, plan.transform([], seed=0))
    weight = model.tok_emb.weight.detach()
    torch.testing.assert_close(weight[:old_rows], parent_state["tok_emb.weight"])
    for new_id, pieces in plan.extension.added.items():
        torch.testing.assert_close(weight[new_id], parent_state["tok_emb.weight"][pieces].mean(0))


def test_a_killed_grown_run_resumes_bitwise(setup, monkeypatch):

    root, _, _ = setup
    extra = {"checkpoint.every": 0.25}  # the default init, focus
    straight = continued(setup, "straight", **extra)
    kill_after_step(monkeypatch, 5)
    with pytest.raises(KeyboardInterrupt):
        continued(setup, "killed", **extra)
    monkeypatch.undo()
    config = load_config(None, [("out_dir", str(root / "runs")), ("name", "killed")])
    resumed = api.continue_pretraining(config, resume=True, log=lambda _: None)
    assert resumed.val_loss == straight.val_loss
    a = api.load_model(straight.run_dir).state_dict()
    b = api.load_model(resumed.run_dir).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_errors_name_the_fix(setup, tiny_prepared):
    with pytest.raises(UserError, match="--prepared data is already tokenized"):
        continued(setup, "e1", **{"data.sources": [], "data.prepared": str(tiny_prepared)})
    with pytest.raises(UserError, match="continual.vocab_init must be one of mean, focus, random"):
        continued(setup, "e2", **{"continual.vocab_init": "zeros"})
    with pytest.raises(UserError, match=r"continual.vocab_warmup must be in \[0, 1\)"):
        continued(setup, "e3", **{"continual.vocab_warmup": 1.5})
    with pytest.raises(UserError, match=r"more than the new data supports: .* fix: --extend-vocab"):
        continued(setup, "e4", **{"continual.extend_vocab": 100_000})


def test_a_grown_model_refuses_data_prepared_with_the_old_tokenizer(setup):
    _, parent, _ = setup
    result = continued(setup, "grown-eval")
    old_prepared = records(parent, "start")[0]["data"]["prose"]
    with pytest.raises(UserError, match="tokenized with another tokenizer than the model's"):
        api.evaluate(result.run_dir, prepared=old_prepared, log=lambda _: None)


def test_a_warmup_and_new_row_lr_are_recorded_and_train(setup):
    extra = {"continual.vocab_warmup": 0.5, "continual.new_rows_lr_scale": 3.0}
    result = continued(setup, "warm", **extra)
    grown = records(result.run_dir, "start")[0]["vocab_extension"]
    assert grown["warmup"] == 0.5 and grown["new_rows_lr_scale"] == 3.0
    evals = records(result.run_dir, "eval")
    assert evals[-1]["val_loss"]["code"] < evals[0]["val_loss"]["code"]


@pytest.mark.parametrize("arch, adapter", [("llama3", "none"), ("gemma3", "lora")])
def test_a_grown_transformers_model_exports_and_reloads(tmp_path, arch, adapter):
    transformers = pytest.importorskip("transformers")
    if adapter == "lora":
        pytest.importorskip("peft")
    from tests.conftest import ARCHITECTURES, write_hf_model

    _, code = write_corpus(tmp_path)
    texts = [Path(__file__).read_text()] * 2
    write_hf_model(tmp_path / arch, arch, texts=texts, **ARCHITECTURES[arch][1])
    values = {
        **{k: v for k, v in TINY.items() if not k.startswith("model.")},
        "continual.lr": 3e-3, "continual.seq_len": 32, "continual.from_run": str(tmp_path / arch),
        "data.sources": [code], "data.cache_dir": str(tmp_path / "cache"),
        "out_dir": str(tmp_path / "runs"), "name": "grown", "budget": "6steps",
        "continual.extend_vocab": 30, "model.adapter": adapter,
    }  # fmt: skip
    if adapter == "lora":
        with pytest.raises(UserError, match="lora_train_embeddings true"):
            api.continue_pretraining(load_config(None, list(values.items())), log=lambda _: None)
        values["model.lora_train_embeddings"] = True
    result = api.continue_pretraining(load_config(None, list(values.items())), log=lambda _: None)
    out = api.export(result.run_dir, tmp_path / "exported")
    config = json.loads((out / "config.json").read_text())
    # 320 tokens in 328 rows: the new ids 320-349 reuse the 8 padding rows, then add 22
    assert config["model_type"] == ARCHITECTURES[arch][0] and config["vocab_size"] == 350
    text = Path(__file__).read_text()[:3000]
    ours = Tokenizer.load(result.run_dir).encode(text)
    theirs = transformers.AutoTokenizer.from_pretrained(out)(text, add_special_tokens=False)
    assert theirs["input_ids"] == ours and max(ours) >= 328  # new tokens in use
    exported = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    ids = torch.tensor([ours[:24]])
    with torch.no_grad():
        assert torch.allclose(exported(ids).logits, api.load_model(result.run_dir)(ids), atol=1e-4)
