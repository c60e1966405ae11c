"""`budgetlm pretrain` and `budgetlm continue`: the two training commands, one run config each
(the YAML file, then the named flags, then --section.key overrides)."""

from __future__ import annotations

import argparse
from typing import Any

from budgetlm.cli.flags import (
    Overrides,
    add_data,
    add_run_flags,
    data_flags,
    out_flags,
    resume_settings,
)
from budgetlm.errors import UserError


def add_pretrain(sub: Any, name: str, purpose: str) -> None:
    p = sub.add_parser(
        name,
        help=purpose,
        description="Pre-train a model within a budget. Any config key can be "
        "overridden as --section.key VALUE (e.g. --train.lr 3e-3).",
    )
    p.add_argument("--config", help="YAML config file (e.g. a run's config.yaml)")
    add_data(p)
    p.add_argument(
        "--model",
        metavar="SIZE",
        help="nano, micro, tiny, small, medium, base, or auto (chosen by `budgetlm plan`; the "
        "default when --budget is given; nano otherwise)",
    )
    add_run_flags(p)
    p.add_argument(
        "--mixture",
        metavar="MIX_JSON",
        help="train with the domain weights of a mix.json from `budgetlm mix search`",
    )
    p.add_argument(
        "--grow-from",
        metavar="RUN",
        help="start from this smaller finished run's model, its blocks stacked to the deeper "
        "--model.n_layers (same widths; G_stack model growth); the optimizer starts fresh",
    )
    p.add_argument(
        "--resume", action="store_true", help="continue a killed run from its last checkpoint"
    )
    p.set_defaults(handler=run_pretrain)


def add_continue(sub: Any, name: str, purpose: str) -> None:
    p = sub.add_parser(
        name,
        help=purpose,
        description="Continue pre-training a budgetlm run's or a Hugging Face model on new data "
        "with a recipe "
        "against the stability gap and forgetting (replay, LR re-warming, continuing the "
        "pre-decay checkpoint). Any config key can be overridden as --section.key VALUE.",
    )
    p.add_argument(
        "--from",
        dest="from_run",
        metavar="RUN_DIR|HF_DIR",
        help="the model to continue: a budgetlm run, a Hugging Face Llama/Mistral/Qwen2 folder, "
        "or a hub id (org/name)",
    )
    add_data(
        p,
        data_help="the new data (see `prepare`)",
        prepared_help="new data prepared with the run's tokenizer",
    )
    p.add_argument(
        "--replay",
        nargs="+",
        metavar="SRC",
        help="data to replay (default: the data the run was trained on)",
    )
    p.add_argument(
        "--replay-ratio",
        type=float,
        metavar="R",
        help="share of each batch replayed (default: the recipe's)",
    )
    p.add_argument(
        "--recipe", help="default, naive, rewarm, replay, hq-subset, infinite, infinite-replay"
    )
    p.add_argument("--config", help="YAML config file (e.g. a continued run's config.yaml)")
    add_run_flags(p)
    p.add_argument(
        "--mixture",
        metavar="MIX_JSON",
        help="split the new data by the domain weights of a mix.json from `budgetlm mix search`",
    )
    p.add_argument(
        "--adapter",
        choices=["none", "lora"],
        help="lora: train low-rank adapters of a Hugging Face model, its weights frozen "
        "(--model.lora_rank, --model.lora_alpha, --model.lora_targets; default: full training)",
    )
    p.add_argument(
        "--extend-vocab",
        type=int,
        metavar="N",
        help="learn up to N new tokens from the new data and add them to the model's tokenizer, "
        "embeddings and head (--continual.vocab_init mean|focus|random)",
    )
    p.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow a Hugging Face model whose code is not part of transformers (runs it)",
    )
    p.add_argument("--resume", action="store_true", help="continue a killed run")
    p.set_defaults(handler=run_continue)


def run_pretrain(args: argparse.Namespace, overrides: Overrides) -> None:
    from budgetlm import api

    settings = resume_settings(args, overrides)
    if args.grow_from and args.resume:
        raise UserError("--resume continues a run with its saved config.yaml; drop --grow-from")
    flags = [("growth.from_run", args.grow_from)] if args.grow_from else []
    config = config_from_args(args, overrides, flags, resume_settings=settings)
    api.pretrain(config, resume=args.resume, settings=settings, started_at=args.started_at)


def run_continue(args: argparse.Namespace, overrides: Overrides) -> None:
    from budgetlm import api

    flags: Overrides = []
    if args.from_run:
        flags.append(("continual.from_run", args.from_run))
    if args.replay:
        flags.append(("continual.replay", args.replay))
    if args.replay_ratio is not None:
        flags.append(("continual.replay_ratio", args.replay_ratio))
    if args.recipe:
        flags.append(("continual.recipe", args.recipe))
    if args.trust_remote_code:
        flags.append(("continual.trust_remote_code", True))
    if args.adapter:
        flags.append(("model.adapter", args.adapter))
    if args.extend_vocab is not None:
        flags.append(("continual.extend_vocab", args.extend_vocab))
    if args.resume and flags:
        raise UserError("--resume continues a run with its saved config.yaml; pass only --out")
    if not args.resume and not (args.data or args.prepared or args.config):
        raise UserError("continue needs the new data: --data SOURCE... or --prepared DIR")
    settings = resume_settings(args, overrides)
    config = config_from_args(args, overrides, flags, resume_settings=settings)
    api.continue_pretraining(
        config, resume=args.resume, settings=settings, started_at=args.started_at
    )


def config_from_args(
    args: argparse.Namespace,
    overrides: Overrides,
    flags: Overrides | None = None,
    resume_settings: Overrides = (),
):
    """The run config: the YAML file, then the named flags, then --section.key overrides."""
    from budgetlm.config import RESUME_SETTINGS, load_config

    flags = list(flags or []) + data_flags(args)
    if getattr(args, "model", None):
        flags.append(("model.size", args.model))
    elif (
        args.command == "pretrain"
        and not args.resume
        and not args.config
        and not any(key.startswith("model.") for key, _ in overrides)
    ):
        flags.append(("model.size", "auto"))  # no model named: the planner sizes it
    if args.budget:
        flags.append(("budget", args.budget))
    if args.mixture:
        from budgetlm import api

        flags.append(("data.weights", api.mixture_weights(args.mixture)))
    if args.out:
        flags += out_flags(args.out)
    if args.resume and (
        args.config
        or args.mixture
        or args.data
        or args.prepared
        or getattr(args, "model", None)
        or args.budget
        or len(overrides) > len(resume_settings)
    ):
        raise UserError(
            "--resume continues a run with its saved config.yaml; pass only --out "
            f"(and nothing that changes the config but {', '.join(RESUME_SETTINGS)})"
        )
    return load_config(args.config, flags + overrides)
