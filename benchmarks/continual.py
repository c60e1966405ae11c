"""Continual pre-training recipes against naive continuation, at equal token budgets.

Pre-trains one base model on the old domain, then continues it on the new domain with each
recipe and several seeds (the seed sets the data order), all with the same token budget. Prints
per recipe: final new-domain loss, budget share needed to reach naive's final new-domain loss,
forgetting (old-domain loss rise), stability-gap depth; checks the targets of issue 3 for the
default recipe; writes results.json and, when matplotlib is installed, loss curves as PNG.

    python benchmarks/continual.py                               # prose -> code, 3 seeds
    python benchmarks/continual.py --old builtin:code --new builtin:prose
    python benchmarks/continual.py --old builtin:arith --new builtin:code   # + accuracy

When `builtin:arith` is among the data, its exact-match accuracy (mean over skills) is tracked
too: the final accuracy, its change against the base model, and its largest drop during
continued training (the downstream stability gap).
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
from budgetlm.evaluate.stability import loss_gap  # noqa: E402

RECIPES = ["naive", "rewarm", "replay", "hq-subset", "infinite", "infinite-replay"]
COMMON = {"eval.tokens_per_domain": 16384, "samples.prompts_per_domain": 1}


def domain_of(spec: str) -> str:
    return spec.split("=", 1)[0] if "=" in spec else spec.split(":")[-1]


def records(run_dir: Path, kind: str) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == kind]


def run_base(args: argparse.Namespace, out: Path) -> Path:
    run = out / "base"
    if (run / "metrics.jsonl").exists() and records(run, "end"):
        return run
    values = {
        **COMMON,
        "data.sources": [args.old],
        "budget": args.base_budget,
        "out_dir": str(out),
        "name": "base",
    }
    return api.pretrain(load_config(None, list(values.items())), log=print).run_dir


def run_recipe(args: argparse.Namespace, base: Path, out: Path, recipe: str, seed: int) -> dict:
    name = f"{recipe}-seed{seed}"
    run = out / name
    if not ((run / "metrics.jsonl").exists() and records(run, "end")):
        values = {
            **COMMON,
            "continual.from_run": str(base),
            "continual.recipe": recipe,
            "data.sources": [args.new],
            "budget": args.budget,
            "train.seed": seed,
            "out_dir": str(out),
            "name": name,
        }
        api.continue_pretraining(load_config(None, list(values.items())), log=print)
    evals = records(run, "eval")
    new, old = domain_of(args.new), domain_of(args.old)
    base_old = records(base, "eval")[-1]["val_loss"][old]
    accuracy = {}
    base_accuracy = records(base, "eval")[-1].get("accuracy", {}).get("arith")
    task = records(run, "continual")[-1].get("accuracy", {}).get("arith")
    if task is not None and base_accuracy is not None:
        accuracy = {
            "curve": [(r["tokens"], r["accuracy"]["arith"]) for r in evals],
            "final": task["final"],
            "change": task["final"] - base_accuracy,
            "drop": task["depth"],
        }
    return {
        "accuracy": accuracy,
        "curve": [(r["tokens"], r["val_loss"][new], r["val_loss"][old]) for r in evals],
        "final_new": evals[-1]["val_loss"][new],
        # against the base's final model, what a user has: recipes starting from the pre-decay
        # checkpoint start higher on the old domain too
        "forgetting": evals[-1]["val_loss"][old] - base_old,
        "gap": loss_gap([(r["step"], r["tokens"], r["val_loss"][new]) for r in evals])["depth"],
    }


def share_to_reach(curve: list, target: float) -> float | None:
    """Share of the budget (by tokens) at the first evaluation with new-domain loss <= target."""
    total = curve[-1][0]
    for tokens, new_loss, _ in curve:
        if new_loss <= target:
            return tokens / total
    return None


def mean(values: list[float]) -> float:
    return statistics.fmean(values)


def sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default="builtin:prose")
    parser.add_argument("--new", default="builtin:code")
    parser.add_argument("--base-budget", default="4Mtok")
    parser.add_argument("--budget", default="1Mtok")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--recipes", nargs="+", default=RECIPES)
    parser.add_argument("--out", default="runs/bench-continual")
    args = parser.parse_args()
    out = Path(args.out) / f"{domain_of(args.old)}-to-{domain_of(args.new)}"
    base = run_base(args, out)
    results = {
        recipe: [run_recipe(args, base, out, recipe, seed) for seed in range(args.seeds)]
        for recipe in args.recipes
    }
    (out / "results.json").write_text(json.dumps(results, indent=1))
    naive_final = mean([r["final_new"] for r in results["naive"]])
    naive_forget = mean([r["forgetting"] for r in results["naive"]])
    naive_gap = mean([r["gap"] for r in results["naive"]])
    print(
        f"\n{domain_of(args.old)} -> {domain_of(args.new)}: base {args.base_budget}, "
        f"continue {args.budget}, {args.seeds} seeds (mean ± sd)"
    )
    print(
        f"{'recipe':<16} {'final new loss':>16} {'share to naive final':>21} "
        f"{'forgetting':>16} {'gap depth':>16}"
    )
    for recipe, runs in results.items():
        shares = [share_to_reach(r["curve"], naive_final) for r in runs]
        shown = "never" if None in shares else f"{mean(shares):.2f}"
        print(
            f"{recipe:<16} {mean([r['final_new'] for r in runs]):8.3f} ± "
            f"{sd([r['final_new'] for r in runs]):.3f} {shown:>21} "
            f"{mean([r['forgetting'] for r in runs]):+8.3f} ± "
            f"{sd([r['forgetting'] for r in runs]):.3f}"
            f" {mean([r['gap'] for r in runs]):8.3f} ± {sd([r['gap'] for r in runs]):.3f}"
        )
    from budgetlm.workflows.continual.recipes import RECIPES as KNOWN

    default = next((n for n in results if KNOWN[n] == KNOWN["default"]), None)
    if default is not None:
        runs = results[default]
        final = mean([r["final_new"] for r in runs])
        shares = [share_to_reach(r["curve"], naive_final) for r in runs]
        forget = mean([r["forgetting"] for r in runs])
        gap = mean([r["gap"] for r in runs])
        print(f"\ndefault recipe = {default}; targets against naive:")
        print(
            f"  lower final new-domain loss, or naive's in <= 60% of the budget: "
            f"{final < naive_final or (None not in shares and mean(shares) <= 0.6)} "
            f"({final:.3f} vs {naive_final:.3f})"
        )
        print(
            f"  forgets at least 50% less: {forget <= 0.5 * naive_forget} "
            f"({forget:+.3f} vs {naive_forget:+.3f})"
        )
        print(f"  smaller gap depth: {gap < naive_gap} ({gap:.3f} vs {naive_gap:.3f})")
    if all(r["accuracy"] for runs in results.values() for r in runs):
        print_accuracy(results)
    plot(results, args, out)


def print_accuracy(results: dict) -> None:
    """Downstream exact-match accuracy on builtin:arith (mean over its skills) per recipe."""
    print("\narith exact-match accuracy (mean over skills; 3 seeds, mean ± sd)")
    print(f"{'recipe':<16} {'final':>14} {'change vs base':>16} {'largest drop':>16}")
    for recipe, runs in results.items():
        cells = [[r["accuracy"][k] for r in runs] for k in ("final", "change", "drop")]
        print(
            f"{recipe:<16} {mean(cells[0]):8.3f} ± {sd(cells[0]):.3f} "
            f"{mean(cells[1]):+9.3f} ± {sd(cells[1]):.3f} "
            f"{mean(cells[2]):9.3f} ± {sd(cells[2]):.3f}"
        )


def plot(results: dict, args: argparse.Namespace, out: Path) -> None:
    """Mean loss on the new and the old domain against tokens, one line per recipe."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return
    with_accuracy = all(r["accuracy"] for runs in results.values() for r in runs)
    panels = 3 if with_accuracy else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4))
    for recipe, runs in results.items():
        tokens = [t for t, _, _ in runs[0]["curve"]]
        for axis, column in zip(axes, (1, 2), strict=False):
            values = [mean([r["curve"][i][column] for r in runs]) for i in range(len(tokens))]
            axis.plot(tokens, values, label=recipe, marker=".")
        if with_accuracy:
            curves = [r["accuracy"]["curve"] for r in runs]
            values = [mean([c[i][1] for c in curves]) for i in range(len(tokens))]
            axes[2].plot(tokens, values, label=recipe, marker=".")
    labels = [f"validation loss on {domain_of(d)} (nats/token)" for d in (args.new, args.old)]
    labels += ["arith exact-match accuracy"] if with_accuracy else []
    for axis, label in zip(axes, labels, strict=True):
        axis.set_xlabel("tokens of continued training")
        axis.set_ylabel(label)
        axis.set_xscale("symlog", linthresh=max(1, runs[0]["curve"][1][0]))
        axis.legend()
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)
    print(f"plot: {out / 'curves.png'}")


if __name__ == "__main__":
    main()
