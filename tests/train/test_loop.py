import io

import numpy as np
import torch

from budgetlm.budget.controller import BudgetController
from budgetlm.budget.spec import Budget
from budgetlm.evaluate.config import EvalConfig
from budgetlm.model.config import ModelConfig
from budgetlm.model.decoder import Decoder
from budgetlm.train.config import CheckpointConfig, TrainConfig
from budgetlm.train.loop import Trainer
from budgetlm.train.metrics import MetricsLog
from budgetlm.train.optim import build_adamw
from budgetlm.train.progress import Progress
from budgetlm.train.schedules import WarmupStableDecay


class FixedBatches:
    """The same seeded random batches every time, so two trainers see identical data."""

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)

    def next_batch(self, n, progress=0.0):
        return self.rng.integers(0, 64, size=(n, 17))

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def make_trainer(tmp_path, micro_batch_size, steps=3, precision="fp32"):
    torch.manual_seed(0)
    cfg = ModelConfig(
        size="custom", d_model=32, n_layers=1, n_heads=2, vocab_size=64, seq_len=16
    ).resolved()
    model = Decoder(cfg)
    train = TrainConfig(
        batch_size=8, micro_batch_size=micro_batch_size, precision=precision, lr=1e-2
    )
    planner = BudgetController(Budget("steps", steps), 8 * 16, 1.0)
    tmp_path.mkdir(exist_ok=True)
    return Trainer(
        model,
        build_adamw(model, train, torch.device("cpu")),
        FixedBatches(),
        WarmupStableDecay(0.0, 0.5),
        planner,
        {"a": np.arange(200) % 64},
        tmp_path,
        train,
        EvalConfig(count=2, tokens_per_domain=64),
        CheckpointConfig(every=0),
        MetricsLog(tmp_path / "metrics.jsonl"),
        Progress(io.StringIO()),
        torch.device("cpu"),
        16,
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
