"""`budgetlm continue --from HF_DIR` trains transformers' own model for every popular base
architecture: tiny random Llama 3 (llama3 RoPE), Qwen2, Qwen3, Mistral, Gemma 3, SmolLM3,
OLMo 2 and Phi-3, each checked for its step-0 loss, learning, export and exact resume."""

import json
from pathlib import Path

import pytest

from budgetlm import api
from budgetlm.config import load_config
from tests.conftest import ARCHITECTURES, kill_after_step, write_corpus

pytest.importorskip("transformers")

TINY = {
    "train.batch_size": 4,
    "train.micro_batch_size": 4,
    "train.log_every": 2,
    "train.precision": "fp32",
    "train.lr": 3e-3,
    "continual.lr": 3e-3,
    "continual.seq_len": 32,
    "eval.count": 2,
    "eval.tokens_per_domain": 256,
    "checkpoint.every": 0,
    "samples.max_new_tokens": 4,
    "samples.prompts_per_domain": 1,
    "data.val_fraction": 0.2,
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("architectures")
    _, code = write_corpus(root)
    return root, code


@pytest.fixture(scope="module", params=sorted(ARCHITECTURES))
def arch(request, corpus):
    """A tiny random model of one architecture, and a finished 8-step continual run of it."""
    from tests.conftest import write_hf_model

    root, code = corpus
    name = request.param
    texts = [Path(__file__).read_text()] * 2
    hf_model = write_hf_model(root / name, name, texts=texts, **ARCHITECTURES[name][1])
    result = continued(root, code, name, f"{name}-run")
    return root, code, name, hf_model, result


def continued(root, code, model, name, log=lambda _: None, **extra):
    values = {
        **TINY,
        "continual.from_run": str(root / model),
        "data.sources": [code],
        "data.cache_dir": str(root / "cache"),
        "out_dir": str(root / "runs"),
        "name": name,
        "budget": "8steps",
        **extra,
    }
    config = load_config(None, list(values.items()))
    return api.continue_pretraining(config, log=log)


def records(run_dir, kind):
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == kind]


def test_step0_loss_is_the_models_own_and_training_lowers_it(arch):
    import torch
    import torch.nn.functional as F

    from budgetlm.data.store.dataset import PreparedDataset
    from budgetlm.evaluate.loss import fixed_windows

    _, _, name, hf_model, result = arch
    start = records(result.run_dir, "start")[0]
    val = PreparedDataset(start["data"]["code"]).shard("val", "code").tokens
    windows = torch.from_numpy(fixed_windows(val, 32, 256))
    with torch.no_grad():
        logits = hf_model(windows[:, :-1], use_cache=False).logits
    expected = F.cross_entropy(logits.flatten(0, 1), windows[:, 1:].flatten()).item()
    evals = records(result.run_dir, "eval")
    assert evals[0]["step"] == 0
    assert evals[0]["val_loss"]["code"] == pytest.approx(expected, abs=1e-4)
    assert evals[-1]["val_loss"]["code"] < evals[0]["val_loss"]["code"] - 0.1
    config = load_config(Path(result.run_dir) / "config.yaml")
    assert config.model.backend == "hf"
    assert config.model.hf_config["model_type"] == ARCHITECTURES[name][0]


