"""Decide once, before a training job starts, what the saved config leaves open: the model's
vocabulary (from the tokenizer), the micro-batch that fits this device's memory, whether to
shard, and the settings that depend on this machine (threads, precision, compilation,
evaluation's share of a time budget, and the step time a time budget is first planned from).
Machine settings are measured on the device the job uses (machine/); every decision is written
into the run config that is saved with the run."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from budgetlm.budget.overheads import checkpoint_seconds, evaluation_count, fit_eval_tokens
from budgetlm.budget.spec import Budget
from budgetlm.config import RunConfig
from budgetlm.data.store.tokenizer import Tokenizer
from budgetlm.errors import UserError
from budgetlm.io import Log
from budgetlm.machine.cache import default_measurements_file
from budgetlm.machine.compile import compile_cost, decide_compile
from budgetlm.machine.fingerprint import describe_machine
from budgetlm.machine.precision import PrecisionChoice, choose_precision
from budgetlm.machine.throughput import Throughput, measure_throughput
from budgetlm.model.config import HF_BACKEND
from budgetlm.model.flops import count_parameters
from budgetlm.train.distributed import Distributed, broadcast
from budgetlm.train.memory import (
    PROBE_MARGIN,
    activation_bytes,
    activation_value_bytes,
    available_bytes,
    fit_micro_batch,
    measured_sequence_bytes,
    optimizer_step_bytes,
    state_bytes,
)
from budgetlm.train.optim import choose_optimizer
from budgetlm.train.precision import autocast
from budgetlm.train.sharding import PARALLEL_MODES


@dataclass
class JobSettings:
    """What was decided for this job and the estimates its budget is first planned from."""

    precision: PrecisionChoice
    compile: bool
    compile_reason: str
    machine: str
    step_seconds: float | None = None
    """One optimizer step (all its micro-batches), measured before training; None unless the
    budget is a time."""
    estimated_overhead: dict[str, float] = field(default_factory=dict)
    eval_tokens_requested: int | None = None
    """eval.tokens_per_domain before it was shrunk to evaluation's share (None: not shrunk)."""

    def start_fields(self) -> dict[str, Any]:
        """For the run's start record."""
        p = self.precision
        measured = {
            name: t.seconds_per_step for name, t in (("fp32", p.fp32), ("bf16", p.bf16)) if t
        }
        return {
            "machine": self.machine,
            "precision_choice": {"reason": p.reason, "seconds_per_step": measured},
            "compile": self.compile,
            "compile_reason": self.compile_reason,
            "estimated_step_seconds": self.step_seconds,
            "eval_tokens_requested": self.eval_tokens_requested,
        }


def probe_seconds(budget: Budget) -> float:
    """How long each precision's step is timed: a small share of a time budget, at least 0.2 s
    and at most 1 s; 0.25 s for other budgets."""
    if budget.kind == "seconds":
        return min(1.0, max(0.2, 0.004 * budget.amount))
    return 0.25


