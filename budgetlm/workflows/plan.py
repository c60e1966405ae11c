"""`budgetlm plan`: measure this machine, size the model and batch for a budget
(budget/sizing.py), and turn the recommendation into a run config `pretrain --config` runs."""

from __future__ import annotations

import copy
import dataclasses
import time
from pathlib import Path

from budgetlm.budget.overheads import checkpoint_count, evaluation_count
from budgetlm.budget.sizing import LossLaw, Overheads, Plan, make_plan
from budgetlm.budget.spec import parse_budget
from budgetlm.config import RunConfig, save_config
from budgetlm.data.prepare.cache import default_cache_dir
from budgetlm.data.store.dataset import PreparedDataset
from budgetlm.io import Log
from budgetlm.job.decide import resolve_optimizer
from budgetlm.machine.cache import default_measurements_file
from budgetlm.machine.device import resolve_device
from budgetlm.machine.precision import choose_precision
from budgetlm.machine.threads import fit_threads
from budgetlm.machine.throughput import measure_throughput
from budgetlm.model.config import MODEL_SIZES, ModelConfig
from budgetlm.workflows.data import open_data

FITTED_LAW = "scaling_law.json"
"""Where `budgetlm scale` leaves its fit for later plans (in the cache directory)."""
CPU_SIZES = ("nano", "micro", "tiny", "small", "medium")
"""Shapes worth measuring on a CPU; "base" (125M) is only considered on a GPU."""


def plan(
    config: RunConfig,
    out: str | Path | None = None,
    law: str | Path | None = None,
    log: Log = print,
) -> tuple[Plan, RunConfig]:
    """What to train with config.budget on this machine: measures candidate model sizes' speed
    (cached), sizes the model by a scaling law, picks batch and LR, prints the alternatives and
    writes the run config to `out` (for `budgetlm pretrain --config`)."""
    dataset = open_data(config, tokenizer=None, log=log)
    planned, planned_config, law_name = plan_run(config, dataset, law, log)
    log(plan_table(planned, law_name))
    if out is not None:
        save_config(planned_config, out)
        log(f"config written to {out}: run it with `budgetlm pretrain --config {out}`")
    return planned, planned_config


def plan_run(
    config: RunConfig,
    dataset: PreparedDataset,
    law_path: str | Path | None = None,
    log: Log = print,
    spent_seconds: float = 0.0,
) -> tuple[Plan, RunConfig, str]:
    """The plan for config.budget on this machine and the config that runs it (config with
    the chosen model size, batch and LR); also a description of the law used. A time budget
    also pays for `spent_seconds` already spent and for the measuring done here."""
    started = time.perf_counter()
    budget = parse_budget(config.budget)
    resolve_optimizer(config)  # the step times measured are those of the optimizer trained with
    _, threads_line = fit_threads()
    law, law_name = load_law(law_path, dataset.path)
    vocab = dataset.tokenizer.vocab_size
    device = resolve_device(config.train.device)
    names = [n for n in MODEL_SIZES if n in CPU_SIZES or device.type == "cuda"]
    sizes = [(n, ModelConfig(size=n, seq_len=config.model.seq_len).resolved(vocab)) for n in names]
    cache = default_measurements_file()
    seconds = 1.0 if config.train.precision == "auto" else 3.0  # two precisions to time

    def speed(size: str, model: ModelConfig) -> float:
        choice = choose_precision(model, config.train, device, cache, seconds)
        train = copy.copy(config.train)
        train.precision = choice.precision
        measured = choice.measured or measure_throughput(
            model, train, device, seconds, cache_file=cache
        )
        how = "cached" if measured.cached else f"measured over {measured.steps_timed} steps"
        if measured.busy:
            how += "; the CPU was busy with other work, so this understates it and is not cached"
        line = f"  {size}: {measured.tokens_per_second:,.0f} tokens/s in {choice.precision} ({how})"
        if choice.reason == "measured":
            other = choice.fp32 if choice.precision == "bf16" else choice.bf16
            other_name = "fp32" if choice.precision == "bf16" else "bf16"
            line += f"; {other_name} {other.tokens_per_second:,.0f}"
        log(line)
        return measured.tokens_per_second

    unique = sum(dataset.token_counts("train").values())
    log(f"measuring training speed on {device}, {threads_line} ({budget}; law: {law_name})")
    overheads = run_overheads(config, dataset)
    measuring = 10.0 if budget.kind == "seconds" else 0.0  # about what the sizes take to time
    spent = spent_seconds + measuring + time.perf_counter() - started
    overheads = dataclasses.replace(overheads, setup_seconds=overheads.setup_seconds + spent)
    plan = make_plan(budget, sizes, speed, law, overheads, unique)
    planned = copy.deepcopy(config)
    planned.model = ModelConfig(size=plan.chosen.size, seq_len=config.model.seq_len)
    planned.train.batch_size = plan.batch_size
    planned.train.micro_batch_size = min(plan.batch_size, config.train.micro_batch_size)
    planned.train.lr = plan.lr
    planned.train.schedule = plan.schedule
    return plan, planned, law_name


