"""One training job from assembled parts: creates (or resumes) the run directory, builds the
model, optimizer, sampler, schedule and budget controller, trains, writes samples and the end
record. `api.pretrain` and `api.continue_pretraining` differ only in the parts they pass."""

from __future__ import annotations

import io
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from budgetlm.budget.controller import BudgetController
from budgetlm.budget.spec import parse_budget
from budgetlm.config import RunConfig, save_config
from budgetlm.data.feed.sampler import MixtureSampler
from budgetlm.data.feed.streams import TrainingData
from budgetlm.data.store.tokenizer import TOKENIZER_FILE, Tokenizer
from budgetlm.errors import UserError
from budgetlm.evaluate.stability import continual_summary
from budgetlm.io import Log
from budgetlm.job.curriculum import build_curriculum
from budgetlm.job.samples import write_samples
from budgetlm.job.settings import JobSettings, decide_job_settings, trainer_autocast
from budgetlm.machine.cache import default_measurements_file
from budgetlm.machine.compile import measured_cost, record_compile_cost
from budgetlm.machine.device import resolve_device
from budgetlm.machine.threads import fit_threads
from budgetlm.model.decoder import Decoder
from budgetlm.model.flops import count_parameters, flops_per_token
from budgetlm.report.summary import summarize
from budgetlm.run.directory import new_run_dir
from budgetlm.run.files import CONFIG_FILE, METRICS_FILE, SAMPLES_FILE
from budgetlm.run.records import MetricsLog, NullMetrics, eval_records
from budgetlm.train.checkpoint import latest_checkpoint, list_checkpoints
from budgetlm.train.distributed import barrier, broadcast, init_distributed
from budgetlm.train.host_memory import reuse_freed_memory
from budgetlm.train.loop import Trainer
from budgetlm.train.memory import activation_bytes, available_bytes, fit_micro_batch, state_bytes
from budgetlm.train.optim import build_optimizer
from budgetlm.train.progress import Progress
from budgetlm.train.schedules import build_schedule
from budgetlm.train.sharding import PARALLEL_MODES, load_full_state, shard_model

