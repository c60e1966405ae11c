"""What a training job writes about itself: the start (or resume) record, and after training
the samples, the end record, a continual run's stability-gap and forgetting record, the
printed summary, and what compiling cost here (for the next run's decision)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from budgetlm.budget.controller import BudgetController
from budgetlm.budget.spec import Budget
from budgetlm.config import RunConfig
from budgetlm.data.feed.sampler import MixtureSampler
from budgetlm.data.feed.streams import TrainingData
from budgetlm.data.store.tokenizer import Tokenizer
from budgetlm.evaluate.bpb import bits_per_byte
from budgetlm.evaluate.stability import continual_summary
from budgetlm.job.decide import JobSettings
from budgetlm.job.samples import write_samples
from budgetlm.machine.cache import default_measurements_file
from budgetlm.machine.compile import measured_cost, record_compile_cost
from budgetlm.model.build import LanguageModel
from budgetlm.model.flops import count_parameters, flops_per_token
from budgetlm.report.summary import summarize
from budgetlm.run.files import SAMPLES_FILE
from budgetlm.run.records import eval_records
from budgetlm.train.loop import Metrics, TrainResult


def start_fields(
    config: RunConfig,
    data: TrainingData,
    budget: Budget,
    device: torch.device,
    threads: int,
    processes: int,
    sampler: MixtureSampler,
    settings: JobSettings,
    extra: dict[str, Any] | None,
) -> dict[str, Any]:
    """The fields of the start (or resume) record: what is trained, on what data, for which
    budget, on which machine, as decided; `extra` adds the workflow's own (parent, growth)."""
    tokens_per_step = config.train.batch_size * config.model.seq_len
    return dict(
        budget=str(budget),
        model_size=config.model.size,
        parameters=count_parameters(config.model),
        flops_per_token=flops_per_token(config.model),
        tokens_per_step=tokens_per_step,
        device=str(device),
        precision=config.train.precision,
        threads=threads,
        processes=processes,
        data=data.datasets,
        weights=sampler.weights,
        train_tokens={d: len(s) for d, s in data.train.items()},
        unigram_entropy=data.unigram_entropy,
        new_domains=data.new_domains,
        old_domains=data.old_domains,
        **settings.start_fields(),
        **(extra or {}),
    )


def finish_run(
    run_dir: Path,
    config: RunConfig,
    data: TrainingData,
    result: TrainResult,
    model: LanguageModel,
    tokenizer: Tokenizer,
    sample_device: torch.device,
    metrics: Metrics,
    controller: BudgetController,
    seconds: dict[str, float],
    parent_final_val_loss: dict[str, float] | None,
    bytes_per_token: dict[str, float | None] | None = None,
    parent_final_val_bpb: dict[str, float] | None = None,
) -> str:
    """Write samples.txt, the end record (with where the time went: `seconds` adds data and
    setup to the trainer's own; bits per byte from each domain's `bytes_per_token`), a
    continual run's gap/forgetting record, in nats and in bits per byte; returns the summary."""
    t0 = time.perf_counter()
    write_samples(model, tokenizer, data, config, run_dir / SAMPLES_FILE, sample_device)
    sample_seconds = time.perf_counter() - t0
    s = result.state
    metrics.write(
        "end",
        steps=s.step,
        tokens=s.tokens,
        val_loss=result.val_loss,
        val_bpb=bits_per_byte(result.val_loss, bytes_per_token or {}),
        tokens_per_s=result.tokens_per_second,
        flops=s.step * controller.flops_per_step,
        seconds=dict(s.seconds, **seconds, samples=sample_seconds),
    )
    if config.continual.from_run:  # a continual run: the gap, and forgetting if measurable
        evals = eval_records(run_dir)
        summary = continual_summary(
            evals, data.new_domains, data.old_domains, parent_final_val_loss
        )
        if all("val_bpb" in r for r in evals):
            summary["bpb"] = continual_summary(
                evals, data.new_domains, data.old_domains, parent_final_val_bpb, "val_bpb"
            )
        metrics.write("continual", **summary)
    metrics.close()
    return summarize(run_dir)


def record_compile(
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
