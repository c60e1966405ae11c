"""`budgetlm pretrain --grow-from RUN`: a deeper run started from a small run's stacked blocks."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from budgetlm import api
from budgetlm.cli import main
from budgetlm.errors import UserError
from budgetlm.model.growth import stack_layers
from budgetlm.workflows import pretrain as pretrain_workflow
from tests.conftest import kill_after_step

DEEP = {"model.n_layers": 4}


def records(run_dir, kind):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == kind]


@pytest.fixture
def small_run(tiny_config):
    return api.pretrain(tiny_config(name="small"), log=lambda _: None)


def test_grown_run_starts_from_the_stacked_model_and_trains(tiny_config, small_run, monkeypatch):
    initial = {}
    original = pretrain_workflow.open_growth_source

    def spy(*args, **kwargs):
        source = original(*args, **kwargs)
        init = source.init

        def recording_init(model, optimizer):
            init(model, optimizer)
            initial.update({k: v.clone() for k, v in model.state_dict().items()})
            initial["adam_state"] = len(optimizer.state)

        source.init = recording_init
        return source

    monkeypatch.setattr(pretrain_workflow, "open_growth_source", spy)
    config = tiny_config(name="grown", **DEEP, **{"growth.from_run": str(small_run.run_dir)})
    grown = api.pretrain(config, log=lambda _: None)

    small = api.load_model(small_run.run_dir)
    expected = stack_layers(small.state_dict(), small.config, api.load_model(grown.run_dir).config)
    assert all(torch.equal(initial[k], expected[k]) for k in expected)
    assert initial["adam_state"] == 0  # the optimizer starts fresh
    start = records(grown.run_dir, "start")[0]
    assert start["grown_from"] == str(small_run.run_dir.resolve())
    assert start["growth_factor"] == 2 and start["grown_from_layers"] == 2
    assert start["grown_from_tokens"] == small_run.tokens == 12 * 8 * 32
    assert start["grown_from_checkpoint"] == "step_000012"
    assert grown.steps == 12 and api.load_model(grown.run_dir).config.n_layers == 4
    # at step 0 the grown model already knows what the small one learned
    first_small, first_grown = (
        records(r, "eval")[0]["val_loss"] for r in (small_run.run_dir, grown.run_dir)
    )
    assert all(first_grown[d] < first_small[d] - 0.5 for d in first_small)


def test_killed_grown_run_resumes_without_the_small_run(tiny_config, small_run, monkeypatch):
    grow = {**DEEP, "growth.from_run": str(small_run.run_dir)}
    straight = api.pretrain(tiny_config(name="straight", **grow), log=lambda _: None)
    kill_after_step(monkeypatch, 7)
    with pytest.raises(KeyboardInterrupt):
        api.pretrain(tiny_config(name="killed", **grow), log=lambda _: None)
    monkeypatch.undo()
    shutil.rmtree(small_run.run_dir)  # a resumed grown run needs only its own directory
    resumed = api.pretrain(tiny_config(name="killed"), resume=True, log=lambda _: None)
    assert resumed.steps == 12 and resumed.val_loss == straight.val_loss


def test_width_mismatch_fails_before_the_run_is_created(tiny_config, small_run, tmp_path):
    config = tiny_config(
        name="wide", **DEEP, **{"model.d_model": 64, "growth.from_run": str(small_run.run_dir)}
    )
    with pytest.raises(UserError, match="the widths differ.*--model.d_model 32"):
        api.pretrain(config, log=lambda _: None)
    assert not (tmp_path / "runs" / "wide").exists()


def test_growing_needs_a_finished_run(tiny_config, tmp_path):
    config = tiny_config(name="x", **DEEP, **{"growth.from_run": str(tmp_path / "nothing")})
    with pytest.raises(UserError, match="not a budgetlm run directory"):
        api.pretrain(config, log=lambda _: None)


def test_continue_refuses_growth(tiny_config, small_run):
    config = tiny_config(
        name="c",
        **{"growth.from_run": str(small_run.run_dir), "continual.from_run": str(small_run.run_dir)},
    )
    with pytest.raises(UserError, match="--grow-from"):
        api.continue_pretraining(config, log=lambda _: None)


def test_cli_grow_from(tiny_prepared, small_run, tmp_path, capsys):
    out = tmp_path / "cli-grown"
    args = ["pretrain", "--prepared", str(tiny_prepared), "--budget", "4steps", "--out", str(out)]
    shape = ["--model.size", "custom", "--model.d_model", "32", "--model.n_heads", "2"]
    shape += ["--model.seq_len", "32", "--train.batch_size", "8", "--samples.max_new_tokens", "2"]
    assert (
        main([*args, "--grow-from", str(small_run.run_dir), *shape, "--model.n_layers", "6"]) == 0
    )
    assert records(out, "start")[0]["growth_factor"] == 3
    assert "growth:\n  from_run: " + str(small_run.run_dir) in (out / "config.yaml").read_text()
    assert (
        main([*args, "--grow-from", str(small_run.run_dir), *shape, "--model.n_layers", "3"]) == 2
    )
    assert "not a multiple" in capsys.readouterr().err
    assert main(["pretrain", "--resume", "--out", str(out), "--grow-from", "x"]) == 2
