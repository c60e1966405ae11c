"""`budgetlm pretrain`: train a model from scratch within the budget. Opens the data, decides
the model (the planner's size for the budget, a grown copy of a smaller run, or the one asked
for) and hands one training job to job/run.py; a resumed run keeps its saved config."""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from typing import Any

from budgetlm.budget.spec import parse_budget
from budgetlm.config import RunConfig
from budgetlm.data.feed.streams import from_dataset
from budgetlm.data.store.tokenizer import TOKENIZER_FILE
from budgetlm.errors import UserError
from budgetlm.evaluate.arith import arith_evaluation
from budgetlm.io import Log
from budgetlm.job.run import RunResult, run_training
from budgetlm.model.config import AUTO_SIZE, ModelConfig
from budgetlm.run.directory import open_resume
from budgetlm.workflows.continual.train import continue_pretraining
from budgetlm.workflows.data import open_data
from budgetlm.workflows.grow import open_growth_source
from budgetlm.workflows.plan import plan_run, plan_table


def pretrain(
    config: RunConfig | None = None,
    resume: bool = False,
    log: Log = print,
    settings: Sequence[tuple[str, Any]] = (),
    started_at: float | None = None,
) -> RunResult:
    """Pre-train a model from scratch within the configured budget (or resume a killed run, with
    `settings` from config.RESUME_SETTINGS changed), then write samples and print a summary.
    A time budget counts from `started_at` (time.perf_counter() when the command started)."""
    started_at = time.perf_counter() if started_at is None else started_at
    config = copy.deepcopy(config) if config else RunConfig()
    parse_budget(config.budget)  # a bad budget fails before any data work
    run_dir = None
    if resume:
        run_dir, config = open_resume(config, log, settings)
        if config.continual.from_run:
            return continue_pretraining(config, resume=True, log=log, started_at=started_at)
    elif config.continual.from_run:
        raise UserError("continual.from_run is set: use `budgetlm continue` for continued training")
    grow = None
    if config.growth.from_run and not resume:  # checked before any data work
        grow = open_growth_source(config.growth.from_run, config.model)
        config.model = grow.target
        log(
            f"growing {grow.path} ({grow.config.model.n_layers} layers, {grow.checkpoint.name}) "
            f"{grow.factor}x deeper to {grow.target.n_layers} layers by stacking its blocks; "
            "the optimizer starts fresh"
        )
    tokenizer = grow.tokenizer if grow else None  # a grown run keeps the small run's tokenizer
    if resume and config.growth.from_run:
        tokenizer = run_dir / TOKENIZER_FILE
    t0 = time.perf_counter()
    dataset = open_data(config, tokenizer=tokenizer, log=log)
    if config.model.size == AUTO_SIZE and parse_budget(config.budget).kind == "steps":
        config.model.size = ModelConfig().size  # steps fix no time, tokens or FLOPs to plan
        log(
            f"budget {config.budget} counts steps, which fix no time, tokens or FLOPs to size a "
            f"model for: training the default model ({config.model.size}); pass --model to choose"
        )
    elif config.model.size == AUTO_SIZE:
        planned, planned_config, law_name = plan_run(
            config, dataset, log=log, spent_seconds=time.perf_counter() - started_at
        )
        log(plan_table(planned, law_name))
        config = planned_config
    data = from_dataset(dataset, config.data.weights)
    return run_training(
        config,
        data,
        dataset.path / TOKENIZER_FILE,
        run_dir,
        log,
        data_seconds=time.perf_counter() - t0,
        started_at=started_at,
        init=grow.init if grow else None,
        extra_evaluation=arith_evaluation(dataset.tokenizer, [dataset]),
        start_fields=grow.start_fields() if grow else None,
    )
