"""budgetlm's public functions, one per command. Each is its workflow's own function
(workflows/), re-exported here so that Python callers and the CLI take the same path; only
`prepare` and `report` are thin wrappers over the one function of data/ or report/ that does
the work. See ARCHITECTURE.md for the map."""

from __future__ import annotations

from pathlib import Path

from budgetlm.config import RunConfig
from budgetlm.data.config import CleaningConfig
from budgetlm.data.feed.mixture_file import mixture_weights
from budgetlm.data.prepare.build import prepare_dataset
from budgetlm.io import Log
from budgetlm.job.run import RunResult
from budgetlm.report.build import ReportFiles, make_report
from budgetlm.workflows.average import average
from budgetlm.workflows.continual.train import continue_pretraining
from budgetlm.workflows.evaluate import evaluate
from budgetlm.workflows.export import export
from budgetlm.workflows.generate import generate
from budgetlm.workflows.mix.sampling import SearchSettings
from budgetlm.workflows.mix.search import mix_search
from budgetlm.workflows.plan import plan
from budgetlm.workflows.pretrain import pretrain
from budgetlm.workflows.scale.sweep import SweepResult, scale
from budgetlm.workflows.select import select_data as select
from budgetlm.workflows.trained import load_model, load_tokenizer


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
    "RunConfig",
    "RunResult",
    "SearchSettings",
    "SweepResult",
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
    "plan",
    "scale",
    "report",
    "average",
]
