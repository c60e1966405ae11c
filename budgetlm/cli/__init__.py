"""The `budgetlm` command line: argument parsing only. COMMANDS is the table of commands, each
with its one-line purpose and the module that parses its flags and calls the one api function
it runs; flags shared by several commands are written once in flags.py.

The flags are hand-written argparse rather than derived from the config dataclasses (as LitGPT
does with jsonargparse) because the syntax is budgetlm's own: `--data code=PATH` domain
prefixes, `--budget 5m` units, any config key as `--section.key VALUE` with "did you mean"
hints, and every bad input as one line naming the fix; the dataclasses stay the one list of
config keys (config.py), and the flags only name the common ones."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from budgetlm import __version__
from budgetlm.cli import data, plan, runs, train, use
from budgetlm.cli.flags import parse_dotted_overrides
from budgetlm.errors import UserError


@dataclass(frozen=True)
class Command:
    """One `budgetlm NAME` command: its one-line purpose, the function that adds its parser
    (with the handler it runs), and whether it takes --section.key config overrides."""

    name: str
    purpose: str
    add: Callable[[Any, str, str], None]
    overrides: bool = False


COMMANDS = [
    Command("prepare", "turn text sources into a tokenized, sharded dataset", data.add_prepare),
    Command("pretrain", "pre-train a model from scratch within a budget", train.add_pretrain, True),
    Command(
        "continue",
        "train an existing model further on new data without forgetting",
        train.add_continue,
        True,
    ),
    Command("generate", "sample text from a trained run", use.add_generate),
    Command("export", "write a run's model as a Hugging Face folder", use.add_export),
    Command(
        "eval",
        "held-out loss per domain and lm-evaluation-harness tasks of a trained run",
        use.add_eval,
    ),
    Command(
        "select", "keep the documents reference models score as most target-like", data.add_select
    ),
    Command("mix", "find data mixture weights (mix search)", data.add_mix, True),
    Command(
        "report",
        "an HTML page of a run's curves, budget and results, or comparing runs",
        runs.add_report,
    ),
    Command(
        "average",
        "average a run's last checkpoints, or several runs' final models, into a new run",
        runs.add_average,
    ),
    Command("plan", "what to train with a budget on this machine (writes a config)", plan.add_plan),
    Command(
        "scale",
        "fit a scaling law L(N, D) to a sweep of small runs and predict larger ones",
        plan.add_scale,
        True,
    ),
]


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `budgetlm` command; user errors print one line and exit 2."""
    started_at = time.perf_counter()  # a time budget counts from here (torch loads after)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    args.started_at = started_at
    if args.command is None:
        parser.print_help()
        return 2
    try:
        takes = next(c.overrides for c in COMMANDS if c.name == args.command)
        overrides = parse_dotted_overrides(extra, allow=takes)
        args.handler(args, overrides)
    except UserError as e:
        print(f"budgetlm {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"budgetlm {args.command}: interrupted; a run continues from its last checkpoint "
            f"with `budgetlm {args.command} --resume --out RUN_DIR`",
            file=sys.stderr,
        )
        return 130
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command in COMMANDS, in the table's order."""
    parser = argparse.ArgumentParser(
        prog="budgetlm",
        description="Pre-train and continually pre-train language models under a compute budget.",
    )
    parser.add_argument("--version", action="version", version=f"budgetlm {__version__}")
    sub = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    for command in COMMANDS:
        command.add(sub, command.name, command.purpose)
    return parser


__all__ = ["COMMANDS", "Command", "build_parser", "main"]
