"""Held-out evaluation of a run: every validation token scored once, on the run's own data or on
other data tokenized its way, written to eval.json, with lm-eval tasks when asked."""

from __future__ import annotations

import json
import math
import shutil
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from budgetlm import api
from budgetlm.cli import main
from budgetlm.data.store.dataset import PreparedDataset
from budgetlm.errors import UserError
from budgetlm.evaluate import heldout
from budgetlm.evaluate.heldout import heldout_loss

CPU = torch.device("cpu")
VOCAB = 10
HIT = 5.0
"""PlusOne's logit for 'previous + 1': a hit costs -log(e^5 / (e^5 + 9)) nats, a miss 5 more."""


class PlusOne(torch.nn.Module):
    """Predicts 'previous token + 1' with a known confidence: its loss on each target depends
    only on the token before it, so the expected mean loss is a count of hits and misses."""

    def forward(self, idx, targets=None, reduction="mean"):
        logits = F.one_hot((idx + 1) % VOCAB, VOCAB).float() * HIT
        if targets is None:
            return logits
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction=reduction)
        return loss.view_as(targets)


def expected_loss(stream: np.ndarray, limit: int) -> float:
    hit = math.log(math.exp(HIT) + VOCAB - 1) - HIT
    hits = int(((stream[:limit] + 1) % VOCAB == stream[1 : limit + 1]).sum())
    return (hits * hit + (limit - hits) * (hit + HIT)) / limit


@pytest.mark.parametrize("max_tokens", [None, 40, 64, 1000])
def test_every_validation_token_up_to_the_cap_is_scored_once(max_tokens, monkeypatch):
    monkeypatch.setattr(heldout, "WINDOWS_PER_PIECE", 2)  # several pieces and a short tail
    rng = np.random.default_rng(0)
    stream = np.where(rng.random(150) < 0.5, np.arange(150) % VOCAB, rng.integers(0, VOCAB, 150))
    losses, counts = heldout_loss(
        PlusOne(), {"d": stream.astype(np.uint16)}, 16, max_tokens, 3, CPU, log=lambda _: None
    )
    limit = 149 if max_tokens is None else min(max_tokens, 149)
    assert counts == {"d": limit}
    assert losses["d"] == pytest.approx(expected_loss(stream, limit), rel=1e-6)


def test_a_domain_without_validation_tokens_is_left_out_and_said():
    said = []
    losses, counts = heldout_loss(
        PlusOne(), {"a": np.arange(5), "b": np.arange(1)}, 4, None, 2, CPU, log=said.append
    )
    assert set(losses) == set(counts) == {"a"} and counts["a"] == 4
    assert said == ["b: no validation tokens to score; left out"]


@pytest.fixture(scope="module")
def run_dir(tiny_prepared, tmp_path_factory):
    from budgetlm.config import load_config

    from ..conftest import TINY_MODEL

    root = tmp_path_factory.mktemp("eval")
    values = {
        **TINY_MODEL,
        "data.prepared": str(tiny_prepared),
        "data.cache_dir": str(root / "cache"),
        "out_dir": str(root / "runs"),
        "name": "eval",
        "budget": "4steps",
        "train.batch_size": 4,
        "train.micro_batch_size": 4,
        "eval.count": 1,
        "eval.tokens_per_domain": 64,
        "samples.max_new_tokens": 2,
    }
    return api.pretrain(load_config(None, list(values.items())), log=lambda _: None).run_dir


def final_eval(run_dir) -> dict:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == "eval"][-1]


def test_evaluate_scores_all_validation_tokens_and_writes_eval_json(run_dir, tiny_prepared):
    result = api.evaluate(run_dir, log=lambda _: None)
    dataset = PreparedDataset(tiny_prepared)
    assert result["val_tokens"] == {d: len(dataset.tokens("val", d)) - 1 for d in dataset.domains}
    assert set(result["val_loss"]) == {"prose", "code"}
    assert result["step"] == 4 and result["checkpoint"] == "step_000004"
    assert result["data"] == {d: str(tiny_prepared) for d in ("prose", "code")}
    assert "tasks" not in result and "accuracy" not in result
    assert json.loads((run_dir / "eval.json").read_text()) == result


def test_evaluate_on_the_training_evals_tokens_gives_the_training_evals_loss(run_dir):
    result = api.evaluate(run_dir, tokens_per_domain=64, log=lambda _: None)
    assert result["val_tokens"] == {"prose": 64, "code": 64}
    for domain, loss in final_eval(run_dir)["val_loss"].items():
        assert result["val_loss"][domain] == pytest.approx(loss, abs=1e-6)


