"""Scaling-law check: fit L(N, D) on a small sweep, predict a run ~4x larger in compute than any
in the sweep, train that run, and report the prediction error (issue 7's target: within 3%).

Default data (builtin:prose + builtin:code, the default 4096-token BPE) and the default run
config (WSD schedule, fully decayed at the end of each run, so the final loss is that of a
finished run of D tokens; batch 16 x 256 tokens, peak LR 3e-3). The loss is the mean final
validation loss of the two domains (32,768 tokens each).

Sweep: one family of 2-layer models widened 64 -> 96 -> 128 (nano) x 3 token budgets
(0.25M, 0.5M, 1M tokens) = 9 runs. Check: width 192 (1.8x nano's parameters) on 2.2M tokens,
4.0x the compute (6ND) of the largest sweep run. Sized to finish in about 30 minutes at
OMP_NUM_THREADS=1 on the shared 2-core machine.

    OMP_NUM_THREADS=1 python benchmarks/scaling.py --out /tmp/budgetlm-scaling

The check run is trained with --check-seeds seeds (default 2; the sweep's runs use seed 0) to
show the run-to-run noise. Resumable: finished runs under --out are read, not trained again.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch

# Benchmark this checkout's code, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from budgetlm import api  # noqa: E402
from budgetlm.budget.scaling_law import CHINCHILLA, fit  # noqa: E402
from budgetlm.config import load_config  # noqa: E402
from budgetlm.data.store.dataset import PreparedDataset  # noqa: E402
from budgetlm.model.flops import count_parameters  # noqa: E402
from budgetlm.run.records import (
    finished_record,  # noqa: E402
    read_metrics,  # noqa: E402
)
from budgetlm.workflows.scale.plot import plot_sweep  # noqa: E402
from budgetlm.workflows.scale.sweep import SweepRun, parse_size, sweep_run_config  # noqa: E402

SIZES = ["64x2", "96x2", "nano"]
BUDGETS = ["0.25Mtok", "0.5Mtok", "1Mtok"]
CHECK = "192x2:541steps"
"""192x2 has 1,672,128 parameters; 541 steps x 4096 = 2,215,936 tokens: 4.00x the 6ND of
nano on 1Mtok (244 steps, 926,336 parameters)."""
RESULTS = Path(__file__).resolve().parent / "results"


def run_seconds(end: dict) -> float:
    """A run's time inside its budget (steps, evaluations, checkpoints), from its end record."""
    seconds = end["seconds"]
    return round(seconds["steps"] + seconds["eval"] + seconds["checkpoint"], 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="/tmp/budgetlm-scaling")
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--budgets", default=",".join(BUDGETS))
    parser.add_argument("--check", default=CHECK, metavar="SIZE:BUDGET")
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument(
        "--check-seeds", type=int, default=2, help="seeds of the check run (run-to-run noise)"
    )
    parser.add_argument("--results", default=str(RESULTS / "scaling.json"))
    args = parser.parse_args()
    out = Path(args.out)
    sizes, budgets = args.sizes.split(","), args.budgets.split(",")
    config = load_config()  # the defaults: builtin prose + code, WSD, batch 16 x 256

    t0 = time.perf_counter()
    sweep = api.scale(
        config, sizes, budgets, out / "sweep", predict=[args.check], bootstrap=args.bootstrap,
        remember=False,
    )  # fmt: skip
    sweep_seconds = time.perf_counter() - t0
    print(sweep.table())
    (prediction,) = sweep.predictions

    # the check run: trained exactly as the sweep's runs are, only larger (seed 0 like them;
    # more seeds show the run-to-run noise the prediction error should be read against)
    dataset = PreparedDataset(sweep.law.extra["data"])
    size, _, budget = args.check.rpartition(":")
    t0 = time.perf_counter()
    seeds = []
    for seed in range(args.check_seeds):
        check = sweep_run_config(config, dataset, out)
        check.model = parse_size(size, config.model, dataset.tokenizer.vocab_size)
        check.budget, check.out_dir = budget, str(out.resolve())
        check.name, check.train.seed = "check" if seed == 0 else f"check-seed{seed}", seed
        run_dir = out / check.name
        if finished_record(run_dir) is None:
            shutil.rmtree(run_dir, ignore_errors=True)
            api.pretrain(check, log=print)
        records = read_metrics(run_dir)
        end = [r for r in records if r["type"] == "end"][-1]
        start = [r for r in records if r["type"] == "start"][-1]
        loss = sum(end["val_loss"].values()) / len(end["val_loss"])
        seeds.append({"seed": seed, "run": str(run_dir), "loss": loss, "val_loss": end["val_loss"],
                      "error": prediction.loss / loss - 1, "tokens_per_s": end["tokens_per_s"],
                      "threads": start.get("threads"), "seconds": run_seconds(end)})  # fmt: skip
    check_seconds = time.perf_counter() - t0
    measured = statistics.fmean(s["loss"] for s in seeds)
    n, tokens = count_parameters(check.model)["total"], end["tokens"]
    assert (n, tokens) == (prediction.n_params, prediction.tokens), "check run is not the predicted"
    largest = max(sweep.runs, key=lambda r: r.n_params * r.tokens)
    ratio = n * tokens / (largest.n_params * largest.tokens)
    error = prediction.loss / measured - 1
    low, high = prediction.interval

    label = f"{size} measured (mean of {len(seeds)} seeds)"
    check_run = SweepRun(label, label, budget, n, tokens, measured, {})
    # context: the same points fitted with Chinchilla's exponents fixed (E, A, B free)
    fixed = fit(sweep.law.points, bootstrap=0, exponents=(CHINCHILLA.alpha, CHINCHILLA.beta))
    fixed_loss = fixed.predict(n, tokens)
    plot_path, note = plot_sweep(
        sweep.law, [*sweep.runs, check_run], [prediction], Path(args.results).with_suffix(".png")
    )
    result = {
        "command": "OMP_NUM_THREADS=1 python benchmarks/scaling.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d"),
        "threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "load_average_at_end": os.getloadavg(),
        "data": {"sources": config.data.sources, "prepared": str(dataset.path)},
        "loss": "mean final validation loss of prose and code (nats/token)",
        "sweep": {
            "sizes": sizes,
            "budgets": budgets,
            "wall_seconds_this_invocation": round(sweep_seconds, 1),
            "runs": [
                {
                    "name": r.name,
                    "n_params": r.n_params,
                    "tokens": r.tokens,
                    "loss": r.loss,
                    "fit": sweep.law.predict(r.n_params, r.tokens),
                    "seconds": run_seconds(
                        [
                            x
                            for x in read_metrics(out / "sweep" / "runs" / r.name)
                            if x["type"] == "end"
                        ][-1]
                    ),  # fmt: skip
                    "val_loss": r.val_loss,
                }
                for r in sweep.runs
            ],
        },
        "law": {
            "parameters": {k: getattr(sweep.law, k) for k in ("E", "A", "B", "alpha", "beta")},
            "intervals_90": sweep.law.parameter_intervals(0.9),
            "fixed": list(sweep.law.fixed),
            "bootstrap": len(sweep.law.samples),
            "describe": sweep.law.describe(),
        },
        "check": {
            "spec": args.check,
            "n_params": n,
            "tokens": tokens,
            "compute_ratio_to_largest_sweep_run": ratio,
            "largest_sweep_run": largest.name,
            "predicted": prediction.loss,
            "interval_90": [low, high],
            "measured": measured,
            "measured_by_seed": seeds,
            "seed_spread": max(x["loss"] for x in seeds) - min(x["loss"] for x in seeds),
            "relative_error": error,
            "within_3_percent": abs(error) <= 0.03,
            "inside_interval": low <= measured <= high,
            "wall_seconds_this_invocation": round(check_seconds, 1),
        },
        "alternative_fit_chinchilla_exponents": {
            "describe": fixed.describe(),
            "predicted": fixed_loss,
            "relative_error": fixed_loss / measured - 1,
        },
        "plot": str(plot_path) if plot_path else note,
    }
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(result, indent=2) + "\n")
    shutil.copy(sweep.law_path, Path(args.results).with_name("scaling_law.json"))
    print(
        f"check {args.check}: {n:,} params x {tokens:,} tokens = {ratio:.2f}x the compute of "
        f"{largest.name}; predicted {prediction.loss:.4f} (90% {low:.4f}-{high:.4f}), measured "
        f"{measured:.4f} (mean of {len(seeds)} seeds: "
        + ", ".join(f"{x['loss']:.4f}" for x in seeds)
        + f"): error {error * 100:+.2f}% "
        f"({'within' if abs(error) <= 0.03 else 'NOT within'} 3%)"
    )
    print(f"sweep {sweep_seconds:.0f}s, check run {check_seconds:.0f}s; results in {args.results}")


if __name__ == "__main__":
    main()
