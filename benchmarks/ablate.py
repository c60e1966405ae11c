"""Recipe ablations: each candidate added to budgetlm's recipe alone, at equal wall-clock.

Issue 16, part 2.

Every run is `budgetlm pretrain --budget B --model.size SIZE --train.seed S` plus the candidate's
flags, on the built-in prose + code corpora; its score is the run's own final evaluation (mean
nats/token over the domains' held-out tokens, which are the same for every run). Everything the
candidate does not set is as the product decides it; precision and compile are decided by a
first, unscored run and pinned for the rest, so that no candidate pays for measuring them again. A
candidate that slows the step pays for it in tokens.

First the AdamW learning rate is swept on the first seed (--lrs); the best one is the baseline's
and every candidate's LR (Muon's update is scaled to AdamW's RMS, so the LR carries over). Then
the baseline and each candidate run on every seed. A candidate "wins" when its mean final loss
is below the baseline's by more than the standard error of the difference of the two means
(so 1 seed never wins).

    python benchmarks/ablate.py --budget 60s --size nano --seeds 0 1 2     # ~45 min on 2 cores
    python benchmarks/ablate.py --budget 30s --seeds 0 --lrs 3e-3 --only qk-norm   # logic check
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from race import run_budgetlm  # noqa: E402

CANDIDATES: dict[str, tuple[str, ...]] = {
    "muon": ("--train.optimizer", "muon"),
    "document-mask": ("--model.document_mask", "true"),
    "qk-norm": ("--model.qk_norm", "true"),
    "relu2": ("--model.mlp", "relu2"),
    "untied-head": ("--model.tie_embeddings", "false"),
    "value-embeddings": ("--model.value_embeddings", "1"),
    "z-loss-1e-4": ("--train.z_loss", "1e-4"),
    "batch-warmup-0.2": ("--train.batch_warmup", "0.2"),
    "context-warmup-0.2": ("--train.context_warmup", "0.2"),
    "cooldown-1-sqrt": ("--train.decay_shape", "1-sqrt"),
    "weight-decay-0": ("--train.weight_decay", "0"),
    "weight-decay-0.2": ("--train.weight_decay", "0.2"),
}
"""The candidates and the flags that add each one to the recipe."""


def summarise(runs: list[dict]) -> dict:
    """Mean, standard deviation and count of the final losses, and the mean tokens trained."""
    losses = [r["loss"] for r in runs]
    return {
        "loss": statistics.fmean(losses),
        "std": statistics.stdev(losses) if len(losses) > 1 else float("nan"),
        "n": len(losses),
        "bpb": statistics.fmean(r["bpb"] for r in runs),
        "tokens": statistics.fmean(r["tokens"] for r in runs),
        "tokens_per_s": statistics.fmean(r["tokens"] / r["steps_s"] for r in runs),
    }


def verdict(candidate: dict, baseline: dict) -> str:
    """'wins', 'loses' or 'tie': the difference of the mean losses against its standard error."""
    if candidate["n"] < 2 or baseline["n"] < 2:
        return "tie (1 seed)"
    error = math.sqrt(candidate["std"] ** 2 / candidate["n"] + baseline["std"] ** 2 / baseline["n"])
    delta = candidate["loss"] - baseline["loss"]
    if delta < -error:
        return "wins"
    return "loses" if delta > error else "tie"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget", default="60s")
    p.add_argument("--size", default="nano")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--lrs", type=float, nargs="+", default=[1.5e-3, 3e-3, 6e-3])
    p.add_argument("--only", nargs="+", choices=list(CANDIDATES), help="these candidates only")
    p.add_argument(
        "--skip-warmup",
        action="store_true",
        help="no unscored first run: when an earlier run here already measured "
        "this size's precision and compile (the first scored run then pins them)",
    )
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    size = ("--model.size", args.size)
    candidates = {k: CANDIDATES[k] for k in args.only or CANDIDATES}

    pinned: list[str] = []  # the first run's precision and compile, for every later run

    def run(name: str, flags: tuple[str, ...], seed: int, lr: float) -> dict:
        extra = (*size, "--train.lr", str(lr), *pinned, *flags)
        result = run_budgetlm(args.budget, seed, out, extra, name)
        train = result.pop("config").train
        if not pinned:
            pinned.extend(["--train.precision", train.precision])
            pinned.extend(["--train.compile", str(train.compile).lower()])
        print(f"  {name} seed {seed}: loss {result['loss']:.3f}, {result['tokens']:,} tokens")
        return result

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        if not args.skip_warmup:
            run("warmup", (), args.seeds[0], args.lrs[0])  # decides and caches them
        sweep = {lr: run(f"adamw-lr{lr:g}", (), args.seeds[0], lr) for lr in args.lrs}
        lr = min(sweep, key=lambda x: sweep[x]["loss"])
        print(f"best AdamW LR {lr:g}; every run after the first: {' '.join(pinned)}")
        base_runs = [sweep[lr]] + [run("baseline", (), s, lr) for s in args.seeds[1:]]
        runs = {}
        for name, flags in candidates.items():
            runs[name] = [run(name, flags, s, lr) for s in args.seeds]

    base = summarise(base_runs)
    print(f"\nbudget {args.budget}, size {args.size}, seeds {args.seeds}, LR {lr:g}")
    print("| recipe | flags | val loss (nats) | Δ vs baseline | tokens | tokens/s | verdict |")
    print("|---|---|---|---|---|---|---|")
    print(f"| baseline (AdamW) | | {base['loss']:.3f} ± {base['std']:.3f} | | "
          f"{base['tokens']:,.0f} | {base['tokens_per_s']:,.0f} | |")  # fmt: skip
    table = {}
    for name, flags in candidates.items():
        row = summarise(runs[name])
        table[name] = {**row, "verdict": verdict(row, base)}
        print(
            f"| {name} | `{' '.join(flags)}` | {row['loss']:.3f} ± {row['std']:.3f} | "
            f"{row['loss'] - base['loss']:+.3f} | {row['tokens']:,.0f} | "
            f"{row['tokens_per_s']:,.0f} ({row['tokens_per_s'] / base['tokens_per_s']:.2f}x) | "
            f"{table[name]['verdict']} |"
        )
    if args.json:
        raw = {"lr": lr, "sweep": sweep, "baseline": base_runs, "runs": runs, "table": table}
        args.json.write_text(json.dumps(raw, indent=1, default=str))


if __name__ == "__main__":
    main()
