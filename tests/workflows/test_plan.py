"""`budgetlm plan` end to end on test data, with the machine's speed replaced by fixed figures."""

import pytest

from budgetlm import api
from budgetlm.cli import main
from budgetlm.config import load_config
from budgetlm.errors import UserError
from budgetlm.machine.throughput import Throughput

RATES = {128: 30_000.0, 192: 12_000.0, 256: 7_000.0, 512: 3_000.0, 640: 2_000.0}


@pytest.fixture
def fixed_speed(monkeypatch, tmp_path):
    monkeypatch.setenv("BUDGETLM_CACHE", str(tmp_path / "cache"))

    def measure(model, train, device, *_, **__):
        rate = RATES[model.d_model]
        per_step = train.micro_batch_size * model.seq_len / rate
        return Throughput(rate, per_step, 5, train.precision)

    monkeypatch.setattr("budgetlm.workflows.plan.measure_throughput", measure)
    monkeypatch.setattr("budgetlm.machine.precision.measure_throughput", measure)


def test_plan_writes_a_config_that_pretrain_runs_as_is(tiny_prepared, tmp_path, fixed_speed):
    config = load_config(None, [("data.prepared", str(tiny_prepared)), ("budget", "2m")])
    out = tmp_path / "plan.yaml"
    logged = []
    plan, planned = api.plan(config, out=out, log=logged.append)
    assert plan.chosen is min(plan.candidates, key=lambda c: c.predicted_loss)
    assert plan.warnings and "times" in plan.warnings[0]  # the test data is tiny
    saved = load_config(out)
    assert saved.model.size == plan.chosen.size and saved.budget == "2m"
    assert saved.train.batch_size == plan.batch_size and saved.train.lr == plan.lr
    assert any(f"recommended: {plan.chosen.size}" in line for line in logged)
    assert saved == planned


def pretrain_config(monkeypatch, prepared, out, budget):
    """`budgetlm pretrain --budget BUDGET` without --model: its exit code and the config it
    would train (run_training replaced)."""
    captured = {}
    monkeypatch.setattr(
        "budgetlm.workflows.pretrain.run_training",
        lambda config, *a, **k: captured.setdefault("c", config),
    )
    code = main(["pretrain", "--prepared", str(prepared), "--budget", budget, "--out", str(out)])
    return code, captured.get("c")


def test_pretrain_with_a_budget_and_no_model_plans_the_size(
    tiny_prepared, tmp_path, fixed_speed, monkeypatch, capsys
):
    code, config = pretrain_config(monkeypatch, tiny_prepared, tmp_path / "run", "1e12flop")
    assert code == 0
    assert config.model.size in RATES_BY_SIZE
    assert "recommended:" in capsys.readouterr().out


RATES_BY_SIZE = ("nano", "micro", "tiny", "small", "medium")


def test_plan_refuses_a_step_budget(tiny_prepared, fixed_speed):
    config = load_config(None, [("data.prepared", str(tiny_prepared)), ("budget", "100steps")])
    with pytest.raises(UserError, match="plan needs a time, FLOP or token budget"):
        api.plan(config)


def test_auto_size_outside_pretrain_is_a_clear_error():
    from budgetlm.model.config import ModelConfig

    with pytest.raises(UserError, match="chosen by the planner"):
        ModelConfig(size="auto").resolved(300)


def test_a_cached_law_is_used_only_for_the_data_it_was_fitted_on(tmp_path, monkeypatch):
    from budgetlm.budget.scaling_law import CHINCHILLA
    from budgetlm.workflows.plan import load_law

    monkeypatch.setenv("BUDGETLM_CACHE", str(tmp_path))
    law = type(CHINCHILLA)(**{**CHINCHILLA.__dict__, "E": 1.0, "extra": {"data": str(tmp_path)}})
    law.save(tmp_path / "scaling_law.json")
    assert load_law(None, tmp_path)[0].E == 1.0
    other, name = load_law(None, tmp_path / "elsewhere")
    assert other is CHINCHILLA and "Chinchilla" in name


def test_pretrain_with_a_step_budget_and_no_model_trains_the_default_model(
    tiny_prepared, tmp_path, fixed_speed, monkeypatch, capsys
):
    code, config = pretrain_config(monkeypatch, tiny_prepared, tmp_path / "run", "30steps")
    assert code == 0 and config.model.size == "nano"
    assert "fix no time, tokens or FLOPs" in capsys.readouterr().out


def test_a_90_second_budget_plans_a_run_that_fits(tiny_prepared, monkeypatch, tmp_path):
    monkeypatch.setenv("BUDGETLM_CACHE", str(tmp_path / "cache"))

    def slow(model, train, device, *_, **__):  # an AVX2-only CPU's fp32 speed (issue 12)
        rate = 8000.0 * 128 / model.d_model
        return Throughput(rate, train.micro_batch_size * model.seq_len / rate, 5, "fp32")

    monkeypatch.setattr("budgetlm.workflows.plan.measure_throughput", slow)
    monkeypatch.setattr("budgetlm.machine.precision.measure_throughput", slow)
    config = load_config(None, [("data.prepared", str(tiny_prepared)), ("budget", "90s")])
    plan, _ = api.plan(config, log=lambda _: None)
    assert plan.chosen.seconds <= 90 and plan.chosen.tokens > 0
