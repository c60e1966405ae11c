"""budgetlm's public functions, one per command: each delegates to its workflow (workflows/),
so that Python callers and the CLI take the same path. See ARCHITECTURE.md for the map."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from budgetlm.budget.sizing import Plan
from budgetlm.config import RunConfig
from budgetlm.data.config import CleaningConfig
from budgetlm.data.feed.mixture_file import mixture_weights as read_mixture_weights
from budgetlm.data.prepare.build import prepare_dataset
from budgetlm.data.store.tokenizer import Tokenizer
from budgetlm.io import Log
from budgetlm.job.run import RunResult
from budgetlm.model.decoder import Decoder
from budgetlm.report.build import ReportFiles, make_report
from budgetlm.workflows import average as average_workflow
from budgetlm.workflows import evaluate as evaluate_workflow
from budgetlm.workflows import export as export_workflow
from budgetlm.workflows import generate as generate_workflow
from budgetlm.workflows import plan as plan_workflow
from budgetlm.workflows import pretrain as pretrain_workflow
from budgetlm.workflows import trained
from budgetlm.workflows.continual import train as continual_train
from budgetlm.workflows.mix import search as mix_search_workflow
from budgetlm.workflows.mix.sampling import SearchSettings
from budgetlm.workflows.scale import sweep
from budgetlm.workflows.scale.sweep import SweepResult
from budgetlm.workflows.select import select_data


def prepare(
    sources: list[str],
    out: str | Path,
    vocab_size: int = 4096,
    val_fraction: float = 0.05,
    text_field: str = "text",
    seed: int = 0,
    tokenizer: str | Path | None = None,
    cleaning: CleaningConfig | None = None,
    workers: int | None = None,
    log: Log = print,
) -> dict:
    """Turn text sources into a prepared dataset directory (or add sources to one, or finish
    an interrupted preparation); returns its manifest."""
    return prepare_dataset(
        sources,
        out,
        vocab_size=vocab_size,
        val_fraction=val_fraction,
        text_field=text_field,
        seed=seed,
        tokenizer=tokenizer,
        cleaning=cleaning,
        workers=workers,
        log=log,
    )


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
    return pretrain_workflow.pretrain(config, resume, log, settings, started_at)


def continue_pretraining(
    config: RunConfig,
    resume: bool = False,
    log: Log = print,
    settings: Sequence[tuple[str, Any]] = (),
    started_at: float | None = None,
) -> RunResult:
    """Train an existing model (a budgetlm run or a Hugging Face Llama/Mistral/Qwen2 folder)
    further on new data with a continual pre-training recipe (replay, LR re-warming, or
    continuing a pre-decay checkpoint), measuring the stability gap on the new domains and
    forgetting on the old ones."""
    return continual_train.continue_pretraining(config, resume, log, settings, started_at)


def load_model(run_dir: str | Path, device: str = "cpu") -> Decoder:
    """The trained model of a run (its newest valid checkpoint), in eval mode."""
    return trained.load_model(run_dir, device)


def export(run_dir: str | Path, out: str | Path) -> Path:
    """Write a run's trained model and tokenizer as a Hugging Face folder (Llama, or Qwen2 for
    models with q/k/v biases) that `transformers.AutoModelForCausalLM.from_pretrained` loads."""
    return export_workflow.export(run_dir, out)


def load_tokenizer(run_dir: str | Path) -> Tokenizer:
    """The tokenizer a run was trained with."""
    return trained.load_tokenizer(run_dir)


def generate(
    run_dir: str | Path,
    prompt: str,
    max_new_tokens: int = 200,
    temperature: float = 0.8,
    top_k: int | None = 50,
    seed: int = 0,
) -> str:
    """Continue `prompt` with a trained run's model; returns the new text only."""
    return generate_workflow.generate(run_dir, prompt, max_new_tokens, temperature, top_k, seed)


