"""The commands that use a trained run: `budgetlm generate`, `budgetlm export` (a Hugging Face
folder) and `budgetlm eval`."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from budgetlm.cli.flags import Overrides, add_data
from budgetlm.run.files import EVAL_FILE


def add_generate(sub: Any, name: str, purpose: str) -> None:
    p = sub.add_parser(
        name,
        help=purpose,
        description="Continue a prompt with a trained run's model.",
    )
    p.add_argument("--run", required=True, metavar="DIR", help="run directory")
    p.add_argument("prompt")
    p.add_argument("--max-new-tokens", type=int, default=200)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(handler=run_generate)


def add_export(sub: Any, name: str, purpose: str) -> None:
    p = sub.add_parser(
        name,
        help=purpose,
        description="Write a run's trained model and tokenizer as a Hugging Face model folder "
        "(config.json, model.safetensors, tokenizer files) that transformers loads with "
        "AutoModelForCausalLM.from_pretrained: a continued Hugging Face model as the "
        "model_type it was (LoRA adapters merged), a budgetlm model as Llama (Qwen2 for models "
        "with q/k/v biases).",
    )
    p.add_argument("--run", required=True, help="the run directory")
    p.add_argument("--out", required=True, help="the folder to create")
    p.add_argument(
        "--adapter-only",
        action="store_true",
        help="write a LoRA run's adapter alone (adapter_model.safetensors) instead of merging it",
    )
    p.set_defaults(handler=run_export)


def add_eval(sub: Any, name: str, purpose: str) -> None:
    p = sub.add_parser(
        name,
        help=purpose,
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
    add_data(
        p,
        data_help="evaluate on these sources (see `prepare`)",
        prepared_help="evaluate on a dataset prepared with the run's tokenizer",
    )
    p.add_argument("--limit", type=int, metavar="N", help="at most N items per lm-eval task")
    p.add_argument(
        "--tokens-per-domain",
        type=int,
        metavar="N",
        help="score the first N validation tokens of each domain (default: all)",
    )
    p.set_defaults(handler=run_eval)


def run_generate(args: argparse.Namespace, overrides: Overrides) -> None:
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


def run_export(args: argparse.Namespace, overrides: Overrides) -> None:
    from budgetlm import api

    out = api.export(args.run, args.out, adapter_only=args.adapter_only)
    print(f"exported {args.run} to {out} (load it with AutoModelForCausalLM.from_pretrained)")


def run_eval(args: argparse.Namespace, overrides: Overrides) -> None:
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
    print(
        f"{'domain':<{width}}  {'loss':>7}  {'ppl':>9}  {'bits/byte':>9}  {'bytes/tok':>9}  "
        f"{'tokens':>12}"
    )
    for domain, loss in result["val_loss"].items():
        tokens = result["val_tokens"][domain]
        bpb = result.get("val_bpb", {}).get(domain)
        ratio = result.get("bytes_per_token", {}).get(domain)
        print(
            f"{domain:<{width}}  {loss:7.4f}  {math.exp(loss):9.2f}  "
            + (f"{bpb:9.4f}  {ratio:9.2f}  " if bpb is not None and ratio else f"{'-':>9}  " * 2)
            + f"{tokens:12,}"
        )
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
    print(f"written to {Path(args.run) / EVAL_FILE}")
