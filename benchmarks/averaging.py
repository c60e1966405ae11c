"""Checkpoint averaging and model soups (`budgetlm average`) against the models they average.

Part 1 (LAWA, Kaddour 2022; Sanyal et al. 2023): one run with a constant learning rate and one
with WSD (decay over the last 20%), checkpoints every 5% of the budget; held-out loss of the
average of the last k checkpoints against the last checkpoint alone.

Part 2 (model soups, Wortsman et al. 2022): a parent pre-trained on prose, continued on code
(recipe 'replay') with several seeds, i.e. different data orders from one shared checkpoint;
the uniform soup against each ingredient. As a control, the soup of two runs trained from
different random initialisations, which is expected to fail.

    OMP_NUM_THREADS=1 python benchmarks/averaging.py --work /tmp/avg-bench

Held-out losses are all measured the same way (`budgetlm eval`, --eval-tokens per domain).
Finished runs in --work are reused.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

# Benchmark this checkout's code, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from budgetlm import api  # noqa: E402
from budgetlm.config import load_config  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
QUIET = {"log": lambda _: None}


def records(run_dir: Path, kind: str) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == kind]


def finished(run: Path) -> bool:
    return (run / "metrics.jsonl").is_file() and bool(records(run, "end"))


def prepared(work: Path) -> tuple[Path, Path, Path]:
    """Both domains, prose only and code only, all with one tokenizer."""
    both, prose, code = work / "data", work / "prose", work / "code"
    if not (both / "manifest.json").is_file():
        api.prepare(["builtin:prose", "builtin:code"], both, vocab_size=4096)
    tokenizer = both / "tokenizer.json"
    for out, source in ((prose, "builtin:prose"), (code, "builtin:code")):
        if not (out / "manifest.json").is_file():
            api.prepare([source], out, tokenizer=tokenizer)
    return both, prose, code


def run_config(args: argparse.Namespace, name: str, budget: str, seed: int, **extra):
    values = {
        "out_dir": str(args.work / "runs"),
        "name": name,
        "budget": budget,
        "model.size": args.model,
        "train.seed": seed,
        "eval.count": 10,
        "eval.tokens_per_domain": args.eval_tokens,
        "samples.prompts_per_domain": 0,
        **extra,
    }
    return load_config(None, list(values.items()))


def pretrain(args: argparse.Namespace, name: str, budget: str, seed: int, **extra) -> Path:
    run = args.work / "runs" / name
    if not finished(run):
        api.pretrain(run_config(args, name, budget, seed, **extra))
    return run


def loss(args: argparse.Namespace, run: Path) -> dict[str, float]:
    """Held-out loss per domain of a run's newest checkpoint, and their mean."""
    result = api.evaluate(run, tokens_per_domain=args.eval_tokens, **QUIET)
    return {**result["val_loss"], "mean": statistics.fmean(result["val_loss"].values())}


def averaged(args: argparse.Namespace, name: str, **kwargs) -> Path:
    out = args.work / "averages" / name
    if not (out / "config.yaml").is_file():
        api.average(out, **kwargs)
    return out


def last_k(args: argparse.Namespace, data: Path) -> dict:
    """Average of the last k checkpoints against the last one, constant LR and WSD."""
    results = {}
    for schedule in ("constant", "wsd"):
        name = f"{schedule}-s{args.seed}"
        run = pretrain(
            args, name, args.budget, args.seed,
            **{"data.prepared": str(data), "train.schedule": schedule,
               "checkpoint.every": 0.05, "checkpoint.keep_last": 20},
        )  # fmt: skip
        rows = {"last checkpoint": loss(args, run)}
        for k in args.ks:
            rows[f"last {k}"] = loss(args, averaged(args, f"{name}-last{k}", run=run, last=k))
        results[schedule] = rows
    return results


def soups(args: argparse.Namespace, prose: Path, code: Path) -> dict:
    """A soup of runs continued from one parent with different data orders, and a control
    soup of two runs from different initialisations."""
    parent = pretrain(args, "parent-prose", args.parent_budget, 0, **{"data.prepared": str(prose)})
    ingredients = []
    for seed in args.soup_seeds:
        name = f"continued-code-s{seed}"
        run = args.work / "runs" / name
        if not finished(run):
            config = run_config(
                args, name, args.continue_budget, seed,
                **{"data.prepared": str(code), "continual.from_run": str(parent),
                   "continual.recipe": "replay"},
            )  # fmt: skip
            api.continue_pretraining(config)
        ingredients.append(run)
    rows = {
        f"ingredient seed {s}": loss(args, r)
        for s, r in zip(args.soup_seeds, ingredients, strict=True)
    }
    rows["soup of all"] = loss(args, averaged(args, "soup-all", runs=ingredients))
    for i in range(len(ingredients) - 1):
        pair = ingredients[i : i + 2]
        rows[f"soup of seeds {args.soup_seeds[i]},{args.soup_seeds[i + 1]}"] = loss(
            args, averaged(args, f"soup-{i}", runs=pair)
        )
    other = pretrain(args, "prose-s1", args.parent_budget, 1, **{"data.prepared": str(prose)})
    control = {
        "parent (seed 0)": loss(args, parent),
        "independent run (seed 1)": loss(args, other),
        "soup of the two": loss(args, averaged(args, "soup-independent", runs=[parent, other])),
    }
    return {"shared parent": rows, "independent init": control}


def table(title: str, rows: dict[str, dict[str, float]]) -> list[str]:
    domains = list(next(iter(rows.values())))
    lines = [f"{title:<34}" + "".join(f"{d:>9}" for d in domains)]
    for name, values in rows.items():
        lines.append(f"  {name:<32}" + "".join(f"{values[d]:9.4f}" for d in domains))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/avg-bench"))
    parser.add_argument("--model", default="nano")
    parser.add_argument("--budget", default="1Mtok", help="tokens of the part-1 runs")
    parser.add_argument("--ks", type=int, nargs="+", default=[2, 4, 10])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--parent-budget", default="0.5Mtok")
    parser.add_argument("--continue-budget", default="0.25Mtok")
    parser.add_argument("--soup-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--eval-tokens", type=int, default=32768)
    parser.add_argument("--out", type=Path, default=RESULTS / "averaging.json")
    args = parser.parse_args()
    both, prose, code = prepared(args.work)
    results = {"last_k": last_k(args, both), "soups": soups(args, prose, code)}
    lines = [f"held-out loss (nats/token, {args.eval_tokens:,} tokens per domain)"]
    for schedule, rows in results["last_k"].items():
        lines += table(f"{schedule} LR, {args.budget}", rows)
    for name, rows in results["soups"].items():
        lines += table(f"soup, {name}", rows)
    text = "\n".join(lines)
    print(text)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"settings": settings, **results, "table": text}, indent=1))


if __name__ == "__main__":
    main()
