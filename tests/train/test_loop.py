import io
import json

import numpy as np
import torch

from budgetlm.budget.controller import BudgetController
from budgetlm.budget.spec import Budget
from budgetlm.evaluate.config import EvalConfig
from budgetlm.model.config import ModelConfig
from budgetlm.model.decoder import Decoder
from budgetlm.run.records import MetricsLog
from budgetlm.train.config import CheckpointConfig, TrainConfig
from budgetlm.train.loop import Trainer
from budgetlm.train.optim import build_adamw
from budgetlm.train.progress import Progress
from budgetlm.train.schedules import WarmupStableDecay


class FixedBatches:
    """The same seeded random batches every time, so two trainers see identical data."""

    def __init__(self, seed=0, seq_len=16):
        self.rng = np.random.default_rng(seed)
        self.seq_len = seq_len

    def next_batch(self, n, progress=0.0):
        return self.rng.integers(0, 64, size=(n, self.seq_len + 1))

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def make_trainer(
    tmp_path, micro_batch_size, steps=3, precision="fp32", compile=False, seq_len=16, **options
):
    torch.manual_seed(0)
    cfg = ModelConfig(
        size="custom", d_model=32, n_layers=1, n_heads=2, vocab_size=64, seq_len=seq_len
    ).resolved()
    model = Decoder(cfg)
    train = TrainConfig(
        batch_size=8,
        micro_batch_size=micro_batch_size,
        precision=precision,
        lr=1e-2,
        compile=compile,
        **options,
    )
    controller = BudgetController(Budget("steps", steps), 8 * seq_len, 1.0)
    tmp_path.mkdir(exist_ok=True)
    return Trainer(
        model,
        build_adamw(model, train, torch.device("cpu")),
        FixedBatches(seq_len=seq_len),
        WarmupStableDecay(0.0, 0.5),
        controller,
        {"a": np.arange(200) % 64},
        tmp_path,
        train,
        EvalConfig(count=2, tokens_per_domain=64),
        CheckpointConfig(every=0),
        MetricsLog(tmp_path / "metrics.jsonl"),
        Progress(io.StringIO()),
        torch.device("cpu"),
        seq_len,
    )


def test_gradient_accumulation_matches_one_big_batch(tmp_path):
    whole = make_trainer(tmp_path / "whole", micro_batch_size=8)
    accumulated = make_trainer(tmp_path / "accum", micro_batch_size=2)
    whole.run()
    accumulated.run()
    for a, b in zip(whole.model.parameters(), accumulated.model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_run_counts_steps_tokens_and_evaluations(tmp_path):
    trainer = make_trainer(tmp_path, micro_batch_size=4, steps=4, precision="bf16")
    result = trainer.run()
    assert result.state.step == 4 and result.state.tokens == 4 * 8 * 16
    assert result.state.evals_done == 3  # start, one periodic (count=2), end
    assert result.val_loss["a"] < np.log(64) + 0.5


def test_evaluations_land_on_the_exact_share_of_the_steps(tmp_path):
    trainer = make_trainer(tmp_path, micro_batch_size=4, steps=12, precision="fp32")
    trainer.eval_fractions = [0.333333, 0.666667]  # EvalConfig(count=3).fractions()
    trainer.run()
    trainer.metrics.close()
    records = map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines())
    assert [r["step"] for r in records if r["type"] == "eval"] == [0, 4, 8, 12]


POISON = 63


class CountedBatches:
    """Batch k is a fixed function of k (batch 7 is poison); `remap` lets a run skip batches."""

    def __init__(self, remap=lambda k: k):
        self.served, self.remap = 0, remap

    def next_batch(self, n, progress=0.0):
        k = self.remap(self.served)
        self.served += 1
        if k == 7:
            return np.full((n, 17), POISON)
        return np.random.default_rng(k).integers(0, POISON, size=(n, 17))

    def state_dict(self):
        return {"served": self.served}

    def load_state_dict(self, state):
        self.served = state["served"]


class PoisonSensitive(Decoder):
    """A Decoder whose loss is NaN (or 10x, a spike) on a batch of poison tokens."""

    spike = float("nan")

    def forward(self, idx, targets=None, reduction="mean"):
        out = super().forward(idx, targets, reduction)
        if targets is not None and bool((idx == POISON).all()):
            return out * self.spike
        return out


def guarded_trainer(tmp_path, batches, spike=float("nan"), guard=None):
    from budgetlm.train.guard import GuardConfig

    torch.manual_seed(0)
    cfg = ModelConfig(
        size="custom", d_model=32, n_layers=1, n_heads=2, vocab_size=64, seq_len=16
    ).resolved()
    model = PoisonSensitive(cfg)
    model.spike = spike
    train = TrainConfig(batch_size=4, micro_batch_size=4, precision="fp32", lr=1e-2, log_every=2)
    tmp_path.mkdir(exist_ok=True)
    return Trainer(
        model,
        build_adamw(model, train, torch.device("cpu")),
        batches,
        WarmupStableDecay(0.0, 0.5),
        BudgetController(Budget("steps", 16), 4 * 16, 1.0),
        {"a": np.arange(200) % 63},
        tmp_path,
        train,
        EvalConfig(count=2, tokens_per_domain=64),
        CheckpointConfig(every=0.25),
        MetricsLog(tmp_path / "metrics.jsonl"),
        Progress(io.StringIO()),
        torch.device("cpu"),
        16,
        guard=guard or GuardConfig(snapshot_every=4, warmup_checks=1),
    )


