"""Build a training job's parts from its decided config: the data sampler, the budget
controller and the LR schedule, and the model sharded over ranks when asked."""

from __future__ import annotations

import torch

from budgetlm.budget.controller import BudgetController
from budgetlm.budget.spec import Budget
from budgetlm.config import RunConfig
from budgetlm.data.feed.sampler import MixtureSampler
from budgetlm.data.feed.streams import TrainingData
from budgetlm.data.store.tokenizer import Tokenizer
from budgetlm.evaluate.bpb import bytes_per_token
from budgetlm.evaluate.loss import scored_targets
from budgetlm.job.decide import JobSettings
from budgetlm.model.build import LanguageModel
from budgetlm.model.flops import flops_per_token
from budgetlm.train.optim import build_optimizer
from budgetlm.train.schedules import WarmupStableDecay, build_schedule
from budgetlm.train.sharding import load_full_state, shard_model


def build_sampler(config: RunConfig, data: TrainingData) -> MixtureSampler:
    """The sampler of training batches over the domains, by data.weights (or its schedule)."""
    return MixtureSampler(
        data.train,
        config.model.seq_len,
        data.weights,
        config.train.seed,
        max_epochs=config.data.max_epochs,
        schedule=config.data.schedule,
    )


def validation_bytes_per_token(
    config: RunConfig, data: TrainingData, tokenizer: Tokenizer
) -> dict[str, float | None]:
    """Bytes of text per token of each domain's scored validation tokens (what every
    evaluation scores): the tokenizer's compression, and what turns losses into bits per byte."""
    return {
        domain: bytes_per_token(
            tokenizer, scored_targets(stream, config.model.seq_len, config.eval.tokens_per_domain)
        )
        for domain, stream in data.val.items()
        if len(stream) >= 2
    }


def build_controller(config: RunConfig, budget: Budget, settings: JobSettings) -> BudgetController:
    """What keeps the run within its budget, first planned from the decided step time."""
    tokens_per_step = config.train.batch_size * config.model.seq_len
    return BudgetController(
        budget,
        tokens_per_step,
        flops_per_token(config.model) * tokens_per_step,
        estimated_step_seconds=settings.step_seconds,
        estimated_overhead=settings.estimated_overhead,
    )


def build_lr_schedule(config: RunConfig) -> WarmupStableDecay:
    """The LR schedule the config names (train.schedule and its fractions)."""
    train = config.train
    return build_schedule(
        train.schedule,
        train.warmup_fraction,
        train.decay_fraction,
        train.min_lr_ratio,
        train.decay_shape,
    )


def shard(
    model: LanguageModel, optimizer: torch.optim.Optimizer, config: RunConfig
) -> tuple[LanguageModel, torch.optim.Optimizer]:
    """Shard the (initialised) model across ranks, and rebuild the optimizer over the shards,
    carrying over any state an init loaded into it."""
    state = optimizer.state_dict()
    shard_model(model)
    optimizer = build_optimizer(model, config.train)
    load_full_state(model, optimizer, None, state)
    return model, optimizer
