"""Flags several commands share, written once: the data (--data/--prepared), the budget, the
output run directory, --resume and the --section.key config overrides."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from budgetlm.errors import UserError

SOURCES_HELP = (
    "[domain=]file, folder or glob of text/JSONL/parquet files (optionally .gz/.zst), "
    "a saved HF dataset folder, hf:ORG/NAME[:SPLIT], or builtin:code|prose|arith"
)
BUDGET_HELP = "90s, 5m, 2h, 50Mtok, 1e15flop or 2000steps (default 5m)"
Overrides = list[tuple[str, Any]]


def add_data(
    p: argparse.ArgumentParser,
    data_help: str = "text sources (see `prepare`)",
    prepared_help: str = "a prepared dataset directory",
) -> None:
    """--data SRC... and --prepared DIR: raw sources (prepared and cached) or a prepared dataset."""
    p.add_argument("--data", nargs="+", metavar="SRC", help=data_help)
    p.add_argument("--prepared", metavar="DIR", help=prepared_help)


def data_flags(args: argparse.Namespace, both_allowed: bool = True) -> Overrides:
    """The config keys --data and --prepared set (a prepared dataset replaces the sources)."""
    if not both_allowed and args.data and args.prepared:
        raise UserError("pass --data SOURCE... or --prepared DIR, not both")
    flags: Overrides = []
    if args.data:
        flags.append(("data.sources", args.data))
    if args.prepared:
        flags += [("data.prepared", args.prepared), ("data.sources", [])]
    return flags


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """--budget and --out of a training command."""
    p.add_argument("--budget", help=BUDGET_HELP)
    p.add_argument("--out", metavar="DIR", help="run directory (default runs/<size>-<time>)")


def out_flags(out: str) -> Overrides:
    """The config keys an --out run directory sets: its parent is out_dir, its name the run's."""
    path = Path(out)
    return [("out_dir", str(path.parent)), ("name", path.name)]


def resume_settings(args: argparse.Namespace, overrides: Overrides) -> Overrides:
    """The overrides a --resume may apply (config.RESUME_SETTINGS: how steps run, e.g. sharded
    or not); none without --resume."""
    from budgetlm.config import RESUME_SETTINGS

    return [(k, v) for k, v in overrides if k in RESUME_SETTINGS] if args.resume else []


def parse_dotted_overrides(extra: list[str], allow: bool) -> Overrides:
    """`--train.lr 3e-3` / `--train.lr=3e-3` pairs into (key, value) config overrides."""
    from budgetlm.config import parse_override

    overrides, i = [], 0
    while i < len(extra):
        arg = extra[i]
        if not (allow and arg.startswith("--") and "." in arg.split("=", 1)[0]):
            raise UserError(f"unrecognized argument '{arg}'; see `budgetlm --help`")
        if "=" in arg:
            overrides.append(parse_override(arg[2:]))
            i += 1
        elif i + 1 < len(extra) and not extra[i + 1].startswith("--"):
            overrides.append(parse_override(f"{arg[2:]}={extra[i + 1]}"))
            i += 2
        else:
            raise UserError(f"override {arg} needs a value, e.g. {arg} VALUE")
    return overrides


def comma_list(text: str) -> list[str]:
    """'a, b,c' -> ['a', 'b', 'c'] (empty items dropped)."""
    return [item.strip() for item in text.split(",") if item.strip()]