def decide_job_settings(
    config: RunConfig,
    budget: Budget,
    device: torch.device,
    dist: Distributed,
    domains: int,
    spent_seconds: float,
    log: Log,
    cache_file: Path | None = None,
) -> JobSettings:
    """Resolve train.precision and train.compile, and for a time budget fit eval.tokens_per_domain
    to eval.max_share of it, in `config` (resolved model); rank 0 decides for every rank."""
    cache_file = cache_file or default_measurements_file()
    train, seconds = config.train, probe_seconds(budget)
    choice = choose_precision(config.model, train, device, cache_file, seconds)
    choice = broadcast(choice, dist)
    train.precision = choice.precision
    log(choice.describe())
    time_budget = budget.amount if budget.kind == "seconds" else None
    cost = compile_cost(config.model, train.micro_batch_size, train.precision, device, cache_file)
    compile_on, compile_reason = decide_compile(
        train.compile, None if time_budget is None else time_budget - spent_seconds, cost
    )
    train.compile = broadcast(compile_on, dist)
    if train.compile:
        log(f"torch.compile on ({compile_reason})")
    settings = JobSettings(choice, train.compile, compile_reason, describe_machine(device))
    if time_budget is None:
        return settings
    measured = choice.measured or measure_throughput(
        config.model, train, device, seconds, cache_file=cache_file
    )
    accum = max(1, train.batch_size // dist.world_size // train.micro_batch_size)
    settings.step_seconds = broadcast(measured.seconds_per_step * accum, dist)
    forward = _forward_rate(measured)
    _fit_evaluation(config, settings, domains, time_budget, forward, log)
    settings.estimated_overhead = broadcast(_overhead_estimates(config, domains, forward), dist)
    return settings


def _forward_rate(measured: Throughput) -> float:
    """Forward-only tokens/s: measured, or three times the training rate (forward, backward)."""
    return measured.forward_tokens_per_second or 3 * measured.tokens_per_second


def _fit_evaluation(
    config: RunConfig,
    settings: JobSettings,
    domains: int,
    budget_seconds: float,
    forward_tokens_per_second: float,
    log: Log,
) -> None:
    """Shrink eval.tokens_per_domain so that evaluation takes at most eval.max_share."""
    ev = config.eval
    if ev.max_share >= 1 or domains == 0:
        return
    evaluations = evaluation_count(len(ev.fractions()))
    fitted = fit_eval_tokens(
        ev.tokens_per_domain, domains, evaluations, budget_seconds, forward_tokens_per_second,
        ev.max_share, config.model.seq_len,
    )  # fmt: skip
    if fitted < ev.tokens_per_domain:
        log(
            f"evaluation: {fitted:,} tokens per domain instead of {ev.tokens_per_domain:,}, so "
            f"that {evaluations} evaluations take at most {ev.max_share:.0%} of the budget "
            f"(eval.max_share) at the measured {forward_tokens_per_second:,.0f} tokens/s"
        )
        settings.eval_tokens_requested = ev.tokens_per_domain
        ev.tokens_per_domain = fitted


def _overhead_estimates(config: RunConfig, domains: int, forward: float) -> dict[str, float]:
    """Seconds of one evaluation, one checkpoint and the samples at the end, from the measured
    forward speed, until the run times them."""
    s = config.samples
    # one forward pass per generated token, of a single sequence: as slow per call as a full
    # row of the measured batch (measured 2.0 s for the default 480 calls, estimated 2.0 s)
    calls = s.prompts_per_domain * domains * s.max_new_tokens
    return {
        "eval": domains * config.eval.tokens_per_domain / forward,
        "checkpoint": checkpoint_seconds(count_parameters(config.model)["total"]),
        "end": calls * config.model.seq_len / forward,
    }


def trainer_autocast(config: RunConfig, device: torch.device) -> Callable:
    """The autocast context the trainer uses, for evaluations built outside it; a precision
    still 'auto' is decided here (measured, or cached), in `config`, as training will use it."""
    if config.train.precision == "auto":
        choice = choose_precision(
            config.model.resolved(), config.train, device, default_measurements_file(), 0.25
        )
        config.train.precision = choice.precision
    return lambda: autocast(device, config.train.precision)


def resolve_vocab(config: RunConfig, tokenizer: Tokenizer) -> None:
    """Size the model's vocabulary from the tokenizer (when the config leaves it open), take the
    document separator for document masking from it, and refuse a vocabulary smaller than the
    tokenizer's."""
    if config.model.document_mask and config.model.eos_id is None:
        config.model.eos_id = tokenizer.eos_id
    if not config.model.is_resolved():
        config.model = config.model.resolved(vocab_size=tokenizer.vocab_size)
    if config.model.vocab_size < tokenizer.vocab_size:
        raise UserError(
            f"model.vocab_size is {config.model.vocab_size} but the tokenizer has "
            f"{tokenizer.vocab_size} tokens; leave model.vocab_size unset"
        )


def resolve_optimizer(config: RunConfig, log: Log | None = None) -> None:
    """Decide train.optimizer 'auto' once, into the config that is saved (train/optim.py
    choose_optimizer: Muon from scratch, AdamW for a continued, transformers, LoRA or FSDP run)."""
    if config.train.optimizer != "auto":
        return
    continued = config.continual.from_run is not None
    chosen = choose_optimizer(config.train, config.model, continued)
    config.train.optimizer = chosen
    if log is not None:
        why = (
            "training from scratch" if chosen == "muon"
            else "continuing a model" if continued
            else "a transformers, LoRA or FSDP-sharded model"
        )  # fmt: skip
        log(f"optimizer {chosen} ({why}; set train.optimizer to choose)")


def use_sharding(config: RunConfig, distributed: bool) -> bool:
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


def fit_memory(
    config: RunConfig, model: torch.nn.Module, device: torch.device, processes: int, log: Log
) -> None:
    """Fit the job in this device's free memory, from an estimate of what each choice needs
    (weights, gradients and optimizer state of the trainable parameters, activations): the
    largest micro-batch that fits (the global batch stays, by accumulation); activation
    checkpointing when train.activation_checkpointing is auto and nothing fits without it.
    Says which and why; a UserError naming the smallest setting that would fit when nothing
    does."""
    train = config.train
    per_rank = train.batch_size // processes
    requested = min(train.micro_batch_size, per_rank)
    total = count_parameters(config.model)["total"]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    fixed = state_bytes(total, min(trainable, total))
    available = available_bytes(device)
    value_bytes = activation_value_bytes(train.precision)
    estimate = _activation_estimator(config, requested, fixed, available, value_bytes, log)
    recompute = bool(train.activation_checkpointing)
    if train.activation_checkpointing is None:
        one = fixed + estimate(False)
        recompute = available is not None and one > available
        if recompute:
            log(
                f"activation checkpointing on: one sequence per micro-batch needs "
                f"~{_gib(one)} GiB without it, ~{_gib(fixed + estimate(True))} GiB with it, "
                f"of the {_gib(available)} GiB free"
            )
        train.activation_checkpointing = recompute
    per_sequence = estimate(recompute)
    fitted = fit_micro_batch(requested, per_rank, per_sequence, fixed, available)
    if fitted != train.micro_batch_size and available is not None:
        log(
            f"train.micro_batch_size {train.micro_batch_size} would need "
            f"~{_gib(fixed + requested * per_sequence)} GiB of the "
            f"{_gib(available)} GiB free: using {fitted} and accumulating "
            f"{per_rank // fitted} micro-batches per step (the batch stays {train.batch_size})"
        )
        train.micro_batch_size = fitted
    step = optimizer_step_bytes(min(trainable, total), device)
    if available is not None and fixed + max(fitted * per_sequence, step) > available:
        raise UserError(
            f"training needs ~{_gib(fixed + max(per_sequence, step))} GiB (weights, gradients "
            f"and optimizer state ~{_gib(fixed)} GiB, then the larger of one sequence's "
            f"activations ~{_gib(per_sequence)} GiB and the optimizer step's temporaries "
            f"~{_gib(step)} GiB) "
            f"but {_gib(available)} GiB are free; {_smaller(config, total, recompute)}"
        )


def _activation_estimator(
    config: RunConfig, requested: int, fixed: int, available: int | None, value_bytes: int, log: Log
) -> Callable[[bool], int]:
    """Bytes of one sequence's activations, with or without recomputation: Korthikanti et al.'s
    formula while memory is plentiful, measured on fake tensors for this exact model once the
    formula's estimate comes within train/memory.PROBE_MARGIN of the memory free."""
    formula = functools.partial(activation_bytes, config.model, 1, value_bytes=value_bytes)
    plenty = available is None or fixed + PROBE_MARGIN * requested * formula(False) <= available
    if plenty:
        return lambda recompute: formula(recompute)
    measured: dict[bool, int] = {}

    def estimate(recompute: bool) -> int:
        if recompute not in measured:
            exact = measured_sequence_bytes(config.model, recompute, value_bytes)
            if exact is None:
                log("activation memory: the model does not run on fake tensors; using the formula")
            measured[recompute] = formula(recompute) if exact is None else exact
        return measured[recompute]

    return estimate


def _gib(n: float) -> str:
    """Bytes in GiB, to 0.01 GiB (about 10 MiB)."""
    return f"{n / 2**30:.2f}"


def _smaller(config: RunConfig, total: int, recompute: bool) -> str:
    """The smallest change that would cut the estimate most: LoRA for a transformers model
    trained in full, then activation checkpointing, then a shorter context or smaller model."""
    if config.model.backend == HF_BACKEND and config.model.adapter == "none":
        return (
            f"fix: --adapter lora (frozen weights cost ~{_gib(state_bytes(total, 0))} GiB "
            "instead), or a smaller model"
        )
    if not recompute:
        return "fix: --train.activation_checkpointing true, or a shorter model.seq_len"
    return "fix: a shorter model.seq_len (continual.seq_len), or a smaller model"
