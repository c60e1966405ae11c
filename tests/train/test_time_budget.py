"""Every schedule ends on time under a time budget: the trainer runs against an injected clock in
which steps and evaluations take set times (no test here measures a wall time)."""

import io
import types

import numpy as np
import pytest
import torch

from budgetlm.budget.controller import BudgetController
from budgetlm.budget.spec import Budget
from budgetlm.evaluate.config import EvalConfig
from budgetlm.model.config import ModelConfig
from budgetlm.model.decoder import Decoder
from budgetlm.run.records import MetricsLog
from budgetlm.train import loop
from budgetlm.train.config import CheckpointConfig, TrainConfig
from budgetlm.train.optim import build_adamw
from budgetlm.train.progress import Progress
from budgetlm.train.schedules import SCHEDULES, build_schedule


class Clock:
    """A perf_counter that moves only when the test says."""

    def __init__(self):
        self.now = 1000.0

    def perf_counter(self):
        return self.now


class Batches:
    def __init__(self):
        self.rng = np.random.default_rng(0)

    def next_batch(self, n, progress=0.0):
        return self.rng.integers(0, 64, size=(n, 9))

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def run_timed(tmp_path, monkeypatch, schedule, step_time, eval_seconds=0.5, spent=5.0,
              estimate=0.08, budget=100.0):  # fmt: skip
    """Train under a `budget`-second budget where optimizer step k (1-based) takes
    step_time(k) s; returns (elapsed seconds at the end, steps, messages)."""
    clock = Clock()
    monkeypatch.setattr(loop, "time", types.SimpleNamespace(perf_counter=clock.perf_counter))
    steps = {"n": 0}
    real_step = loop.Trainer._optimizer_step

    def timed_step(self, lr):
        steps["n"] += 1
        clock.now += step_time(steps["n"])
        return real_step(self, lr)

    def timed_eval(*args, **kwargs):
        clock.now += eval_seconds
        return {"a": 1.0}

    monkeypatch.setattr(loop.Trainer, "_optimizer_step", timed_step)
    monkeypatch.setattr(loop, "validation_loss", timed_eval)
    torch.manual_seed(0)
    cfg = ModelConfig(size="custom", d_model=16, n_layers=1, n_heads=2, vocab_size=64,
                      seq_len=8).resolved()  # fmt: skip
    model = Decoder(cfg)
    train = TrainConfig(batch_size=2, micro_batch_size=2, precision="fp32", lr=1e-3,
                        compile=False, log_every=1000)  # fmt: skip
    controller = BudgetController(Budget("seconds", budget), 16, 1.0,
                               estimated_step_seconds=estimate,
                               estimated_overhead={"eval": 0.4, "checkpoint": 0.0})  # fmt: skip
    out = io.StringIO()
    trainer = loop.Trainer(
        model,
        build_adamw(model, train, torch.device("cpu")),
        Batches(),
        build_schedule(schedule, 0.05, 0.2, 0.0),
        controller,
        {"a": np.arange(100) % 64},
        tmp_path,
        train,
        EvalConfig(count=10, tokens_per_domain=16),
        CheckpointConfig(every=0, pre_decay=False),
        MetricsLog(tmp_path / "metrics.jsonl"),
        Progress(out),
        torch.device("cpu"),
        8,
        spent_seconds=spent,
    )
    result = trainer.run()
    return clock.now - 1000.0 + spent, result.state.step, out.getvalue()


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_every_schedule_ends_on_time_when_steps_slow_down_mid_run(tmp_path, monkeypatch, schedule):
    # misestimated before training (0.08 s), 0.1 s while warming up, then 0.13 s from step 300
    elapsed, steps, _ = run_timed(
        tmp_path, monkeypatch, schedule, lambda k: 0.1 if k < 300 else 0.13
    )
    assert abs(elapsed - 100.0) <= 5.0, (schedule, elapsed, steps)


@pytest.mark.parametrize("schedule", ["cosine", "wsd"])
def test_a_slow_compiling_first_step_neither_aborts_nor_shrinks_the_run(
    tmp_path, monkeypatch, schedule
):
    elapsed, steps, _ = run_timed(
        tmp_path, monkeypatch, schedule, lambda k: 30.0 if k == 1 else 0.1
    )
    assert abs(elapsed - 100.0) <= 5.0 and steps > 500  # (100 - 5 - 30 - 5.5) / 0.1 ~ 595


def test_a_decaying_run_that_drifts_says_it_re_planned(tmp_path, monkeypatch):
    _, _, messages = run_timed(tmp_path, monkeypatch, "cosine", lambda k: 0.1 if k < 300 else 0.2)
    assert "re-planned" in messages and "to end on time" in messages
