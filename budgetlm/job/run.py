"""One training job, in four steps read top to bottom in `run_training`: decide what the config
leaves open (decide.py), build the parts (build.py), train (train/loop.py) in a new or resumed
run directory, and finish (finish.py: samples, end record, summary). The pretrain and continue
workflows differ only in the parts they pass (data, init, extra evaluation, start fields)."""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from budgetlm.budget.sizing import EPOCH_WARNING
from budgetlm.budget.spec import parse_budget
from budgetlm.config import RunConfig, save_config
from budgetlm.data.feed.streams import TrainingData
from budgetlm.data.store.tokenizer import TOKENIZER_FILE, Tokenizer
from budgetlm.errors import UserError
from budgetlm.evaluate.arith import EvaluationBuilder
from budgetlm.io import Log
from budgetlm.job.build import (
    build_controller,
    build_lr_schedule,
    build_sampler,
    shard,
    validation_bytes_per_token,
)
from budgetlm.job.curriculum import build_curriculum
from budgetlm.job.decide import (
    decide_job_settings,
    fit_memory,
    resolve_optimizer,
    resolve_vocab,
    trainer_autocast,
    use_sharding,
)
from budgetlm.job.finish import finish_run, record_compile
from budgetlm.job.finish import start_fields as job_start_fields
from budgetlm.machine.device import resolve_device
from budgetlm.machine.threads import fit_threads
from budgetlm.model.build import LanguageModel, build_model
from budgetlm.run.directory import new_run_dir
from budgetlm.run.files import CONFIG_FILE, METRICS_FILE
from budgetlm.run.records import MetricsLog, NullMetrics
from budgetlm.train.checkpoint import latest_checkpoint, list_checkpoints
from budgetlm.train.distributed import barrier, broadcast, init_distributed
from budgetlm.train.host_memory import reuse_freed_memory
from budgetlm.train.loop import StepRule, Trainer
from budgetlm.train.optim import build_optimizer
from budgetlm.train.progress import Progress
from budgetlm.train.recompute import checkpoint_blocks

Init = Callable[[LanguageModel, torch.optim.Optimizer], None]


@dataclass
class RunResult:
    """What a training job produced."""

    run_dir: Path
    val_loss: dict[str, float]
    steps: int
    tokens: int
    tokens_per_second: float
    summary: str


