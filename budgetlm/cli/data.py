"""The data commands: `budgetlm prepare` (sources to a prepared dataset), `budgetlm select`
(keep the most target-like documents) and `budgetlm mix search` (mixture weights)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from budgetlm.cli.flags import SOURCES_HELP, Overrides, add_data, data_flags
from budgetlm.errors import UserError


def add_prepare(sub: Any, name: str, purpose: str) -> None:
    p = sub.add_parser(
        name,
        help=purpose,
        description="Turn text sources into a prepared dataset: tokenizer.json, "
        "manifest.json and token shards with a per-domain validation split. Run it again with "
        "more sources to add them, or after an interruption to finish.",
    )
    p.add_argument("--data", nargs="+", required=True, metavar="SRC", help=SOURCES_HELP)
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


def add_select(sub: Any, name: str, purpose: str) -> None:
    p = sub.add_parser(
        name,
        help=purpose,
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


def add_mix(sub: Any, name: str, purpose: str) -> None:
    """`budgetlm mix search`: mixture weights by regression over proxy runs (RegMix)."""
    mix = sub.add_parser(
        name,
        help=purpose,
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
    add_data(p, data_help="[domain=]sources (see `prepare`)")
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
    mix.set_defaults(handler=missing_mix_command)


def run_prepare(args: argparse.Namespace, overrides: Overrides) -> None:
    from budgetlm import api
    from budgetlm.data.config import CleaningConfig

    cleaning = CleaningConfig(
        normalize=None if args.normalize.lower() == "none" else args.normalize,
        exact_dedup=not args.no_dedup,
        near_dedup=args.near_dedup,
        quality=quality_presets(args.quality),
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


def quality_presets(values: list[str] | None) -> str | dict[str, str] | None:
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


def run_select(args: argparse.Namespace, overrides: Overrides) -> None:
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


def missing_mix_command(args: argparse.Namespace, overrides: Overrides) -> None:
    raise UserError("mix needs a command: `budgetlm mix search ...` (see `budgetlm mix --help`)")


def run_mix_search(args: argparse.Namespace, overrides: Overrides) -> None:
    from budgetlm import api
    from budgetlm.config import load_config
    from budgetlm.workflows.mix.sampling import SearchSettings

    data = data_flags(args, both_allowed=False)
    if not data:
        raise UserError("mix search needs the data: --data DOMAIN=SOURCE... or --prepared DIR")
    flags: Overrides = [
        ("model.size", args.proxy),
        ("budget", args.budget),
        ("train.seed", args.seed),
        *data,
    ]
    settings = SearchSettings(
        trials=args.trials,
        concentration=args.concentration,
        max_epochs=max_epochs(args.max_epochs),
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


def max_epochs(values: list[str] | None) -> dict[str, float]:
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
