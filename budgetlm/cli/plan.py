"""The planning commands: `budgetlm plan` (what a budget buys on this machine, as a config) and
`budgetlm scale` (a sweep of small runs and the scaling law fitted to it)."""

from __future__ import annotations

import argparse
from typing import Any

from budgetlm.cli.flags import Overrides, add_data, comma_list, data_flags


def add_plan(sub: Any, name: str, purpose: str) -> None:
    """`budgetlm plan`: which model, tokens, batch and LR a budget buys on this machine."""
    p = sub.add_parser(
        name,
        help=purpose,
        description="Measure this machine's training speed for candidate model sizes (a few "
        "seconds each, cached), size the model for the budget by a scaling law (Chinchilla's, "
        "or the one `budgetlm scale` fitted on your runs), pick batch size and LR, warn when the "
        "data would repeat too often, print the alternatives and write a config that "
        "`budgetlm pretrain --config` runs as is.",
    )
    p.add_argument("--budget", required=True, help="e.g. 30m, 8h, 1e16flop or 50Mtok")
    add_data(p, data_help="text sources (default: built-in)")
    p.add_argument("--hardware", default="auto", help="auto (GPU when there is one), cpu or cuda")
    p.add_argument("--law", metavar="JSON", help="a scaling_law.json from `budgetlm scale`")
    p.add_argument("--out", default="plan.yaml", help="config file to write (default plan.yaml)")
    p.set_defaults(handler=run_plan)


def add_scale(sub: Any, name: str, purpose: str) -> None:
    """`budgetlm scale`: a sweep of small runs and the scaling law fitted to it."""
    p = sub.add_parser(
        name,
        help=purpose,
        description="Pre-train each size x budget (finished runs in --out are reused), fit "
        "L(N, D) = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022) to their final validation "
        "losses with bootstrap intervals, write OUT/scaling_law.json (also kept for `budgetlm "
        "plan`) and OUT/scaling_law.png, and predict --predict runs. N is total parameters, D "
        "training tokens. Config keys of the runs can be overridden as --section.key VALUE.",
    )
    p.add_argument(
        "--sizes",
        required=True,
        metavar="S1,S2",
        help="presets (nano, micro, ...) or WIDTHxDEPTH[xHEADS] shapes (160x3), comma-separated",
    )
    p.add_argument(
        "--budgets",
        required=True,
        metavar="B1,B2",
        help="token or step budgets, comma-separated (e.g. 1Mtok,2Mtok,4Mtok)",
    )
    add_data(p, data_help="text sources (default: built-in)")
    p.add_argument("--config", help="YAML config of the runs")
    p.add_argument("--out", default="runs/scale", metavar="DIR", help="sweep directory")
    p.add_argument(
        "--predict",
        nargs="+",
        default=[],
        metavar="SIZE:BUDGET",
        help="predict the loss of these runs (budget in tokens, steps or FLOPs)",
    )
    p.add_argument(
        "--target", metavar="D1,D2", help="fit the mean loss of these domains (default: all)"
    )
    p.add_argument("--workers", type=int, default=1, help="runs trained at once (default 1)")
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap refits (default 200)")
    p.add_argument(
        "--no-remember",
        action="store_true",
        help="do not keep the law in the cache for `budgetlm plan`",
    )
    p.set_defaults(handler=run_scale)


def run_plan(args: argparse.Namespace, overrides: Overrides) -> None:
    from budgetlm import api
    from budgetlm.config import load_config

    flags: Overrides = [("budget", args.budget), ("train.device", args.hardware)]
    flags += data_flags(args)
    config = load_config(None, flags + overrides)
    api.plan(config, out=args.out, law=args.law)


def run_scale(args: argparse.Namespace, overrides: Overrides) -> None:
    from budgetlm import api
    from budgetlm.config import load_config

    config = load_config(args.config, data_flags(args, both_allowed=False) + overrides)
    result = api.scale(
        config,
        comma_list(args.sizes),
        comma_list(args.budgets),
        args.out,
        predict=[s for p in args.predict for s in comma_list(p)],
        target=comma_list(args.target) if args.target else None,
        workers=args.workers,
        bootstrap=args.bootstrap,
        remember=not args.no_remember,
    )
    print(result.table())