def test_export_keeps_the_architecture_and_the_logits(arch, tmp_path):
    import torch
    import transformers

    _, _, name, _, result = arch
    out = api.export(result.run_dir, tmp_path / "export")
    saved = json.loads((out / "config.json").read_text())
    assert saved["model_type"] == ARCHITECTURES[name][0]
    exported = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    model = api.load_model(result.run_dir)
    ids = torch.randint(0, 300, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(exported(ids).logits, model(ids), atol=1e-4)
    # the export carries the tokenizer the model was trained with, and its special tokens
    import tokenizers

    text = "def f(x):\n    return x"
    ours = api.load_tokenizer(result.run_dir)
    saved = tokenizers.Tokenizer.from_file(str(out / "tokenizer.json"))
    assert saved.encode(text, add_special_tokens=False).ids == ours.encode(text)
    assert transformers.AutoTokenizer.from_pretrained(out).eos_token_id == ours.eos_id


@pytest.mark.parametrize("adapter", ["none", "lora"])
def test_killed_run_resumes_bitwise(arch, monkeypatch, adapter):
    import torch

    root, code, name, _, _ = arch
    run = f"{name}-{adapter}"
    extra = {"checkpoint.every": 0.25, "model.adapter": adapter}
    straight = continued(root, code, name, f"{run}-straight", **extra)
    kill_after_step(monkeypatch, 5)
    with pytest.raises(KeyboardInterrupt):
        continued(root, code, name, f"{run}-killed", **extra)
    monkeypatch.undo()
    config = load_config(None, [("out_dir", str(root / "runs")), ("name", f"{run}-killed")])
    resumed = api.continue_pretraining(config, resume=True, log=lambda _: None)
    assert resumed.steps == 8 and resumed.val_loss == straight.val_loss
    a = api.load_model(straight.run_dir).state_dict()
    b = api.load_model(resumed.run_dir).state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_native_backend_still_imports_llama_family(corpus):
    from tests.conftest import write_hf_model

    root, code = corpus
    write_hf_model(root / "native-qwen2", "qwen2", texts=[Path(__file__).read_text()] * 2)
    result = continued(root, code, "native-qwen2", "native", **{"continual.backend": "native"})
    config = load_config(Path(result.run_dir) / "config.yaml")
    assert config.model.backend == "native" and config.model.qkv_bias


def test_lora_trains_adapters_only_then_merges_and_exports(arch, tmp_path):
    import torch
    import transformers

    pytest.importorskip("peft")
    root, code, name, hf_model, _ = arch
    result = continued(root, code, name, f"{name}-lora", **{"model.adapter": "lora"})
    evals = records(result.run_dir, "eval")
    assert evals[-1]["val_loss"]["code"] < evals[0]["val_loss"]["code"]
    model = api.load_model(result.run_dir)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    base = hf_model.state_dict()
    for n, p in model.hf.get_base_model().state_dict().items():  # the frozen weights did not move
        key = n.replace(".base_layer.", ".")
        if "lora_" not in n and key in base:
            assert torch.equal(p, base[key]), n
    out = api.export(result.run_dir, tmp_path / "merged")
    assert json.loads((out / "config.json").read_text())["model_type"] == ARCHITECTURES[name][0]
    exported = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    ids = torch.randint(0, 300, (2, 24), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.allclose(exported(ids).logits, model(ids), atol=1e-4)
    adapter = api.export(result.run_dir, tmp_path / "adapter", adapter_only=True)
    assert (adapter / "adapter_model.safetensors").is_file()
    assert (adapter / "adapter_config.json").is_file()


def test_lora_is_refused_for_the_native_decoder():
    from budgetlm.errors import UserError
    from budgetlm.model.config import ModelConfig

    with pytest.raises(UserError, match="applies to transformers models"):
        ModelConfig(adapter="lora").resolved(100)


def test_export_writes_a_model_card(arch, tmp_path):
    import yaml

    _, _, name, _, result = arch
    out = api.export(result.run_dir, tmp_path / "card")
    text = (out / "README.md").read_text()
    meta = yaml.safe_load(text.split("---")[1])
    assert meta["base_model"].endswith(name) and meta["library_name"] == "transformers"
    assert "continual-pretraining" in meta["tags"]
    final = records(result.run_dir, "end")[-1]["val_loss"]["code"]
    assert f"| code | {final:.4f} |" in text
    assert "| recipe | default |" in text and "8steps" in text


def test_muon_eval_and_report_work_on_a_transformers_run(corpus):
    from tests.conftest import write_hf_model

    root, code = corpus
    write_hf_model(root / "muon-qwen3", "qwen3", texts=[Path(__file__).read_text()] * 2, head_dim=8)
    result = continued(root, code, "muon-qwen3", "muon", **{"train.optimizer": "muon"})
    evals = records(result.run_dir, "eval")
    assert evals[-1]["val_loss"]["code"] < evals[0]["val_loss"]["code"]
    again = api.evaluate(result.run_dir, tokens_per_domain=256, log=lambda _: None)
    assert again["val_loss"]["code"] == pytest.approx(result.val_loss["code"], abs=1e-4)
    assert api.report([result.run_dir]).html.is_file()


def test_muon_trains_lora_adapters_and_leaves_the_base_frozen(corpus):
    import torch

    pytest.importorskip("peft")
    from tests.conftest import write_hf_model

    root, code = corpus
    texts = [Path(__file__).read_text()] * 2
    hf_model = write_hf_model(root / "muon-lora-llama3", "llama3", texts=texts)
    result = continued(
        root, code, "muon-lora-llama3", "muon-lora",
        **{"train.optimizer": "muon", "model.adapter": "lora"},
    )  # fmt: skip
    evals = records(result.run_dir, "eval")
    assert evals[-1]["val_loss"]["code"] < evals[0]["val_loss"]["code"]
    model = api.load_model(result.run_dir)
    base = hf_model.state_dict()
    moved = 0
    for n, p in model.hf.get_base_model().state_dict().items():
        key = n.replace(".base_layer.", ".")
        if "lora_B" in n:
            moved += int(p.abs().sum() > 0)  # peft starts B at zero: Muon moved it
        elif "lora_" not in n and key in base:
            assert torch.equal(p, base[key]), n
    assert moved > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["qwen3", "gemma3"])
def test_a_compiled_transformers_model_trains_like_eager(corpus, name):
    """torch.compile of the transformers model (train.compile true): it compiles without
    falling back, and its losses follow the eager run's."""
    from tests.conftest import write_hf_model

    root, code = corpus
    texts = [Path(__file__).read_text()] * 2
    write_hf_model(root / f"compile-{name}", name, texts=texts, **ARCHITECTURES[name][1])
    logs = []
    values = {"train.compile": True}
    compiled = continued(
        root, code, f"compile-{name}", f"compiled-{name}", log=logs.append, **values
    )
    assert any(line.startswith("torch.compile on") for line in logs), logs
    assert not any("torch.compile failed" in line for line in logs), logs
    eager = continued(root, code, f"compile-{name}", f"eager-{name}", **{"train.compile": False})
    pairs = list(
        zip(records(compiled.run_dir, "train"), records(eager.run_dir, "train"), strict=True)
    )
    assert len(pairs) >= 3
    for c, e in pairs:
        assert c["loss"] == pytest.approx(e["loss"], abs=2e-3)


def test_averaging_lora_checkpoints_averages_their_merged_weights(corpus, tmp_path):
    import torch

    pytest.importorskip("peft")
    from budgetlm.model.build import build_model
    from budgetlm.model.lora import merged
    from budgetlm.train.checkpoint import list_checkpoints, load_weights
    from tests.conftest import write_hf_model

    root, code = corpus
    write_hf_model(root / "avg-qwen3", "qwen3", texts=[Path(__file__).read_text()] * 2, head_dim=8)
    extra = {"model.adapter": "lora", "checkpoint.every": 0.5, "checkpoint.keep_last": 5}
    result = continued(root, code, "avg-qwen3", "lora-avg", **extra)
    config = load_config(Path(result.run_dir) / "config.yaml")
    paths = list_checkpoints(result.run_dir)[-2:]
    weights = []
    for path in paths:
        model = build_model(config.model)
        load_weights(path, model)
        weights.append(merged(model.hf).state_dict())
    api.average(tmp_path / "avg", run=result.run_dir, last=2, log=lambda _: None)
    averaged = load_config(tmp_path / "avg" / "config.yaml")
    assert averaged.model.adapter == "none"
    state = api.load_model(tmp_path / "avg").hf.state_dict()
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.equal(weights[0][key], weights[1][key])
    torch.testing.assert_close(state[key], (weights[0][key] + weights[1][key]) / 2)


def test_lm_eval_tasks_score_a_transformers_run(corpus, tmp_path):
    pytest.importorskip("lm_eval")
    from tests.conftest import write_hf_model
    from tests.evaluate.test_harness import ITEMS, write_task

    root, code = corpus
    write_hf_model(root / "eval-qwen3", "qwen3", texts=[Path(__file__).read_text()] * 2, head_dim=8)
    result = continued(root, code, "eval-qwen3", "lm-eval", budget="4steps")
    task = write_task(tmp_path / "tasks", ITEMS)
    out = api.evaluate(result.run_dir, tasks=[str(task)], limit=3, log=lambda _: None)
    assert out["tasks"]["tiny_mc"]["items"] == 3
    assert 0 <= out["tasks"]["tiny_mc"]["acc"] <= 1
