"""The commands over finished runs: `budgetlm report` (an HTML page of one run or several) and
`budgetlm average` (checkpoint averages and model soups, written as new runs)."""

from __future__ import annotations

import argparse
from typing import Any

from budgetlm.cli.flags import Overrides


def add_report(sub: Any, name: str, purpose: str) -> None:
    """`budgetlm report`: the HTML page (and PNG plots, Markdown table) of runs."""
    p = sub.add_parser(
        name,
        help=purpose,
        description="Write a self-contained HTML page (plots inline, nothing fetched to view "
        "it) of one run, or overlaying several runs trained with the same tokenizer: loss per "
        "domain against tokens and wall time, learning rate, throughput, budget use, mixture "
        "weights, stability gaps, rollbacks, checkpoints, evaluation results, samples and "
        "config, from the run directories' files alone.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    p.add_argument(
        "--out", metavar="PATH", help="the HTML file (default RUN/report.html; ./compare-*.html)"
    )
    p.add_argument(
        "--png", metavar="DIR", help='also write each plot as DIR/NAME.png (needs ".[report]")'
    )
    p.add_argument(
        "--markdown",
        nargs="?",
        const="-",
        metavar="PATH",
        help="print a Markdown table of the final numbers per run (or write it to PATH)",
    )
    p.add_argument(
        "--peak-flops",
        type=float,
        metavar="FLOP/S",
        help="measured peak FLOP/s of the hardware, to show MFU (never guessed)",
    )
    p.set_defaults(handler=run_report)


def add_average(sub: Any, name: str, purpose: str) -> None:
    """`budgetlm average`: checkpoint averaging (LAWA) and model soups, as a new run."""
    p = sub.add_parser(
        name,
        help=purpose,
        description="Write a new run directory whose model is the uniform average of a run's "
        "last K checkpoints (--run; LAWA: for runs with a constant LR, not decayed ones) or "
        "of several runs' final models (--runs; a model soup: needs one shape and tokenizer, "
        "and runs continued from one common checkpoint). Evaluate it with `budgetlm eval`.",
    )
    p.add_argument("--run", metavar="DIR", help="the run whose checkpoints to average")
    p.add_argument(
        "--last",
        type=int,
        metavar="K",
        help="average the newest K checkpoints (default: all the run kept; keep more with "
        "--checkpoint.every 0.05 --checkpoint.keep_last K when training)",
    )
    p.add_argument("--runs", nargs="+", metavar="DIR", help="runs whose final models to average")
    p.add_argument("--out", required=True, metavar="DIR", help="the run directory to create")
    p.set_defaults(handler=run_average)


def run_report(args: argparse.Namespace, overrides: Overrides) -> None:
    from budgetlm import api

    files = api.report(
        args.runs, out=args.out, png=args.png, markdown=args.markdown, peak_flops=args.peak_flops
    )
    if args.markdown == "-":
        print(files.markdown, end="")
    print(f"report written to {files.html} ({len(files.figures)} plots)")
    if files.pngs:
        print(f"{len(files.pngs)} PNG plots written to {args.png}")
    if files.markdown_path:
        print(f"Markdown table written to {files.markdown_path}")


def run_average(args: argparse.Namespace, overrides: Overrides) -> None:
    from budgetlm import api

    api.average(args.out, run=args.run, last=args.last, runs=args.runs)
    print(f"evaluate it with `budgetlm eval --run {args.out}`")
