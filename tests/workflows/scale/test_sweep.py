"""Tests of workflows/scale/sweep.py and `budgetlm scale`: size and budget parsing, and a tiny
sweep end to end (fit written, runs reused, a sweep with other settings refused)."""

import json

import pytest

from budgetlm import api
from budgetlm.budget.scaling_law import ScalingLaw
from budgetlm.cli import main
from budgetlm.config import load_config
from budgetlm.errors import UserError
from budgetlm.model.config import ModelConfig
from budgetlm.model.flops import count_parameters
from budgetlm.workflows.scale.sweep import budget_tokens, parse_size

SIZES = ["32x1x2", "48x2x2"]
BUDGETS = ["3steps", "6steps", "9steps"]
TINY_RUN = {
    "model.seq_len": 32,
    "train.batch_size": 8,
    "train.micro_batch_size": 8,
    "eval.tokens_per_domain": 256,
}


def test_parse_size_presets_and_shapes():
    base = ModelConfig(seq_len=64)
    shape = parse_size("160x3", base, 4096)
    assert (shape.size, shape.d_model, shape.n_layers, shape.n_heads) == ("custom", 160, 3, 5)
    assert shape.seq_len == 64 and shape.vocab_size == 4096
    assert parse_size("96x2x4", base, 300).n_heads == 4
    nano = parse_size("nano", base, 4096)
    assert count_parameters(nano)["total"] == 926_336  # the preset's documented 0.93M
    with pytest.raises(UserError, match="multiple of 32"):
        parse_size("100x2", base, 4096)
    with pytest.raises(UserError, match="did you mean 'nano'"):
        parse_size("nanoo", base, 4096)
    with pytest.raises(UserError, match="size 96x2x5"):
        parse_size("96x2x5", base, 4096)  # 96 is not divisible by 5 heads


def test_budget_tokens_are_whole_steps():
    assert budget_tokens("1Mtok", 4096) == (1_000_000 // 4096) * 4096
    assert budget_tokens("10steps", 4096) == 40960
    model = parse_size("nano", ModelConfig(), 4096)
    from budgetlm.model.flops import flops_per_token

    assert (
        budget_tokens("1e12flop", 4096, model) == (1e12 // (flops_per_token(model) * 4096)) * 4096
    )
    with pytest.raises(UserError, match="token or step budget"):
        budget_tokens("5m", 4096)
    with pytest.raises(UserError, match="less than one optimizer step"):
        budget_tokens("100tok", 4096)


@pytest.fixture(scope="module")
def sweep(tiny_prepared, tmp_path_factory):
    """A 2-size x 3-budget sweep of tiny models (6 points: all five parameters fitted), with
    BUDGETLM_CACHE in a temporary folder."""
    root = tmp_path_factory.mktemp("sweep")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BUDGETLM_CACHE", str(root / "cache"))
        config = load_config(None, config_items(tiny_prepared))
        result = api.scale(
            config,
            SIZES,
            BUDGETS,
            root / "sweep",
            predict=["64x2x2:12steps"],
            bootstrap=5,
            log=lambda _: None,
        )
        yield root, config, result


def config_items(prepared):
    return [("data.prepared", str(prepared)), *TINY_RUN.items()]


def test_scale_fits_and_saves(sweep):
    root, config, result = sweep
    out = root / "sweep"
    assert len(result.runs) == 6 and result.law.fixed == ()
    saved = ScalingLaw.load(out / "scaling_law.json")
    assert saved == result.law
    assert ScalingLaw.load(root / "cache" / "scaling_law.json") == result.law
    assert [p.label for p in saved.points] == [f"{s}-{b}" for s in SIZES for b in BUDGETS]
    for run in result.runs:
        records = [
            json.loads(line)
            for line in (out / "runs" / run.name / "metrics.jsonl").read_text().splitlines()
        ]
        end = [r for r in records if r["type"] == "end"][-1]
        start = [r for r in records if r["type"] == "start"][-1]
        assert run.tokens == end["tokens"] == int(run.budget[: -len("steps")]) * 8 * 32
        assert run.loss == pytest.approx(sum(end["val_loss"].values()) / 2)
        assert run.n_params == start["parameters"]["total"]
    shape = parse_size(SIZES[0], config.model, 300)
    assert result.runs[0].n_params == count_parameters(shape)["total"]
    (prediction,) = result.predictions
    assert prediction.tokens == 12 * 8 * 32
    assert prediction.loss == pytest.approx(saved.predict(prediction.n_params, prediction.tokens))
    low, high = prediction.interval
    assert low <= high
    assert saved.extra["predictions"][0]["spec"] == "64x2x2:12steps"
    assert result.plot_path is not None and result.plot_path.read_bytes()[:4] == b"\x89PNG"
    assert "predicted 64x2x2:12steps" in result.table()


def test_scale_reuses_finished_runs_and_refuses_other_settings(sweep):
    root, config, result = sweep
    out = root / "sweep"
    metrics = out / "runs" / f"{SIZES[0]}-{BUDGETS[0]}" / "metrics.jsonl"
    mtime = metrics.stat().st_mtime_ns
    logs = []
    again = api.scale(config, SIZES, BUDGETS, out, bootstrap=0, remember=False, log=logs.append)
    assert any("6 of 6 proxy runs already finished" in line for line in logs)
    assert metrics.stat().st_mtime_ns == mtime
    assert [r.loss for r in again.runs] == [r.loss for r in result.runs]
    other = load_config(None, [*config_items(config.data.prepared), ("train.lr", 1e-3)])
    with pytest.raises(UserError, match="train.lr"):
        api.scale(other, SIZES, BUDGETS, out, bootstrap=0, log=logs.append)


def test_scale_cli(sweep, tiny_prepared, capsys):
    root, _, _ = sweep
    out = root / "sweep"
    overrides = [f"--{k}={v}" for k, v in TINY_RUN.items()]
    args = ["scale", "--prepared", str(tiny_prepared), "--out", str(out), *overrides]
    assert main([*args, "--sizes", SIZES[0], "--budgets", ",".join(BUDGETS)]) == 2
    assert "at least two sizes and two budgets" in capsys.readouterr().err
    sizes, budgets = ",".join(SIZES), ",".join(BUDGETS)
    argv = [*args, "--sizes", sizes, "--budgets", budgets, "--target", "code", "--no-remember"]
    code = main([*argv, "--predict", "64x2x2:12steps", "--bootstrap", "4"])
    printed = capsys.readouterr().out
    assert code == 0
    law = ScalingLaw.load(out / "scaling_law.json")
    assert law.extra["target"] == ["code"]
    code_losses = [r["val_loss"]["code"] for r in law.extra["runs"]]
    assert [p.loss for p in law.points] == code_losses
    assert "predicted 64x2x2:12steps" in printed and f"{SIZES[1]}-{BUDGETS[2]}" in printed
