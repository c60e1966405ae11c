"""budgetlm continue: a tiny model pre-trained on one domain, continued on another."""

import json
from pathlib import Path

import pytest

from budgetlm import api
from budgetlm.config import load_config
from budgetlm.errors import UserError
from tests.conftest import TINY_MODEL, kill_after_step, write_corpus

TINY = {
    **TINY_MODEL,
    "train.batch_size": 8,
    "train.micro_batch_size": 8,
    "train.log_every": 2,
    "eval.count": 2,
    "eval.tokens_per_domain": 256,
    "checkpoint.every": 0,
    "samples.max_new_tokens": 4,
    "samples.prompts_per_domain": 1,
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A parent run trained on 'prose' only, and the path of a 'code' corpus."""
    root = tmp_path_factory.mktemp("continual")
    prose, code = write_corpus(root)
    values = {
        **TINY,
        "data.sources": [prose],
        "data.vocab_size": 300,
        "data.val_fraction": 0.2,
        "data.cache_dir": str(root / "cache"),
        "out_dir": str(root / "runs"),
        "name": "parent",
        "budget": "10steps",
    }
    parent = api.pretrain(load_config(None, list(values.items())), log=lambda _: None)
    return root, parent.run_dir, code


def continued(setup, name, **extra):
    root, parent, code = setup
    values = {
        **TINY,
        "continual.from_run": str(parent),
        "data.sources": [code],
        "data.val_fraction": 0.2,
        "data.cache_dir": str(root / "cache"),
        "out_dir": str(root / "runs"),
        "name": name,
        "budget": "8steps",
        **extra,
    }
    return api.continue_pretraining(load_config(None, list(values.items())), log=lambda _: None)


def records(run_dir, kind):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == kind]


def test_replay_recipe_measures_gap_and_forgetting(setup):
    result = continued(setup, "replay", **{"continual.recipe": "replay"})
    start = records(result.run_dir, "start")[0]
    assert start["recipe"] == "replay" and start["replay_ratio"] == 0.25
    assert start["new_domains"] == ["code"] and start["old_domains"] == ["prose"]
    assert start["weights"]["prose"] == pytest.approx(0.25)
    evals = records(result.run_dir, "eval")
    assert set(evals[0]["val_loss"]) == {"code", "prose"}
    assert [r["step"] for r in evals] == [0, 1, 4, 8]  # the early grid adds step 1
    summary = records(result.run_dir, "continual")[-1]
    assert set(summary["new"]) == {"code"} and set(summary["forgetting"]) == {"prose"}
    assert summary["forgetting"]["prose"] == pytest.approx(
        evals[-1]["val_loss"]["prose"] - evals[0]["val_loss"]["prose"]
    )
    assert "stability gap" in result.summary and "forgetting" in result.summary
    in_bits = summary["bpb"]  # the same in bits per byte, against the parent's final bpb
    assert in_bits["forgetting"]["prose"] == pytest.approx(
        evals[-1]["val_bpb"]["prose"] - evals[0]["val_bpb"]["prose"]
    )
    assert in_bits["new"]["code"]["final"] == evals[-1]["val_bpb"]["code"]
    assert "bits/byte) against the parent's final model" in result.summary


def test_final_recipes_start_from_the_parents_final_weights(setup):
    _, parent, _ = setup
    result = continued(setup, "naive", **{"continual.recipe": "naive"})
    parent_eval = records(parent, "eval")[-1]["val_loss"]["prose"]
    assert records(result.run_dir, "eval")[0]["val_loss"]["prose"] == pytest.approx(parent_eval)
    assert records(result.run_dir, "start")[0]["parent_checkpoint"] == "step_000010"


def test_infinite_recipe_starts_from_pre_decay_at_constant_lr(setup):
    _, parent, _ = setup
    result = continued(setup, "infinite", **{"continual.recipe": "infinite"})
    start = records(result.run_dir, "start")[0]
    pre_decay = next(
        p.name
        for p in (parent / "checkpoints").iterdir()
        if "pre_decay" in json.loads((p / "state.json").read_text())["tags"]
    )
    assert start["parent_checkpoint"] == pre_decay and pre_decay != "step_000010"
    train = records(result.run_dir, "train")
    assert train[0]["lr"] == pytest.approx(3e-3)  # no re-warm: the plateau LR at once
    assert train[-1]["lr"] == 0.0


def test_continued_model_keeps_the_parents_tokenizer(setup):
    _, parent, _ = setup
    result = continued(setup, "tok", **{"continual.recipe": "rewarm"})
    assert (result.run_dir / "tokenizer.json").read_bytes() == (
        parent / "tokenizer.json"
    ).read_bytes()
    vocab = api.load_tokenizer(parent).vocab_size
    assert api.load_model(result.run_dir).tok_emb.weight.shape[0] == vocab


def test_errors(setup):
    root, parent, code = setup
    with pytest.raises(UserError, match="unknown recipe 'replya'.*did you mean 'replay'"):
        continued(setup, "e1", **{"continual.recipe": "replya"})
    with pytest.raises(UserError, match="in both the new data and the replayed"):
        continued(setup, "e2", **{"data.sources": [code.replace("code=", "prose=")]})
    with pytest.raises(UserError, match="needs --from"):
        api.continue_pretraining(load_config(None, [("data.sources", [code])]))
    with pytest.raises(UserError, match="not a budgetlm run"):
        continued(setup, "e3", **{"continual.from_run": str(root)})


def test_missing_original_data_is_reported_and_replay_skipped(tmp_path):
    prose, code = write_corpus(tmp_path)
    common = {
        **TINY,
        "data.vocab_size": 300,
        "data.val_fraction": 0.2,
        "data.cache_dir": str(tmp_path / "cache"),
        "out_dir": str(tmp_path / "runs"),
    }
    parent = api.pretrain(
        load_config(
            None, list({**common, "data.sources": [prose], "name": "p", "budget": "4steps"}.items())
        ),
        log=lambda _: None,
    )
    import shutil

    shutil.rmtree(tmp_path / "cache")  # the prepared data and its sources are gone
    shutil.rmtree(prose.split("=", 1)[1])
    messages = []
    result = api.continue_pretraining(
        load_config(
            None,
            list(
                {
                    **common,
                    "data.sources": [code],
                    "name": "c",
                    "budget": "4steps",
                    "continual.from_run": str(parent.run_dir),
                }.items()
            ),
        ),
        log=messages.append,
    )
    assert any("not available for replay" in m and "--replay" in m for m in messages)
    assert records(result.run_dir, "start")[0]["replay_ratio"] == 0.0


def test_killed_continual_run_resumes(setup, monkeypatch):

    straight = continued(setup, "straight", **{"checkpoint.every": 0.25})
    kill_after_step(monkeypatch, 5)
    with pytest.raises(KeyboardInterrupt):
        continued(setup, "killed", **{"checkpoint.every": 0.25})
    monkeypatch.undo()
    root = setup[0]
    config = load_config(None, [("out_dir", str(root / "runs")), ("name", "killed")])
    resumed = api.continue_pretraining(config, resume=True, log=lambda _: None)
    assert resumed.steps == 8 and resumed.val_loss == straight.val_loss


def test_hq_subset_trains_on_the_lowest_loss_quarter(setup):
    import re

    messages = []
    root, parent, code = setup
    values = {
        **TINY,
        "continual.from_run": str(parent),
        "continual.recipe": "hq-subset",
        "data.sources": [code],
        "data.val_fraction": 0.2,
        "data.cache_dir": str(root / "cache"),
        "out_dir": str(root / "runs"),
        "name": "hq",
        "budget": "4steps",
    }
    result = api.continue_pretraining(load_config(None, list(values.items())), log=messages.append)
    kept = next(m for m in messages if m.startswith("code: training on"))
    docs, all_docs, tokens, all_tokens = (
        int(x.replace(",", "")) for x in re.findall(r"\d[\d,]*", kept)
    )
    assert docs == round(0.25 * all_docs) and tokens < all_tokens
    assert records(result.run_dir, "start")[0]["train_tokens"]["code"] == tokens


@pytest.fixture(scope="module")
def hf_setup(tmp_path_factory):
    """A tiny random Qwen2 saved by transformers (q/k/v biases, GQA), and a code corpus."""
    pytest.importorskip("transformers")
    from tests.conftest import write_hf_model

    root = tmp_path_factory.mktemp("hf_continual")
    prose, code = write_corpus(root)
    hf_model = write_hf_model(root / "qwen", "qwen2", texts=[Path(__file__).read_text()] * 2)
    return root, hf_model, prose, code


def continued_hf(hf_setup, name, **extra):
    root, _, _, code = hf_setup
    values = {
        **TINY,
        "continual.from_run": str(root / "qwen"),
        "continual.seq_len": 32,
        "data.sources": [code],
        "data.val_fraction": 0.2,
        "data.cache_dir": str(root / "cache"),
        "out_dir": str(root / "runs"),
        "name": name,
        "budget": "6steps",
        **extra,
    }
    for key in TINY_MODEL:
        values.pop(key)
    return api.continue_pretraining(load_config(None, list(values.items())), log=lambda _: None)


def test_continue_from_hugging_face_starts_from_its_exact_weights(hf_setup):
    import torch
    import torch.nn.functional as F

    from budgetlm.data.store.dataset import PreparedDataset
    from budgetlm.evaluate.loss import fixed_windows

    _, hf_model, _, _ = hf_setup
    result = continued_hf(hf_setup, "hf", **{"train.precision": "fp32"})
    start = records(result.run_dir, "start")[0]
    assert start["parent_checkpoint"] == "hf" and start["replay_ratio"] == 0.0
    config = load_config(result.run_dir / "config.yaml")
    assert (config.model.backend, config.model.seq_len, config.train.lr) == ("hf", 32, 3e-4)
    assert config.model.hf_config["model_type"] == "qwen2"  # trained as transformers' Qwen2

    # the run's step-0 loss is the Hugging Face model's own loss on the same tokens
    val = PreparedDataset(start["data"]["code"]).shard("val", "code").tokens
    windows = torch.from_numpy(fixed_windows(val, 32, 256))
    with torch.no_grad():
        logits = hf_model(windows[:, :-1]).logits
    expected = F.cross_entropy(logits.flatten(0, 1), windows[:, 1:].flatten()).item()
    first = records(result.run_dir, "eval")[0]
    assert first["step"] == 0 and first["val_loss"]["code"] == pytest.approx(expected, abs=1e-4)

    # documents are framed as the model was trained: <s> text </s>, with its own ids
    tokenizer = api.load_tokenizer(result.run_dir)
    assert (tokenizer.bos_id, tokenizer.eos_id) == (1, 2)
    assert val[0] == 1 and list(val).count(1) == list(val).count(2)
    assert api.generate(result.run_dir, "def f", max_new_tokens=4) is not None
    assert api.load_model(result.run_dir).hf.get_input_embeddings().weight.shape == (328, 32)
    summary = records(result.run_dir, "continual")[-1]
    assert set(summary["new"]) == {"code"} and summary["forgetting"] == {}
    assert "new domain code" in result.summary and "stability gap" in result.summary


def test_continue_from_hugging_face_with_replay_measures_forgetting(hf_setup):
    _, _, prose, _ = hf_setup
    result = continued_hf(hf_setup, "hf-replay", **{"continual.replay": [prose]})
    start = records(result.run_dir, "start")[0]
    assert start["old_domains"] == ["prose"] and start["replay_ratio"] == 0.25
    assert set(records(result.run_dir, "continual")[-1]["forgetting"]) == {"prose"}


def test_continue_from_hugging_face_errors(hf_setup, tmp_path):
    import shutil

    root, _, _, _ = hf_setup
    with pytest.raises(UserError, match=r"pre-decay checkpoint, which a Hugging Face model"):
        continued_hf(hf_setup, "e1", **{"continual.recipe": "infinite"})
    bare = tmp_path / "bare"
    shutil.copytree(root / "qwen", bare)
    (bare / "tokenizer.json").unlink()
    with pytest.raises(UserError, match=r"has no tokenizer.json .*save_pretrained"):
        continued_hf(hf_setup, "e2", **{"continual.from_run": str(bare)})
    with pytest.raises(UserError, match=r"tokenized with another tokenizer than the model's"):
        continued_hf(hf_setup, "e3", **{"data.prepared": str(_budgetlm_prepared(root))})
    with pytest.raises(UserError, match=r"--from .*nothing: no such directory"):
        continued_hf(hf_setup, "e4", **{"continual.from_run": str(tmp_path / "nothing")})


def _budgetlm_prepared(root):
    out = root / "own-prepared"
    if not out.exists():
        api.prepare([f"code={root / 'code'}"], out, vocab_size=300, log=lambda _: None)
    return out


def test_a_run_that_would_repeat_the_new_data_many_times_says_so():
    import numpy as np

    from budgetlm.data.feed.streams import TrainingData
    from budgetlm.job.run import warn_repeated_data

    config = load_config(None, [("train.batch_size", 4), ("model.seq_len", 32)])
    streams = {"notes": np.zeros(1000, dtype=np.uint16), "web": np.zeros(10**6, dtype=np.uint16)}
    data = TrainingData(streams, {}, None, {}, {}, new_domains=["notes"], old_domains=["web"])
    said = []
    # 100 steps x 128 tokens: notes at weight 0.75 sees 9,600 of its 1,000 tokens (9.6 epochs)
    warn_repeated_data(config, data, {"notes": 0.75, "web": 0.25}, 100, said.append)
    assert len(said) == 1 and "the 1,000 training tokens of notes 9.6 times" in said[0]
    assert "add notes data, lower the budget, or raise --replay-ratio" in said[0]
    said.clear()
    warn_repeated_data(config, data, {"notes": 0.75, "web": 0.25}, 30, said.append)  # 2.9 epochs
    assert said == []
    warn_repeated_data(config, data, {"notes": 0.0, "web": 1.0}, 40_000, said.append)
    assert "replay more data with --replay SOURCES, or lower --replay-ratio" in said[0]