def read_records(path, kind):
    import json

    return [r for r in map(json.loads, path.read_text().splitlines()) if r["type"] == kind]


def test_nan_batch_is_rolled_back_and_skipped(tmp_path):
    poisoned = guarded_trainer(tmp_path / "poisoned", CountedBatches())
    result = poisoned.run()
    assert result.state.step == 16 and result.state.rollbacks == 1
    (rollback,) = read_records(tmp_path / "poisoned" / "metrics.jsonl", "rollback")
    # batch 7 is trained at step 8; the last snapshot was step 4: batches 4..7 are skipped
    assert (rollback["step"], rollback["to_step"], rollback["skipped_batches"]) == (8, 4, 4)
    assert "loss is nan" in rollback["reason"]
    assert all(torch.isfinite(p).all() for p in poisoned.model.parameters())
    # bitwise the run that never saw batches 4..7
    clean = guarded_trainer(tmp_path / "clean", CountedBatches(lambda k: k if k < 4 else k + 4))
    clean.run()
    for a, b in zip(poisoned.model.parameters(), clean.model.parameters(), strict=True):
        assert torch.equal(a, b)
    checkpoints = read_records(tmp_path / "poisoned" / "metrics.jsonl", "checkpoint")
    assert [c["step"] for c in checkpoints] == [4, 8, 12, 16]  # none of a poisoned state


def test_loss_spike_is_rolled_back_too(tmp_path):
    trainer = guarded_trainer(tmp_path, CountedBatches(), spike=10.0)
    trainer.run()
    (rollback,) = read_records(tmp_path / "metrics.jsonl", "rollback")
    assert "over 2x its running mean" in rollback["reason"]


def test_guard_off_or_exhausted_stops_with_advice(tmp_path):
    import pytest

    from budgetlm.train.guard import GuardConfig

    off = guarded_trainer(tmp_path / "off", CountedBatches(), guard=GuardConfig(enabled=False))
    with pytest.raises(FloatingPointError, match=r"training loss is nan at step 8"):
        off.run()
    always_bad = CountedBatches(remap=lambda k: 7)
    capped = guarded_trainer(tmp_path / "capped", always_bad, guard=GuardConfig(max_rollbacks=2))
    with pytest.raises(FloatingPointError, match=r"after 2 rollbacks already.*lower train.lr"):
        capped.run()


def test_a_compilation_failing_in_backward_falls_back_to_eager(tmp_path, monkeypatch):
    class FailsInBackward(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, grad):
            raise RuntimeError("backward compilation failed: no C++ compiler\nmore")

    monkeypatch.setattr(
        torch, "compile", lambda module: lambda *a, **k: FailsInBackward.apply(module(*a, **k))
    )
    plain = make_trainer(tmp_path / "plain", micro_batch_size=4, steps=2)
    plain.run()
    trainer = make_trainer(tmp_path / "compiled", micro_batch_size=4, steps=2, compile=True)
    messages = []
    trainer.progress.message = messages.append
    trainer.run()
    assert any("torch.compile failed (backward compilation failed" in m for m in messages)
    for a, b in zip(plain.model.parameters(), trainer.model.parameters(), strict=True):
        torch.testing.assert_close(a, b)  # the eager retry trained exactly like a plain run


def test_a_batch_warmup_spends_early_batches_on_more_updates(tmp_path):
    # 8 steps, a warm-up over 4 of them in thirds: steps 0-1 take 4 updates of 2 rows, step 2
    # takes 2 of 4, the rest 1 of 8; each step still reads one batch of 8 rows (the same tokens)
    trainer = make_trainer(tmp_path, micro_batch_size=8, steps=8, batch_warmup=0.5)
    rows = []
    original = trainer._accumulate_gradients
    trainer._accumulate_gradients = lambda batch, context=1: (
        rows.append(len(batch)) or original(batch, context)
    )
    result = trainer.run()
    assert rows == [2] * 8 + [4] * 2 + [8] * 5
    assert result.state.tokens == 8 * 8 * 16


def test_a_context_warmup_trains_on_the_same_tokens_in_shorter_rows(tmp_path):
    # seq_len 64, 4 steps, a warm-up over 3 of them: rows cut in 4 in its first two quarters
    # (8 would leave rows of 8 tokens; steps 0 and 1), in 2 in its third (step 2), then whole
    trainer = make_trainer(tmp_path, 8, steps=4, seq_len=64, context_warmup=0.75)
    shapes = []
    forward = trainer.forward
    trainer.forward = lambda idx, *a, **k: shapes.append(tuple(idx.shape)) or forward(idx, *a, **k)
    result = trainer.run()  # (evaluations call the model itself, not trainer.forward)
    assert shapes == [(32, 16), (32, 16), (16, 32), (8, 64)]
    assert result.state.tokens == 4 * 8 * 64