def test_evaluate_on_other_sources_uses_the_runs_tokenizer(run_dir, tmp_path):
    from ..conftest import write_corpus

    prose, _ = write_corpus(tmp_path / "corpus", docs_per_domain=6, seed=1)
    result = api.evaluate(
        run_dir, data=[prose.replace("prose=", "other=")], tokens_per_domain=64, log=lambda _: None
    )
    assert set(result["val_loss"]) == {"other"} and result["val_tokens"] == {"other": 64}
    used = PreparedDataset(result["data"]["other"])
    assert used.tokenizer.fingerprint == api.load_tokenizer(run_dir).fingerprint


def test_evaluate_on_a_prepared_dataset_checks_its_tokenizer(run_dir, tiny_prepared, tmp_path):
    quiet = {"tokens_per_domain": 64, "log": lambda _: None}
    same = api.evaluate(run_dir, prepared=tiny_prepared, **quiet)
    assert same["val_loss"] == api.evaluate(run_dir, **quiet)["val_loss"]
    from ..conftest import write_corpus

    sources = write_corpus(tmp_path / "corpus", docs_per_domain=4)
    api.prepare(sources, tmp_path / "other", vocab_size=280, log=lambda _: None)
    with pytest.raises(UserError, match="tokenized with another tokenizer"):
        api.evaluate(run_dir, prepared=tmp_path / "other", log=lambda _: None)


def test_evaluate_says_when_the_training_data_is_gone(run_dir, tmp_path):
    moved = tmp_path / "run"
    shutil.copytree(run_dir, moved)
    lines = (moved / "metrics.jsonl").read_text().splitlines()
    start = json.loads(lines[0])
    start["data"] = {d: str(tmp_path / "deleted") for d in start["data"]}
    (moved / "metrics.jsonl").write_text("\n".join([json.dumps(start), *lines[1:]]) + "\n")
    with pytest.raises(UserError, match="trained on is gone .*--prepared DIR"):
        api.evaluate(moved, log=lambda _: None)


def test_evaluate_measures_arith_accuracy_when_its_data_is_builtin_arith(
    run_dir, tiny_prepared, tmp_path
):
    copy = tmp_path / "arith_like"
    shutil.copytree(tiny_prepared, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["sources"][0]["spec"] = "builtin:arith"  # as if prepared from builtin:arith
    (copy / "manifest.json").write_text(json.dumps(manifest))
    result = api.evaluate(run_dir, prepared=copy, tokens_per_domain=32, log=lambda _: None)
    accuracy = result["accuracy"]
    assert "arith" in accuracy and "arith/add_1digit" in accuracy
    assert all(0 <= v <= 1 for v in accuracy.values())


def test_evaluate_measures_only_the_arith_skills_in_the_data(run_dir, tiny_prepared, tmp_path):
    copy = tmp_path / "skills_like"
    shutil.copytree(tiny_prepared, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["sources"][0]["spec"] = "builtin:arith/add_2digit"  # as if split by skill
    manifest["sources"][1]["spec"] = "x=builtin:arith/compare"
    (copy / "manifest.json").write_text(json.dumps(manifest))
    result = api.evaluate(run_dir, prepared=copy, tokens_per_domain=32, log=lambda _: None)
    assert set(result["accuracy"]) == {"arith", "arith/add_2digit", "arith/compare"}


def test_evaluate_runs_lm_eval_tasks_on_the_run(run_dir, tmp_path, monkeypatch):
    evaluator = pytest.importorskip("lm_eval.evaluator")
    from .test_harness import ITEMS, write_task

    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr(evaluator, "add_env_info", lambda results: None)
    task = write_task(tmp_path / "tasks", ITEMS)
    result = api.evaluate(
        run_dir, tasks=[str(task)], limit=4, tokens_per_domain=32, log=lambda _: None
    )
    metrics = result["tasks"]["tiny_mc"]
    assert metrics["items"] == 4 and 0 <= metrics["acc"] <= 1 and result["limit"] == 4
    assert json.loads((run_dir / "eval.json").read_text())["tasks"] == result["tasks"]


def test_eval_command_prints_the_table(run_dir, capsys):
    assert main(["eval", "--run", str(run_dir), "--tokens-per-domain", "64"]) == 0
    out = capsys.readouterr().out
    assert "domain" in out and "prose" in out and "code" in out and "eval.json" in out


def test_eval_command_without_lm_eval_fails_in_one_line(run_dir, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "lm_eval.tasks", None)
    assert main(["eval", "--run", str(run_dir), "--tasks", "hellaswag"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install -e ".[eval]"' in err