def load_law(path: str | Path | None, data: Path | None = None) -> tuple[LossLaw, str]:
    """The law given, else the one `budgetlm scale` left in the cache when it was fitted on the
    same prepared data (a law of other data or another tokenizer would rank sizes by the wrong
    losses), else Chinchilla's."""
    from budgetlm.budget.scaling_law import CHINCHILLA, ScalingLaw

    if path is not None:
        return ScalingLaw.load(path), str(path)
    fitted = default_cache_dir() / FITTED_LAW
    if fitted.is_file():
        law = ScalingLaw.load(fitted)
        fitted_on = law.extra.get("data")
        if data is None or (fitted_on and Path(fitted_on).resolve() == Path(data).resolve()):
            return law, f"fitted on your runs ({fitted})"
    return CHINCHILLA, "Chinchilla (Hoffmann et al. 2022), for choosing only"


def run_overheads(config: RunConfig, dataset: PreparedDataset) -> Overheads:
    """Forward-pass tokens of the run's evaluations and samples, and its checkpoint count."""
    val = dataset.token_counts("val")
    per_eval = sum(min(n, config.eval.tokens_per_domain) for n in val.values())
    evaluations = evaluation_count(len(config.eval.fractions()))
    new = config.samples.max_new_tokens
    context = min(config.model.seq_len, 12 + new / 2)  # prompt plus half the generated text
    samples = config.samples.prompts_per_domain * len(val) * new * context
    checkpoints = checkpoint_count(config.checkpoint.every, config.checkpoint.pre_decay)
    return Overheads(
        per_eval * evaluations, int(samples), checkpoints, eval_share=config.eval.max_share
    )


def plan_table(plan: Plan, law_name: str) -> str:
    """The alternatives as a text table, the chosen one marked."""
    rows = [
        f"{'':2}{'size':8}{'params':>9}{'tokens/s':>11}{'tokens':>10}{'epochs':>8}"
        f"{'pred. loss':>11}{'time':>9}"
    ]
    for c in plan.candidates:
        mark = "->" if c is plan.chosen else ""
        epochs = f"{c.epochs:.2f}" if c.epochs is not None else "-"
        rows.append(
            f"{mark:2}{c.size:8}{c.parameters / 1e6:>8.2f}M{c.tokens_per_second:>11,.0f}"
            f"{c.tokens / 1e6:>9.2f}M{epochs:>8}{c.predicted_loss:>11.3f}"
            f"{_duration(c.seconds):>9}"
        )
    rows.append(
        f"recommended: {plan.chosen.size}, batch {plan.batch_size} sequences, peak LR "
        f"{plan.lr:g}, {plan.schedule} schedule, ~{_duration(plan.chosen.seconds)}"
        f" (predicted loss from {law_name})"
    )
    return "\n".join(rows + [f"warning: {w}" for w in plan.warnings])


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"