Init = Callable[[Decoder, torch.optim.Optimizer], None]
ExtraEval = Callable[[torch.nn.Module], dict[str, Any]]


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
    extra_evaluation: Callable[[torch.device, Callable], ExtraEval] | None = None,
    start_fields: dict[str, Any] | None = None,
    started_at: float | None = None,
) -> RunResult:
    """Train `config.model` on `data` within `config.budget`; resume when `run_dir` is given.
    A new run's time budget also pays for the time since `started_at` (time.perf_counter() when
    the command started; default: `data_seconds` ago)."""
    t0 = time.perf_counter()
    command_start = started_at if started_at is not None else t0 - data_seconds
    threads, threads_line = fit_threads()
    resume = run_dir is not None
    budget = parse_budget(config.budget)
    tokenizer = Tokenizer.load(tokenizer_path)
    if not config.model.is_resolved():
        config.model = config.model.resolved(vocab_size=tokenizer.vocab_size)
    if config.model.vocab_size < tokenizer.vocab_size:
        raise UserError(
            f"model.vocab_size is {config.model.vocab_size} but the tokenizer has "
            f"{tokenizer.vocab_size} tokens; leave model.vocab_size unset"
        )
    device = resolve_device(config.train.device)
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
    model = Decoder(config.model).to(device)
    _fit_micro_batch(config, device, dist.world_size, log)
    optimizer = build_optimizer(model, config.train)
    if init is not None and not resume:
        init(model, optimizer)
    sharded = _use_sharding(config, dist.enabled)
    log(threads_line)
    spent = 0.0 if resume else time.perf_counter() - command_start
    settings = decide_job_settings(  # recorded in the saved config as decided
        config, budget, device, dist, len(data.val), spent, log
    )
    if sharded:
        model, optimizer = _shard(model, optimizer, config)
    sampler = MixtureSampler(
        data.train,
        config.model.seq_len,
        data.weights,
        config.train.seed,
        max_epochs=config.data.max_epochs,
        schedule=config.data.schedule,
    )
    curriculum = build_curriculum(  # skill curricula (Skill-it); None unless data.curriculum
        config, sampler, data.train, data.val, model, device, trainer_autocast(config, device),
        dist, sharded,
    )  # fmt: skip
    tokens_per_step = config.train.batch_size * config.model.seq_len
    controller = BudgetController(
        budget,
        tokens_per_step,
        flops_per_token(config.model) * tokens_per_step,
        estimated_step_seconds=settings.step_seconds,
        estimated_overhead=settings.estimated_overhead,
    )
    schedule = build_schedule(
        config.train.schedule,
        config.train.warmup_fraction,
        config.train.decay_fraction,
        config.train.min_lr_ratio,
        config.train.decay_shape,
    )
    controller.initial_total()  # a token/FLOP budget too small for one step fails here
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
            host_model=(lambda: Decoder(config.model)) if sharded else None,
            after_step=curriculum.after_step if curriculum else None,
            spent_seconds=0.0 if resume else time.perf_counter() - command_start,
        )
        if resume:
            restore_latest(trainer, run_dir, log)
        params = count_parameters(config.model)
        metrics.write(
            "resume" if resume else "start",
            step=trainer.state.step,
            budget=str(budget),
            model_size=config.model.size,
            parameters=params,
            flops_per_token=flops_per_token(config.model),
            tokens_per_step=tokens_per_step,
            device=str(device),
            precision=config.train.precision,
            threads=threads,
            processes=dist.world_size,
            data=data.datasets,
            weights=sampler.weights,
            train_tokens={d: len(s) for d, s in data.train.items()},
            unigram_entropy=data.unigram_entropy,
            new_domains=data.new_domains,
            old_domains=data.old_domains,
            **settings.start_fields(),
            **(start_fields or {}),
        )
        if curriculum is not None:  # the skills graph (maybe from probe runs paid from the budget)
            budget = controller.budget = curriculum.start(
                run_dir, trainer.state.step, budget, controller, metrics, log
            )
        setup_seconds = time.perf_counter() - t0
        log(
            f"training {config.model.size} ({params['total']:,} parameters) on "
            f"{', '.join(data.domains)} for {budget} on {device} -> {run_dir}"
        )
        result = trainer.run()
    except BaseException:
        if created and not list_checkpoints(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing worth keeping yet
        raise
    barrier(dist)
    s = result.state
    if dist.is_main:
        _record_compile(config, settings, controller, device)
    full_model = trainer.unsharded_model()  # a collective when sharded
    if not dist.is_main:
        return RunResult(run_dir, result.val_loss, s.step, s.tokens, result.tokens_per_second, "")
    t0 = time.perf_counter()
    sample_device = torch.device("cpu") if sharded else device
    write_samples(full_model, tokenizer, data, config, run_dir / SAMPLES_FILE, sample_device)
    sample_seconds = time.perf_counter() - t0
    metrics.write(
        "end",
        steps=s.step,
        tokens=s.tokens,
        val_loss=result.val_loss,
        tokens_per_s=result.tokens_per_second,
        flops=s.step * controller.flops_per_step,
        seconds=dict(s.seconds, data=data_seconds, setup=setup_seconds, samples=sample_seconds),
    )
    if config.continual.from_run:  # a continual run: the gap, and forgetting if measurable
        evals = eval_records(run_dir)
        reference = (start_fields or {}).get("parent_final_val_loss")
        summary = continual_summary(evals, data.new_domains, data.old_domains, reference)
        metrics.write("continual", **summary)
    metrics.close()
    summary = summarize(run_dir)
    log(summary)
    return RunResult(run_dir, result.val_loss, s.step, s.tokens, result.tokens_per_second, summary)


def _record_compile(
    config: RunConfig, settings: JobSettings, controller: BudgetController, device: torch.device
) -> None:
    """After a compiled run, keep what compiling cost and bought here for the next decision."""
    if not settings.compile or settings.step_seconds is None:
        return
    cost = measured_cost(controller.step_seconds, settings.step_seconds)
    if cost is not None:
        train = config.train
        record_compile_cost(config.model, train.micro_batch_size, train.precision, device,
                            default_measurements_file(), cost)  # fmt: skip


def _use_sharding(config: RunConfig, distributed: bool) -> bool:
    """Whether to shard the model with FSDP2: train.parallel 'fsdp' under torchrun (a single
    process has nothing to shard across)."""
    mode = config.train.parallel
    if mode not in PARALLEL_MODES:
        raise UserError(f"train.parallel must be one of {', '.join(PARALLEL_MODES)}, got '{mode}'")
    if mode == "fsdp" and config.train.optimizer != "adamw":
        raise UserError(
            f"train.parallel fsdp works with train.optimizer adamw only, not "
            f"'{config.train.optimizer}' (Muon orthogonalizes whole matrices, which sharding "
            "splits); use train.parallel ddp with Muon"
        )
    return mode == "fsdp" and distributed


def _shard(
    model: Decoder, optimizer: torch.optim.Optimizer, config: RunConfig
) -> tuple[Decoder, torch.optim.Optimizer]:
    """Shard the (initialised) model across ranks, and rebuild the optimizer over the shards,
    carrying over any state an init loaded into it."""
    state = optimizer.state_dict()
    shard_model(model)
    optimizer = build_optimizer(model, config.train)
    load_full_state(model, optimizer, None, state)
    return model, optimizer


def _fit_micro_batch(config: RunConfig, device: torch.device, processes: int, log: Log) -> None:
    """Lower train.micro_batch_size when the requested one would not fit in this device's free
    memory (the global batch stays, by accumulation), and say so."""
    train = config.train
    per_rank = train.batch_size // processes
    requested = min(train.micro_batch_size, per_rank)
    fixed = state_bytes(count_parameters(config.model)["total"])
    per_sequence = activation_bytes(config.model, 1)
    available = available_bytes(device)
    fitted = fit_micro_batch(requested, per_rank, per_sequence, fixed, available)
    if fitted != train.micro_batch_size and available is not None:
        log(
            f"train.micro_batch_size {train.micro_batch_size} would need "
            f"~{(fixed + requested * per_sequence) / 2**30:.1f} GiB of the "
            f"{available / 2**30:.1f} GiB free: using {fitted} and accumulating "
            f"{per_rank // fitted} micro-batches per step (the batch stays {train.batch_size})"
        )
        train.micro_batch_size = fitted
    if available is not None and fixed + fitted * per_sequence > available:
        log(
            f"warning: even one sequence per micro-batch needs ~"
            f"{(fixed + per_sequence) / 2**30:.1f} GiB, more than the {available / 2**30:.1f} GiB "
            "free; use a smaller --model or model.seq_len"
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