def evaluate(
    run_dir: str | Path,
    tasks: list[str] | None = None,
    data: list[str] | None = None,
    prepared: str | Path | None = None,
    limit: int | None = None,
    tokens_per_domain: int | None = None,
    log: Log = print,
) -> dict[str, Any]:
    """Evaluate a run's newest checkpoint: held-out loss per domain on the validation split of
    the data it trained on (or of `data` sources / a `prepared` dataset, tokenized with its
    tokenizer), all of it or `tokens_per_domain` tokens; exact-match accuracy on builtin:arith
    when present; lm-evaluation-harness `tasks` (at most `limit` items each) on the model in
    memory. Writes the result to the run's eval.json and returns it."""
    return evaluate_workflow.evaluate(run_dir, tasks, data, prepared, limit, tokens_per_domain, log)


select = select_data
"""`budgetlm select`: the workflow's function itself (workflows/select.py), so that its many
options are written once; see its docstring."""


def mix_search(
    config: RunConfig,
    target: str | list[str] | dict[str, float],
    out: str | Path,
    settings: SearchSettings | None = None,
    workers: int = 1,
    log: Log = print,
) -> dict[str, Any]:
    """Find the mixture of the data's domains that minimises the target's validation loss by
    regression over small proxy runs (RegMix; see workflows/mix/search.py): `config` is the
    proxies' run config (data, model size, token budget); resumable in `out`; writes and
    returns mix.json."""
    return mix_search_workflow.mix_search(config, target, out, settings, workers, log)


def plan(
    config: RunConfig,
    out: str | Path | None = None,
    law: str | Path | None = None,
    log: Log = print,
) -> tuple[Plan, RunConfig]:
    """What to train with config.budget on this machine: measures candidate model sizes' speed
    (cached), sizes the model by a scaling law, picks batch and LR, prints the alternatives and
    writes the run config to `out` (for `budgetlm pretrain --config`)."""
    return plan_workflow.plan(config, out, law, log)


def scale(
    config: RunConfig,
    sizes: list[str],
    budgets: list[str],
    out: str | Path,
    predict: list[str] | None = None,
    target: list[str] | None = None,
    workers: int = 1,
    bootstrap: int = 200,
    remember: bool = True,
    log: Log = print,
) -> SweepResult:
    """Train a sweep of `sizes` (presets or WIDTHxDEPTH shapes) x token/step `budgets` in
    `out` (finished runs reused), fit L(N, D) = E + A/N^alpha + B/D^beta to their final
    validation losses with bootstrap uncertainty, save OUT/scaling_law.json (and, if `remember`,
    in the cache for `budgetlm plan`), plot it and predict the `predict` SIZE:BUDGET runs."""
    return sweep.scale(
        config, sizes, budgets, out, predict, target, workers, bootstrap, remember, log
    )


def mixture_weights(path: str | Path) -> dict[str, float]:
    """The weights of a mix.json (checked to be non-negative and sum to one), for
    data.weights; the domains are checked against the data when a run opens it."""
    return read_mixture_weights(path)


def average(
    out: str | Path,
    run: str | Path | None = None,
    last: int | None = None,
    runs: list[str | Path] | None = None,
    log: Log = print,
) -> dict[str, Any]:
    """Write `out`, a run directory whose model is the uniform average of `run`'s last `last`
    checkpoints (all when None; LAWA), or of the final models of `runs` (a model soup); see
    workflows/average.py. Returns the record of what was averaged."""
    return average_workflow.average(out, run, last, runs, log)


def report(
    runs: list[str | Path],
    out: str | Path | None = None,
    png: str | Path | None = None,
    markdown: str | Path | None = None,
    peak_flops: float | None = None,
) -> ReportFiles:
    """Write a self-contained HTML report of one run (default RUN/report.html) or of several
    compared (same tokenizer required), built from the run directories' files alone; PNG plots
    into `png`; a Markdown table of the final numbers into `markdown` ('-': returned only).
    MFU is shown only against a measured `peak_flops` (FLOP/s)."""
    return make_report(runs, out=out, png_dir=png, markdown=markdown, peak_flops=peak_flops)


__all__ = [
    "RunResult",
    "prepare",
    "pretrain",
    "continue_pretraining",
    "generate",
    "load_model",
    "load_tokenizer",
    "export",
    "evaluate",
    "select",
    "mix_search",
    "mixture_weights",
    "scale",
    "report",
    "average",
]
