"""`budgetlm report`: read runs, check they can be compared, and write the HTML page, the
PNG plots and the Markdown table."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from budgetlm.errors import UserError
from budgetlm.report.markdown import markdown_table
from budgetlm.report.page import render_page
from budgetlm.report.plots import build_figures
from budgetlm.report.png import write_pngs
from budgetlm.report.rundata import Run, load_run
from budgetlm.run.files import REPORT_FILE


@dataclass
class ReportFiles:
    """What `make_report` wrote (and the Markdown table, written or not)."""

    html: Path
    figures: list[str]
    """Ids of the figures on the page (and of the PNG files)."""
    pngs: list[Path] = field(default_factory=list)
    markdown: str = ""
    markdown_path: Path | None = None


def make_report(
    run_dirs: list[str | Path],
    out: str | Path | None = None,
    png_dir: str | Path | None = None,
    markdown: str | Path | None = None,
    peak_flops: float | None = None,
) -> ReportFiles:
    """Write the HTML report of one run (default RUN/report.html) or of several compared
    (default ./compare-A-B.html); PNG plots into `png_dir`; the Markdown table of final numbers
    into `markdown` ('-' only returns it, for printing)."""
    if not run_dirs:
        raise UserError("report needs at least one run directory: budgetlm report RUN [RUN2 ...]")
    if peak_flops is not None and not peak_flops > 0:
        raise UserError(f"--peak-flops must be a positive FLOP/s figure, got {peak_flops}")
    if markdown is not None and str(markdown) != "-" and Path(markdown).is_dir():
        raise UserError(
            f"--markdown {markdown} is a directory; give a file name (notes.md), or put "
            "--markdown after the run directories to print the table"
        )
    resolved = [Path(p).resolve() for p in run_dirs]
    twice = sorted({str(p) for p in resolved if resolved.count(p) > 1})
    if twice:
        raise UserError(f"run {twice[0]} is given twice; name each run once")
    runs = [load_run(p) for p in run_dirs]
    if len(runs) > 1:
        check_same_tokenizer(runs)
    figures = build_figures(runs, peak_flops)
    html_path = Path(out) if out else default_path(runs)
    if html_path.is_dir():
        html_path = html_path / REPORT_FILE
    write_atomic(html_path, render_page(runs, figures, peak_flops))
    files = ReportFiles(html=html_path, figures=[f.id for f in figures])
    if png_dir is not None:
        files.pngs = write_pngs(figures, png_dir)
    if markdown is not None:
        files.markdown = markdown_table(runs, peak_flops)
        if str(markdown) != "-":
            files.markdown_path = Path(markdown)
            write_atomic(files.markdown_path, files.markdown)
    return files


def check_same_tokenizer(runs: list[Run]) -> None:
    """Losses in nats/token compare only between runs that split text into the same tokens."""
    first = runs[0]
    for run in runs:
        if run.tokenizer_fingerprint is None:
            raise UserError(
                f"run {run.path} has no tokenizer.json, so it cannot be checked to share a "
                "tokenizer with the other runs; copy the tokenizer it was trained with into it, "
                "or report on it alone"
            )
    for run in runs[1:]:
        if run.tokenizer_fingerprint != first.tokenizer_fingerprint:
            raise UserError(
                f"runs {first.path} and {run.path} were trained with different tokenizers "
                f"(fingerprints {first.tokenizer_fingerprint[:12]} and "
                f"{run.tokenizer_fingerprint[:12]}): their losses per token do not compare; "
                "compare runs that share a tokenizer (prepare the data with --tokenizer), or "
                "report on each run alone"
            )


def default_path(runs: list[Run]) -> Path:
    """RUN/report.html for one run; ./compare-NAME1-NAME2(...).html for several."""
    if len(runs) == 1:
        return runs[0].path / REPORT_FILE
    names = "-".join(re.sub(r"[^A-Za-z0-9_.]+", "_", r.name) for r in runs)
    return Path(f"compare-{names[:120]}.html")


def write_atomic(path: Path, text: str) -> None:
    """Write through a temporary file and rename it into place: never a half-written page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
