"""`budgetlm average`: checkpoint averages and soups written as runs the other commands use."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from budgetlm import api
from budgetlm.cli import main
from budgetlm.config import load_config
from budgetlm.errors import UserError
from budgetlm.train.checkpoint import list_checkpoints
from tests.conftest import TINY_MODEL, write_corpus

QUIET = {"log": lambda _: None}
KEEP_ALL = {"checkpoint.every": 0.25, "checkpoint.keep_last": 10}


def records(run_dir, kind):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == kind]


def weights(path):
    return load_file(path / "model.safetensors")


@pytest.fixture
def run(tiny_config):
    return api.pretrain(tiny_config(name="run", **KEEP_ALL), **QUIET).run_dir


def test_average_of_the_last_k_checkpoints_is_a_run_the_other_commands_use(run, tmp_path):
    out = tmp_path / "avg"
    record = api.average(out, run=run, last=3, **QUIET)
    chosen = list_checkpoints(run)[-3:]
    assert [s["checkpoint"] for s in record["sources"]] == [p.name for p in chosen]
    assert {"config.yaml", "tokenizer.json", "metrics.jsonl", "checkpoints"} <= {
        p.name for p in out.iterdir()
    }
    (checkpoint,) = list_checkpoints(out)
    state = json.loads((checkpoint / "state.json").read_text())
    assert state["tags"] == ["final"] and state["step"] == 12
    averaged, parts = weights(checkpoint), [weights(p) for p in chosen]
    for key, tensor in averaged.items():
        torch.testing.assert_close(tensor, sum(p[key] for p in parts) / 3)
    assert records(out, "average")[0]["method"] == "last"
    (evaluation,) = records(out, "eval")  # measured as the training loop measures
    assert evaluation["step"] == 12 and set(evaluation["val_loss"]) == {"code", "prose"}
    assert records(out, "start")[0]["data"] == records(run, "start")[0]["data"]
    assert load_config(out / "config.yaml").name == "avg"

    model = api.load_model(out)
    assert all(torch.equal(model.state_dict()[k], averaged[k]) for k in averaged)
    result = api.evaluate(out, **QUIET)
    assert set(result["val_loss"]) == {"code", "prose"} and result["step"] == 12
    assert isinstance(api.generate(out, "the cat", max_new_tokens=3), str)


def test_average_of_one_checkpoint_is_that_checkpoint(run, tmp_path):
    api.average(tmp_path / "one", run=run, last=1, **QUIET)
    a, b = weights(list_checkpoints(run)[-1]), weights(list_checkpoints(tmp_path / "one")[0])
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_averaging_across_the_decay_is_warned_about(run, tmp_path):
    logged = []
    api.average(tmp_path / "all", run=run, log=logged.append)  # all: 25%..100% of a WSD run
    assert any("averaging a decayed model" in line for line in logged)


def test_soup_is_the_mean_of_final_models_and_continues(tiny_config, run, tmp_path):
    other = api.pretrain(tiny_config(name="other", **{"train.seed": 1}), **QUIET).run_dir
    logged = []
    record = api.average(tmp_path / "soup", runs=[run, other], log=logged.append)
    assert record["method"] == "soup" and record["count"] == 2
    assert any("do not continue one common checkpoint" in line for line in logged)
    a, b = (weights(list_checkpoints(r)[-1]) for r in (run, other))
    soup = weights(list_checkpoints(tmp_path / "soup")[0])
    for key in soup:
        torch.testing.assert_close(soup[key], (a[key] + b[key]) / 2)
    # a soup has no optimizer state: continuing it starts fresh moments
    config = tiny_config(
        name="continued",
        budget="4steps",
        **{
            "continual.from_run": str(tmp_path / "soup"),
            "data.prepared": None,
            "data.sources": [f"new={write_corpus(tmp_path / 'new', 4, seed=5)[0].split('=')[1]}"],
            "data.cache_dir": str(tmp_path / "cache"),
        },
    )
    assert api.continue_pretraining(config, **QUIET).steps == 4


def test_soup_refuses_runs_of_different_shapes(tiny_config, run, tmp_path):
    deeper = api.pretrain(tiny_config(name="deeper", **{"model.n_layers": 3}), **QUIET).run_dir
    with pytest.raises(UserError, match="their models differ \\(n_layers 2 vs 3\\)"):
        api.average(tmp_path / "soup", runs=[run, deeper], **QUIET)
    assert not (tmp_path / "soup").exists()


def test_average_of_the_final_checkpoint_alone_evaluates_as_the_run_did(run, tmp_path):
    logged = []
    api.average(tmp_path / "one", run=run, last=1, log=logged.append)
    assert records(tmp_path / "one", "eval")[0]["val_loss"] == records(run, "eval")[-1]["val_loss"]
    assert any(line.startswith("held-out loss of the average: ") for line in logged)


def test_averaged_run_gets_a_report(run, tmp_path):
    api.average(tmp_path / "avg", run=run, last=2, **QUIET)
    files = api.report([tmp_path / "avg"])
    assert files.html.is_file()


def test_soup_refuses_runs_of_different_tokenizers(run, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(run, other)
    tokenizer = json.loads((other / "tokenizer.json").read_text())
    vocab = tokenizer["model"]["vocab"]
    first, second = list(vocab)[100:102]  # same size, two token ids swapped
    vocab[first], vocab[second] = vocab[second], vocab[first]
    (other / "tokenizer.json").write_text(json.dumps(tokenizer))
    with pytest.raises(UserError, match="different tokenizers"):
        api.average(tmp_path / "soup", runs=[run, other], **QUIET)


def test_bad_requests_are_refused(run, tmp_path):
    with pytest.raises(UserError, match="pass --run RUN"):
        api.average(tmp_path / "x", **QUIET)
    with pytest.raises(UserError, match="pass --run RUN"):
        api.average(tmp_path / "x", run=run, runs=[run], **QUIET)
    with pytest.raises(UserError, match="--last applies to --run"):
        api.average(tmp_path / "x", runs=[run, run], last=2, **QUIET)
    with pytest.raises(UserError, match="two or more different runs"):
        api.average(tmp_path / "x", runs=[run, run], **QUIET)
    with pytest.raises(UserError, match="already exists"):
        api.average(run, run=run, **QUIET)
    with pytest.raises(UserError, match="not a budgetlm run"):
        api.average(tmp_path / "x", run=tmp_path, **QUIET)
    with pytest.raises(UserError, match="fewer than --last 9"):
        api.average(tmp_path / "x", run=run, last=9, **QUIET)
    assert not (tmp_path / "x").exists()


def test_cli_average_then_eval(run, tmp_path, capsys):
    out = tmp_path / "cli-avg"
    assert main(["average", "--run", str(run), "--last", "2", "--out", str(out)]) == 0
    assert f"budgetlm eval --run {out}" in capsys.readouterr().out
    assert main(["eval", "--run", str(out), "--tokens-per-domain", "64"]) == 0
    assert "prose" in capsys.readouterr().out
    assert main(["average", "--runs", str(run), "--out", str(tmp_path / "y")]) == 2
    assert TINY_MODEL["model.n_layers"] == api.load_model(out).config.n_layers
