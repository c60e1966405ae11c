"""Command-line interface: argument parsing only; each subcommand calls a function in api."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

from budgetlm import __version__
from budgetlm.errors import UserError


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
        overrides = parse_dotted_overrides(
            extra, allow=args.command in ("pretrain", "continue", "mix", "scale")
        )
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
    parser = argparse.ArgumentParser(
        prog="budgetlm",
        description="Pre-train and continually pre-train language models under a compute budget.",
    )
    parser.add_argument("--version", action="version", version=f"budgetlm {__version__}")
    sub = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")

    p = sub.add_parser(
        "prepare",
        help="turn text sources into a tokenized, sharded dataset",
        description="Turn text sources into a prepared dataset: tokenizer.json, "
        "manifest.json and token shards with a per-domain validation split. Run it again with "
        "more sources to add them, or after an interruption to finish.",
    )
    p.add_argument(
        "--data",
        nargs="+",
        required=True,
        metavar="SRC",
        help="[domain=]file, folder or glob of text/JSONL/parquet files (optionally .gz/.zst), "
        "a saved HF dataset folder, hf:ORG/NAME[:SPLIT], or builtin:code|prose|arith",
    )
    p.add_argument("--out", required=True, help="directory to create (or to add sources to)")
    p.add_argument("--vocab-size", type=int, default=4096)
    p.add_argument("--val-fraction", type=float, default=0.05)
    p.add_argument(
        "--text-field", default="text", help="JSONL field, parquet or HF dataset column of the text"
    )
    p.add_argument(
        "--tokenizer",
        help="reuse this tokenizer.json, or the one of a run, dataset or Hugging Face model folder",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--normalize", default="NFC", help="Unicode normal form, or 'none' (default NFC)"
    )
    p.add_argument("--no-dedup", action="store_true", help="keep exact duplicate documents")
    p.add_argument(
        "--near-dedup", action="store_true", help="also drop near-duplicates (MinHash + LSH)"
    )
    p.add_argument(
        "--quality",
        nargs="+",
        metavar="PRESET|DOMAIN=PRESET",
        help="drop documents failing heuristic quality rules: prose (Gopher/C4) or code, for "
        "every domain or per domain (e.g. web=prose code=code)",
    )
    p.add_argument("--workers", type=int, help="processes (default: all cores for large inputs)")
    p.set_defaults(handler=run_prepare)

    p = sub.add_parser(
        "pretrain",
        help="pre-train a model from scratch within a budget",
        description="Pre-train a model within a budget. Any config key can be "
        "overridden as --section.key VALUE (e.g. --train.lr 3e-3).",
    )
    p.add_argument("--config", help="YAML config file (e.g. a run's config.yaml)")
    p.add_argument("--data", nargs="+", metavar="SRC", help="text sources (see `prepare`)")
    p.add_argument("--prepared", metavar="DIR", help="a prepared dataset directory")
    p.add_argument(
        "--model",
        metavar="SIZE",
        help="nano, micro, tiny, small, medium, base, or auto (chosen by `budgetlm plan`; the "
        "default when --budget is given; nano otherwise)",
    )
    p.add_argument("--budget", help="90s, 5m, 2h, 50Mtok, 1e15flop or 2000steps (default 5m)")
    p.add_argument("--out", metavar="DIR", help="run directory (default runs/<size>-<time>)")
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

    p = sub.add_parser(
        "continue",
        help="train an existing model further on new data without forgetting",
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
    p.add_argument("--data", nargs="+", metavar="SRC", help="the new data (see `prepare`)")
    p.add_argument("--prepared", metavar="DIR", help="new data prepared with the run's tokenizer")
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
    p.add_argument("--budget", help="90s, 5m, 2h, 50Mtok, 1e15flop or 2000steps (default 5m)")
    p.add_argument("--out", metavar="DIR", help="run directory (default runs/<size>-<time>)")
    p.add_argument(
        "--mixture",
        metavar="MIX_JSON",
        help="split the new data by the domain weights of a mix.json from `budgetlm mix search`",
    )
    p.add_argument("--resume", action="store_true", help="continue a killed run")
    p.set_defaults(handler=run_continue)

    p = sub.add_parser(
        "generate",
        help="sample text from a trained run",
        description="Continue a prompt with a trained run's model.",
    )
    p.add_argument("--run", required=True, metavar="DIR", help="run directory")
    p.add_argument("prompt")
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=run_generate)

    p = sub.add_parser(
        "export",
        help="write a run's model as a Hugging Face folder",
        description="Write a run's trained model and tokenizer as a Hugging Face model folder "
        "(config.json, model.safetensors, tokenizer files) that transformers loads with "
        "AutoModelForCausalLM.from_pretrained; Llama format, Qwen2 for models with q/k/v biases.",
    )
    p.add_argument("--run", required=True, help="the run directory")
    p.add_argument("--out", required=True, help="the folder to create")
    p.set_defaults(handler=run_export)

    p = sub.add_parser(
        "eval",
        help="held-out loss per domain and lm-evaluation-harness tasks of a trained run",
        description="Evaluate a run's newest checkpoint: held-out loss per domain on the "
        "validation split of the data it trained on (or of --data / --prepared), accuracy on "
        "builtin:arith when present, and lm-evaluation-harness tasks with --tasks (needs "
        'pip install -e ".[eval]"). Writes eval.json into the run directory.',
    )
    p.add_argument("--run", required=True, metavar="DIR", help="run directory")
    p.add_argument(
        "--tasks",
        metavar="T1,T2",
        help="lm-eval task names (globs like arc_* allowed) or task YAML files, comma-separated",
    )
    p.add_argument(
        "--data", nargs="+", metavar="SRC", help="evaluate on these sources (see `prepare`)"
    )
    p.add_argument(
        "--prepared", metavar="DIR", help="evaluate on a dataset prepared with the run's tokenizer"
    )
    p.add_argument("--limit", type=int, metavar="N", help="at most N items per lm-eval task")
    p.add_argument(
        "--tokens-per-domain",
        type=int,
        metavar="N",
        help="score the first N validation tokens of each domain (default: all)",
    )
    p.set_defaults(handler=run_eval)

    p = sub.add_parser(
        "select",
        help="keep the documents reference models score as most target-like",
        description="Score every train document of a prepared dataset with small reference "
        "models (loss: a model of the target domains; loss-diff: that model's loss minus a "
        "general model's) and write the best --keep share of the other domains as a new "
        "prepared dataset (validation data unchanged). References not given are trained "
        "quickly on the target and on the whole dataset. Scores are stored in OUT/scores: "
        "`select --scores OUT --keep K --out DIR` re-selects without scoring.",
    )
    p.add_argument("--prepared", metavar="DIR", help="the prepared dataset to select from")
    p.add_argument(
        "--target", metavar="DOMAIN[,DOMAIN]", help="domain(s) of the dataset to select for"
    )
    p.add_argument(
        "--scores", metavar="DIR", help="re-select from the scores of an earlier selection"
    )
    p.add_argument(
        "--keep", type=float, required=True, help="share of documents to keep, in (0, 1]"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="the dataset folder to write")
    p.add_argument("--method", help="loss or loss-diff (default)")
    p.add_argument("--reference", metavar="RUN", help="reference run (default: trained here)")
    p.add_argument(
        "--general", metavar="RUN", help="general run of loss-diff (default: trained here)"
    )
    p.add_argument(
        "--domains",
        metavar="D1,D2",
        help="domains to filter (default: every domain but the targets)",
    )
    p.add_argument("--proxy", default="nano", metavar="SIZE", help="size of trained references")
    p.add_argument(
        "--proxy-budget", default="2Mtok", metavar="BUDGET", help="budget of each reference"
    )
    p.add_argument(
        "--score-tokens",
        type=int,
        default=1024,
        metavar="N",
        help="score the first N tokens of each document (default 1024)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=run_select)
    _add_mix_parser(sub)
    _add_report_parser(sub)
    _add_average_parser(sub)
    _add_plan_parser(sub)
    _add_scale_parser(sub)
    return parser


def _add_plan_parser(sub: Any) -> None:
    """`budgetlm plan`: which model, tokens, batch and LR a budget buys on this machine."""
    p = sub.add_parser(
        "plan",
        help="what to train with a budget on this machine (writes a config)",
        description="Measure this machine's training speed for candidate model sizes (a few "
        "seconds each, cached), size the model for the budget by a scaling law (Chinchilla's, "
        "or the one `budgetlm scale` fitted on your runs), pick batch size and LR, warn when the "
        "data would repeat too often, print the alternatives and write a config that "
        "`budgetlm pretrain --config` runs as is.",
    )
    p.add_argument("--budget", required=True, help="e.g. 30m, 8h, 1e16flop or 50Mtok")
    p.add_argument("--data", nargs="+", metavar="SRC", help="text sources (default: built-in)")
    p.add_argument("--prepared", metavar="DIR", help="a prepared dataset directory")
    p.add_argument("--hardware", default="auto", help="auto (GPU when there is one), cpu or cuda")
    p.add_argument("--law", metavar="JSON", help="a scaling_law.json from `budgetlm scale`")
    p.add_argument("--out", default="plan.yaml", help="config file to write (default plan.yaml)")
    p.set_defaults(handler=run_plan)


def run_plan(args: argparse.Namespace, overrides: list[tuple[str, Any]]) -> None:
    from budgetlm import api
    from budgetlm.config import load_config

    flags: list[tuple[str, Any]] = [("budget", args.budget), ("train.device", args.hardware)]
    if args.data:
        flags.append(("data.sources", args.data))
    if args.prepared:
        flags += [("data.prepared", args.prepared), ("data.sources", [])]
    config = load_config(None, flags + overrides)
    api.plan(config, out=args.out, law=args.law)


def _add_mix_parser(sub: Any) -> None:
    """`budgetlm mix search`: mixture weights by regression over proxy runs (RegMix)."""
    mix = sub.add_parser(
        "mix",
        help="find data mixture weights (mix search)",
        description="Data mixtures. `mix search` finds the domain weights that minimise a "
        "target's validation loss by regression over small proxy runs.",
    )
    mix_sub = mix.add_subparsers(dest="mix_command", title="mix commands", metavar="COMMAND")
    p = mix_sub.add_parser(
        "search",
        help="find the mixture that minimises a target's loss (RegMix)",
        description="Sample mixtures around the natural token shares (within per-domain "
        "repetition limits), train one small proxy model per mixture, fit a regression from "
        "weights to the target's validation loss and write the predicted best mixture, with a "
        "bootstrap uncertainty, to OUT/mix.json for `pretrain --mixture`. Resumable: finished "
        "proxies in OUT are not trained again. Config keys of the proxies can be overridden as "
        "--section.key VALUE.",
    )
    p.add_argument("--data", nargs="+", metavar="SRC", help="[domain=]sources (see `prepare`)")
    p.add_argument("--prepared", metavar="DIR", help="a prepared dataset directory")
    p.add_argument(
        "--target",
        required=True,
        metavar="DOMAIN[,DOMAIN]",
        help="validation domain(s) to minimise: one, several (their mean loss) or weighted "
        "(code=0.7,prose=0.3)",
    )
    p.add_argument("--proxy", default="nano", metavar="SIZE", help="proxy model size (nano)")
    p.add_argument("--trials", type=int, default=32, help="proxy runs (default 32)")
    p.add_argument(
        "--budget", default="2Mtok", help="tokens (or steps) per proxy run (default 2Mtok)"
    )
    p.add_argument(
        "--final-budget",
        metavar="TOKENS",
        help="tokens of the run the mixture is for: sets the repetition limits (default --budget)",
    )
    p.add_argument(
        "--max-epochs",
        nargs="+",
        metavar="N|DOMAIN=N",
        help="passes allowed over each domain in that run, for all or per domain (default 4)",
    )
    p.add_argument(
        "--eval-only",
        nargs="+",
        metavar="DOMAIN",
        default=[],
        help="domains only evaluated (e.g. a target set), never trained on",
    )
    p.add_argument(
        "--concentration",
        type=float,
        default=1.0,
        help="Dirichlet concentration around the natural shares (lower: sparser mixtures)",
    )
    p.add_argument("--regressor", default="ridge", help="ridge (default) or lightgbm")
    p.add_argument("--workers", type=int, default=1, help="proxies trained at once (default 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the mixtures and the proxies")
    p.add_argument("--config", help="YAML config of the proxy runs")
    p.add_argument("--out", required=True, metavar="DIR", help="search directory (resumable)")
    p.set_defaults(handler=run_mix_search)
    mix.set_defaults(handler=_missing_mix_command)


def _add_report_parser(sub: Any) -> None:
    """`budgetlm report`: the HTML page (and PNG plots, Markdown table) of runs."""
    p = sub.add_parser(
        "report",
        help="an HTML page of a run's curves, budget and results, or comparing runs",
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


def _add_average_parser(sub: Any) -> None:
    """`budgetlm average`: checkpoint averaging (LAWA) and model soups, as a new run."""
    p = sub.add_parser(
        "average",
        help="average a run's last checkpoints, or several runs' final models, into a new run",
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


def parse_dotted_overrides(extra: list[str], allow: bool) -> list[tuple[str, Any]]:
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
        elif i + 1 < len(extra):
            overrides.append(parse_override(f"{arg[2:]}={extra[i + 1]}"))
            i += 2
        else:
            raise UserError(f"override {arg} needs a value, e.g. {arg} VALUE")
    return overrides


def _quality_presets(values: list[str] | None) -> str | dict[str, str] | None:
    """--quality PRESET, or --quality DOMAIN=PRESET ... as a mapping."""
    if not values:
        return None
    if len(values) == 1 and "=" not in values[0]:
        return values[0]
    if not all("=" in v for v in values):
        raise UserError(
            f"--quality {' '.join(values)}: give one preset for all domains (--quality prose) or "
            "DOMAIN=PRESET pairs (--quality web=prose code=code), not a mix"
        )
    return dict(v.split("=", 1) for v in values)


def run_prepare(args: argparse.Namespace, overrides: list[tuple[str, Any]]) -> None:
    from budgetlm import api
    from budgetlm.data.config import CleaningConfig

    cleaning = CleaningConfig(
        normalize=None if args.normalize.lower() == "none" else args.normalize,
        exact_dedup=not args.no_dedup,
        near_dedup=args.near_dedup,
        quality=_quality_presets(args.quality),
    )
    manifest = api.prepare(
        args.data,
        args.out,
        vocab_size=args.vocab_size,
        val_fraction=args.val_fraction,
        text_field=args.text_field,
        seed=args.seed,
        tokenizer=args.tokenizer,
        cleaning=cleaning,
        workers=args.workers,
    )
    for domain, info in manifest["domains"].items():
        print(
            f"{domain}: {info['train']['tokens']:,} train tokens, {info['val']['tokens']:,} "
            f"validation tokens ({info['train']['documents']:,} / {info['val']['documents']:,} "
            "documents)"
        )
    for source in manifest["sources"]:
        removed = ", ".join(
            f"{rule} {r['documents']:,} ({r['bytes'] / 1e6:.1f} MB)"
            for rule, r in source["cleaning"]["rules"].items()
            if r["documents"]
        )
        print(
            f"{source['spec']}: {source['kept']:,} of {source['documents']:,} documents kept"
            + (f"; removed: {removed}" if removed else "")
        )
    print(f"prepared dataset written to {args.out}")


def run_pretrain(args: argparse.Namespace, overrides: list[tuple[str, Any]]) -> None:
    from budgetlm import api

    settings = _resume_settings(args, overrides)
    if args.grow_from and args.resume:
        raise UserError("--resume continues a run with its saved config.yaml; drop --grow-from")
    flags = [("growth.from_run", args.grow_from)] if args.grow_from else []
    config = _config_from_args(args, overrides, flags, resume_settings=settings)
    api.pretrain(config, resume=args.resume, settings=settings, started_at=args.started_at)


def run_continue(args: argparse.Namespace, overrides: list[tuple[str, Any]]) -> None:
    from budgetlm import api

    flags: list[tuple[str, Any]] = []
    if args.from_run:
        flags.append(("continual.from_run", args.from_run))
    if args.replay:
        flags.append(("continual.replay", args.replay))
    if args.replay_ratio is not None:
        flags.append(("continual.replay_ratio", args.replay_ratio))
    if args.recipe:
        flags.append(("continual.recipe", args.recipe))
    if args.resume and flags:
        raise UserError("--resume continues a run with its saved config.yaml; pass only --out")
    if not args.resume and not (args.data or args.prepared or args.config):
        raise UserError("continue needs the new data: --data SOURCE... or --prepared DIR")
    settings = _resume_settings(args, overrides)
    config = _config_from_args(args, overrides, flags, resume_settings=settings)
    api.continue_pretraining(
        config, resume=args.resume, settings=settings, started_at=args.started_at
    )


def _config_from_args(
    args: argparse.Namespace,
    overrides: list[tuple[str, Any]],
    flags: list[tuple[str, Any]] | None = None,
    resume_settings: list[tuple[str, Any]] = (),
):
    """The run config: the YAML file, then the named flags, then --section.key overrides."""
    from budgetlm.config import RESUME_SETTINGS, load_config

    flags = list(flags or [])
    if args.data:
        flags.append(("data.sources", args.data))
    if args.prepared:
        flags += [("data.prepared", args.prepared), ("data.sources", [])]
    if getattr(args, "model", None):
        flags.append(("model.size", args.model))
    elif (
        args.command == "pretrain"
        and not args.resume
        and not args.config
        and not any(key.startswith("model.") for key, _ in overrides)
    ):
        flags.append(("model.size", "auto"))  # no model named: the planner sizes it (api.pretrain)
    if args.budget:
        flags.append(("budget", args.budget))
    if getattr(args, "mixture", None):
        from budgetlm import api

        flags.append(("data.weights", api.mixture_weights(args.mixture)))
    if args.out:
        out = Path(args.out)
        flags += [("out_dir", str(out.parent)), ("name", out.name)]
    if args.resume and (
        args.config
        or getattr(args, "mixture", None)
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


def _resume_settings(
    args: argparse.Namespace, overrides: list[tuple[str, Any]]
) -> list[tuple[str, Any]]:
    """The overrides a --resume may apply (config.RESUME_SETTINGS: how steps run, e.g. sharded
    or not); none without --resume."""
    from budgetlm.config import RESUME_SETTINGS

    return [(k, v) for k, v in overrides if k in RESUME_SETTINGS] if args.resume else []


def run_generate(args: argparse.Namespace, overrides: list[tuple[str, Any]]) -> None:
    from budgetlm import api

    text = api.generate(
        args.run,
        args.prompt,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        seed=args.seed,
    )
    print(args.prompt + text)


def run_export(args: argparse.Namespace, overrides: list[tuple[str, Any]]) -> None:
    from budgetlm import api

    out = api.export(args.run, args.out)
    print(f"exported {args.run} to {out} (load it with AutoModelForCausalLM.from_pretrained)")


def run_eval(args: argparse.Namespace, overrides: list[tuple[str, Any]]) -> None:
    from budgetlm import api

    tasks = [t for t in args.tasks.split(",") if t.strip()] if args.tasks else None
    result = api.evaluate(
        args.run,
        tasks=tasks,
        data=args.data,
        prepared=args.prepared,
        limit=args.limit,
        tokens_per_domain=args.tokens_per_domain,
    )
    print(f"{args.run} at step {result['step']:,} ({result['checkpoint']})")
    width = max(len(d) for d in [*result["val_loss"], "domain"])
    print(f"{'domain':<{width}}  {'loss':>7}  {'ppl':>9}  {'tokens':>12}")
    for domain, loss in result["val_loss"].items():
        tokens = result["val_tokens"][domain]
        print(f"{domain:<{width}}  {loss:7.4f}  {math.exp(loss):9.2f}  {tokens:12,}")
    for name, accuracy in result.get("accuracy", {}).items():
        print(f"{name}: exact match {accuracy:.3f}")
    for task, metrics in result.get("tasks", {}).items():
        shown = [
            f"{name} {value:.4f}"
            + (f" ± {metrics[name + '_stderr']:.4f}" if name + "_stderr" in metrics else "")
            for name, value in metrics.items()
            if name != "items" and "_stderr" not in name
        ]
        print(f"{task}: {', '.join(shown)} ({metrics.get('items', '?')} items)")
    print(f"written to {Path(args.run) / 'eval.json'}")


def run_select(args: argparse.Namespace, overrides: list[tuple[str, Any]]) -> None:
    from budgetlm import api

    api.select(
        args.out,
        args.keep,
        prepared=args.prepared,
        target=args.target,
        scores=args.scores,
        method=args.method,
        reference=args.reference,
        general=args.general,
        domains=[d for d in args.domains.split(",") if d.strip()] if args.domains else None,
        proxy=args.proxy,
        proxy_budget=args.proxy_budget,
        score_tokens=args.score_tokens,
        seed=args.seed,
    )


def _missing_mix_command(args: argparse.Namespace, overrides: list[tuple[str, Any]]) -> None:
    raise UserError("mix needs a command: `budgetlm mix search ...` (see `budgetlm mix --help`)")


def run_mix_search(args: argparse.Namespace, overrides: list[tuple[str, Any]]) -> None:
    from budgetlm import api
    from budgetlm.config import load_config
    from budgetlm.workflows.mix.sampling import SearchSettings

    if args.data and args.prepared:
        raise UserError("pass --data SOURCE... or --prepared DIR, not both")
    if not (args.data or args.prepared):
        raise UserError("mix search needs the data: --data DOMAIN=SOURCE... or --prepared DIR")
    flags: list[tuple[str, Any]] = [
        ("model.size", args.proxy),
        ("budget", args.budget),
        ("train.seed", args.seed),
    ]
    if args.data:
        flags.append(("data.sources", args.data))
    else:
        flags += [("data.prepared", args.prepared), ("data.sources", [])]
    settings = SearchSettings(
        trials=args.trials,
        concentration=args.concentration,
        max_epochs=_max_epochs(args.max_epochs),
        final_budget=args.final_budget,
        eval_only=list(args.eval_only),
        regressor=args.regressor,
        seed=args.seed,
    )
    config = load_config(args.config, flags + overrides)
    result = api.mix_search(config, args.target, args.out, settings, workers=args.workers)
    unc = result["uncertainty"]
    print(f"{'domain':<12} {'weight':>7} {'± sd':>6}   natural  uniform")
    for domain, weight in result["weights"].items():
        sd = unc["weights_sd"].get(domain)
        shown = f"{sd:6.3f}" if sd is not None else "     -"
        natural = result["references"]["natural"]["weights"][domain]
        uniform = result["references"]["uniform"]["weights"][domain]
        print(f"{domain:<12} {weight:7.3f} {shown}   {natural:7.3f}  {uniform:7.3f}")
    refs = ", ".join(
        f"{name} {ref['predicted_loss']:.4f}" for name, ref in result["references"].items()
    )
    print(
        f"predicted target loss {result['predicted_loss']:.4f} ± {unc['predicted_loss_sd']:.4f} "
        f"(predicted for {refs}); leave-one-out rank correlation of the fit "
        f"{result['fit']['loo_spearman']:.2f} over {result['fit']['trials']} trials"
    )
    print(f"written to {Path(args.out) / 'mix.json'}; train with --mixture {args.out}/mix.json")


def _max_epochs(values: list[str] | None) -> dict[str, float]:
    """--max-epochs N (every domain) or DOMAIN=N ... as {domain or "*": N}."""
    limits: dict[str, float] = {}
    for value in values or []:
        domain, _, number = value.rpartition("=")
        try:
            limits[domain or "*"] = float(number)
        except ValueError:
            raise UserError(
                f"--max-epochs {value}: give a number (4) or DOMAIN=NUMBER (code=2)"
            ) from None
    return limits


def run_average(args: argparse.Namespace, overrides: list[tuple[str, Any]]) -> None:
    from budgetlm import api

    api.average(args.out, run=args.run, last=args.last, runs=args.runs)
    print(f"evaluate it with `budgetlm eval --run {args.out}`")


def run_report(args: argparse.Namespace, overrides: list[tuple[str, Any]]) -> None:
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


def _add_scale_parser(sub: Any) -> None:
    """`budgetlm scale`: a sweep of small runs and the scaling law fitted to it."""
    p = sub.add_parser(
        "scale",
        help="fit a scaling law L(N, D) to a sweep of small runs and predict larger ones",
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
    p.add_argument("--data", nargs="+", metavar="SRC", help="text sources (default: built-in)")
    p.add_argument("--prepared", metavar="DIR", help="a prepared dataset directory")
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


def run_scale(args: argparse.Namespace, overrides: list[tuple[str, Any]]) -> None:
    from budgetlm import api
    from budgetlm.config import load_config

    if args.data and args.prepared:
        raise UserError("pass --data SOURCE... or --prepared DIR, not both")
    flags: list[tuple[str, Any]] = []
    if args.data:
        flags.append(("data.sources", args.data))
    if args.prepared:
        flags += [("data.prepared", args.prepared), ("data.sources", [])]
    config = load_config(args.config, flags + overrides)
    result = api.scale(
        config,
        _comma_list(args.sizes),
        _comma_list(args.budgets),
        args.out,
        predict=[s for p in args.predict for s in _comma_list(p)],
        target=_comma_list(args.target) if args.target else None,
        workers=args.workers,
        bootstrap=args.bootstrap,
        remember=not args.no_remember,
    )
    print(result.table())


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


if __name__ == "__main__":
    sys.exit(main())