def run_training(
    config: RunConfig,
    data: TrainingData,
    tokenizer_path: Path,
    run_dir: Path | None,
    log: Log,
    data_seconds: float = 0.0,
    init: Init | None = None,
    extra_evaluation: EvaluationBuilder | None = None,
    start_fields: dict[str, Any] | None = None,
    started_at: float | None = None,
    step_rule: Callable[[torch.nn.Module], StepRule] | None = None,
) -> RunResult:
    """Train `config.model` on `data` within `config.budget`; resume when `run_dir` is given.
    A new run's time budget also pays for the time since `started_at` (time.perf_counter() when
    the command started; default: `data_seconds` ago). `step_rule(model)` builds what the
    trainer calls around each optimizer step (new vocabulary rows' rules)."""
    t0 = time.perf_counter()
    command_start = started_at if started_at is not None else t0 - data_seconds
    threads, threads_line = fit_threads()
    resume = run_dir is not None
    budget = parse_budget(config.budget)
    tokenizer = Tokenizer.load(tokenizer_path)
    # decide what the config leaves open, once (written into the saved config)
    resolve_vocab(config, tokenizer)
    device = resolve_device(config.train.device)
    resolve_optimizer(config, None if resume else log)
    dist = init_distributed(device)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
    if device.type == "cpu" and config.train.reuse_host_memory:
        reuse_freed_memory()
    if not dist.is_main:
        log = _silent  # rank 0 speaks for the job
    if run_dir is None:
        run_dir = broadcast(new_run_dir(config), dist)  # one run directory for all ranks
    torch.manual_seed(config.train.seed)
    model = build_model(config.model).to(device)
    fit_memory(config, model, device, dist.world_size, log)
    optimizer = build_optimizer(model, config.train)
    if init is not None and not resume:
        init(model, optimizer)
    if config.train.activation_checkpointing:
        checkpoint_blocks(model)
    sharded = use_sharding(config, dist.enabled)
    log(threads_line)
    spent = 0.0 if resume else time.perf_counter() - command_start
    settings = decide_job_settings(config, budget, device, dist, len(data.val), spent, log)
    # build the parts
    if sharded:
        model, optimizer = shard(model, optimizer, config)
    sampler = build_sampler(config, data)
    curriculum = build_curriculum(  # skill curricula (Skill-it); None unless data.curriculum
        config, sampler, data.train, data.val, model, device, trainer_autocast(config, device),
        dist, sharded,
    )  # fmt: skip
    controller = build_controller(config, budget, settings)
    schedule = build_lr_schedule(config)
    planned_steps = controller.initial_total()  # a token/FLOP budget too small fails here
    exact = budget.kind != "seconds" or settings.step_seconds is not None
    if config.continual.from_run and not resume and exact:
        warn_repeated_data(config, data, sampler.weights, planned_steps, log)
    compression = validation_bytes_per_token(config, data, tokenizer)
    # train
    created = not resume and dist.is_main
    try:
        if created:
            run_dir.mkdir(parents=True)
            save_config(config, run_dir / CONFIG_FILE)
            tokenizer.save(run_dir / TOKENIZER_FILE)
        barrier(dist)
        metrics = MetricsLog(run_dir / METRICS_FILE) if dist.is_main else NullMetrics()
        trainer = Trainer(
            model,
            optimizer,
            sampler,
            schedule,
            controller,
            data.val,
            run_dir,
            config.train,
            config.eval,
            config.checkpoint,
            metrics,
            Progress() if dist.is_main else Progress(io.StringIO()),
            device,
            config.model.seq_len,
            extra_evaluation=extra_evaluation(device, trainer_autocast(config, device))
            if extra_evaluation
            else None,
            guard=config.guard,
            dist=dist,
            host_model=(lambda: build_model(config.model)) if sharded else None,
            after_step=curriculum.after_step if curriculum else None,
            spent_seconds=0.0 if resume else time.perf_counter() - command_start,
            bytes_per_token=compression,
            step_rule=step_rule(model) if step_rule else None,
        )
        if resume:
            restore_latest(trainer, run_dir, log)
        fields = job_start_fields(
            config, data, budget, device, threads, dist.world_size, sampler, settings,
            {"bytes_per_token": compression, **(start_fields or {})},
        )  # fmt: skip
        metrics.write("resume" if resume else "start", step=trainer.state.step, **fields)
        if curriculum is not None:  # the skills graph (maybe from probe runs paid from the budget)
            budget = controller.budget = curriculum.start(
                run_dir, trainer.state.step, budget, controller, metrics, log
            )
        setup_seconds = time.perf_counter() - t0
        log(
            f"training {config.model.size} ({fields['parameters']['total']:,} parameters) on "
            f"{', '.join(data.domains)} for {budget} on {device} -> {run_dir}"
        )
        result = trainer.run()
    except BaseException:
        if created and not list_checkpoints(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing worth keeping yet
        raise
    # finish
    barrier(dist)
    s = result.state
    if dist.is_main:
        record_compile(config, settings, controller, device)
    full_model = trainer.unsharded_model()  # a collective when sharded
    if not dist.is_main:
        return RunResult(run_dir, result.val_loss, s.step, s.tokens, result.tokens_per_second, "")
    summary = finish_run(
        run_dir,
        config,
        data,
        result,
        full_model,
        tokenizer,
        torch.device("cpu") if sharded else device,
        metrics,
        controller,
        {"data": data_seconds, "setup": setup_seconds},
        (start_fields or {}).get("parent_final_val_loss"),
        compression,
        (start_fields or {}).get("parent_final_val_bpb"),
    )
    log(summary)
    return RunResult(run_dir, result.val_loss, s.step, s.tokens, result.tokens_per_second, summary)


def warn_repeated_data(
    config: RunConfig,
    data: TrainingData,
    weights: dict[str, float],
    steps: int,
    log: Log,
) -> None:
    """Say when the planned run would see a domain's training data more than EPOCH_WARNING
    times: a continual run on a small new domain keeps training past its best loss without
    more data (Muennighoff et al., 2023, "Scaling Data-Constrained Language Models")."""
    tokens = steps * config.train.batch_size * config.model.seq_len
    for domain, weight in weights.items():
        available = len(data.train.get(domain, ()))
        epochs = tokens * weight / available if available else 0.0
        if epochs > EPOCH_WARNING:
            log(
                f"warning: the planned {steps:,} steps would see the {available:,} training "
                f"tokens of {domain} {epochs:.1f} times (more than ~"
                f"{EPOCH_WARNING:g} epochs adds little and may overfit); "
                + (
                    "replay more data with --replay SOURCES, or lower --replay-ratio"
                    if domain in data.old_domains
                    else f"add {domain} data, lower the budget, or raise --replay-ratio"
                )
            )


def _silent(_message: str) -> None:
    """The log of ranks other than 0."""


def restore_latest(trainer: Trainer, run_dir: Path, log: Log) -> None:
    """Load the newest intact checkpoint of a killed run into the trainer."""
    found = latest_checkpoint(run_dir, log)
    if found is None:
        log(f"{run_dir} has no checkpoint yet; starting it from step 0")
        return
    path, state = found
    if "final" in state.get("tags", []):
        raise UserError(
            f"run {run_dir} already finished at step {state['step']}; nothing to resume"
        )
    trainer.restore(path, state)
    log(f"restored {path.name} (step {state['step']})")
