"""Command-line interface: argument parsing only; each subcommand calls a function in api."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from budgetlm import __version__
from budgetlm.errors import UserError


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `budgetlm` command; user errors print one line and exit 2."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        overrides = parse_dotted_overrides(extra, allow=args.command in ("pretrain", "continue"))
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
    p.add_argument("--model", metavar="SIZE", help="nano, micro, tiny, small, medium, base")
    p.add_argument("--budget", help="90s, 5m, 2h, 50Mtok, 1e15flop or 2000steps (default 5m)")
    p.add_argument("--out", metavar="DIR", help="run directory (default runs/<size>-<time>)")
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
    return parser


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

    api.pretrain(_config_from_args(args, overrides), resume=args.resume)


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
    api.continue_pretraining(_config_from_args(args, overrides, flags), resume=args.resume)


def _config_from_args(
    args: argparse.Namespace,
    overrides: list[tuple[str, Any]],
    flags: list[tuple[str, Any]] | None = None,
):
    """The run config: the YAML file, then the named flags, then --section.key overrides."""
    from budgetlm.config import load_config

    flags = list(flags or [])
    if args.data:
        flags.append(("data.sources", args.data))
    if args.prepared:
        flags += [("data.prepared", args.prepared), ("data.sources", [])]
    if getattr(args, "model", None):
        flags.append(("model.size", args.model))
    if args.budget:
        flags.append(("budget", args.budget))
    if args.out:
        out = Path(args.out)
        flags += [("out_dir", str(out.parent)), ("name", out.name)]
    if args.resume and (
        args.config
        or args.data
        or args.prepared
        or getattr(args, "model", None)
        or args.budget
        or overrides
    ):
        raise UserError(
            "--resume continues a run with its saved config.yaml; pass only --out "
            "(and nothing that changes the config)"
        )
    return load_config(args.config, flags + overrides)


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


if __name__ == "__main__":
    sys.exit(main())
