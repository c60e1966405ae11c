"""Mixture search by regression (RegMix) against the natural and uniform mixtures.

The data: builtin:prose, builtin:code and builtin:arith. The target: the mean validation loss
over the three domains (a blend, as a generalist model wants; which mixture minimises it is not
obvious, since arithmetic is learnt from few tokens and prose from many). Steps:

1. `budgetlm mix search`: TRIALS nano proxies of PROXY_BUDGET tokens each, ridge regression,
   the predicted best mixture;
2. at a larger size (micro, 3.2x the parameters, on the same tokens) train the predicted,
   the natural and the uniform mixture with 3 seeds each, and three of the trial mixtures
   (the proxies' best, median and worst) with seed 0;
3. report the target loss (mean ± sd over seeds) per mixture, and the Spearman rank
   correlation between the regression's predicted loss (proxy scale) and the loss measured at
   the larger size over the 6 mixtures; also the leave-one-out rank correlation of ridge and
   LightGBM on the same trials.

    OMP_NUM_THREADS=1 python benchmarks/regmix.py    # 32 runs; see BENCHMARKS.md for the time

Resumable: finished runs under --out are read, not trained again.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

# Benchmark this checkout's code, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from budgetlm import api  # noqa: E402
from budgetlm.config import load_config  # noqa: E402
from budgetlm.errors import UserError  # noqa: E402
from budgetlm.workflows.mix.regression import (  # noqa: E402
    leave_one_out,
    regressor_fit,
    spearman,
)
from budgetlm.workflows.mix.sampling import SearchSettings  # noqa: E402
from budgetlm.workflows.proxies import run_proxies  # noqa: E402

SOURCES = ["builtin:prose", "builtin:code", "builtin:arith"]
TARGET = "prose,code,arith"
QUIET = {
    "eval.count": 1,  # the start and the final evaluation only
    "samples.prompts_per_domain": 0,
    "checkpoint.every": 0,
    "checkpoint.pre_decay": False,
}


def mean(values: list[float]) -> float:
    return statistics.fmean(values)


def sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def target_loss(end: dict, targets: dict[str, float]) -> float:
    return sum(w * end["val_loss"][d] for d, w in targets.items())


def prepared_data(out: Path) -> Path:
    path = out / "prepared"
    if not (path / "manifest.json").is_file():
        api.prepare(SOURCES, path)
    return path


def large_configs(args, prepared: Path, mixtures: dict[str, dict], out: Path) -> list:
    configs = []
    for name, weights in mixtures.items():
        seeds = range(args.seeds) if name in ("predicted", "natural", "uniform") else [0]
        for seed in seeds:
            values = {
                **QUIET,
                "data.prepared": str(prepared),
                "data.sources": [],
                "data.weights": weights,
                "model.size": args.large,
                "budget": args.large_budget,
                "train.seed": seed,
                "out_dir": str(out / "large"),
                "name": f"{name}-seed{seed}",
            }
            configs.append(load_config(None, list(values.items())))
    return configs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--proxy", default="nano")
    parser.add_argument("--proxy-budget", default="0.3Mtok")
    parser.add_argument("--large", default="micro")
    parser.add_argument("--large-budget", default="0.3Mtok")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="runs/bench-regmix")
    parser.add_argument("--results", default="benchmarks/results/regmix.json")
    args = parser.parse_args()
    out = Path(args.out)
    t0 = time.perf_counter()
    prepared = prepared_data(out)

    proxy = load_config(
        None,
        list(
            {
                "data.prepared": str(prepared),
                "data.sources": [],
                "model.size": args.proxy,
                "budget": args.proxy_budget,
            }.items()
        ),
    )
    settings = SearchSettings(trials=args.trials, final_budget=args.large_budget)
    found = api.mix_search(proxy, TARGET, out / "search", settings, workers=args.workers)
    search_minutes = (time.perf_counter() - t0) / 60
    targets = found["target"]

    trials = sorted(found["trials"], key=lambda t: t["target_loss"])
    mixtures = {
        "predicted": found["weights"],
        "natural": found["references"]["natural"]["weights"],
        "uniform": found["references"]["uniform"]["weights"],
        "trial-best": trials[0]["weights"],
        "trial-median": trials[len(trials) // 2]["weights"],
        "trial-worst": trials[-1]["weights"],
    }
    configs = large_configs(args, prepared, mixtures, out)
    ends = run_proxies(configs, args.workers, print)

    domains = list(found["weights"])
    # the search's fit again (ridge does not depend on the order of the trials)
    ordered = np.array([[t["weights"][d] for d in domains] for t in trials])
    fit = regressor_fit("ridge")(ordered, np.array([t["target_loss"] for t in trials]))
    rows = {}
    for name, weights in mixtures.items():
        runs = [c for c in configs if c.name.startswith(name + "-seed")]
        losses = [target_loss(ends[c.name], targets) for c in runs]
        per_domain = {d: mean([ends[c.name]["val_loss"][d] for c in runs]) for d in targets}
        rows[name] = {
            "weights": weights,
            "predicted_loss": float(fit.predict(np.array([[weights[d] for d in domains]]))[0]),
            "large_losses": losses,
            "large_mean": mean(losses),
            "large_sd": sd(losses),
            "large_seed0": losses[0],
            "large_per_domain": per_domain,
        }
    names = list(rows)
    rank_seed0 = spearman(
        [rows[n]["predicted_loss"] for n in names], [rows[n]["large_seed0"] for n in names]
    )
    rank_mean = spearman(
        [rows[n]["predicted_loss"] for n in names], [rows[n]["large_mean"] for n in names]
    )
    losses_by_trial = np.array([t["target_loss"] for t in trials])
    loo = {}
    for regressor in ("ridge", "lightgbm"):
        try:
            predictions = leave_one_out(regressor_fit(regressor), ordered, losses_by_trial)
        except UserError as e:  # LightGBM not installed
            loo[regressor] = {"error": str(e)}
            continue
        loo[regressor] = {
            "spearman": spearman(predictions, losses_by_trial),
            "rmse": float(np.sqrt(np.mean((predictions - losses_by_trial) ** 2))),
        }
    results = {
        "command": "OMP_NUM_THREADS=1 python benchmarks/regmix.py " + " ".join(sys.argv[1:]),
        "settings": vars(args),
        "target": targets,
        "search": {
            k: found[k] for k in ("weights", "predicted_loss", "uncertainty", "fit", "sampling")
        },
        "trials": found["trials"],
        "mixtures": rows,
        "spearman_predicted_vs_large_seed0": rank_seed0,
        "spearman_predicted_vs_large_mean": rank_mean,
        "loo_by_regressor": loo,
        "minutes": {"search": search_minutes, "total": (time.perf_counter() - t0) / 60},
    }
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(json.dumps(results, indent=1) + "\n")

    print(
        f"\ntarget: mean val loss over {', '.join(targets)}; proxies {args.trials} x "
        f"{args.proxy} @ {args.proxy_budget}; larger: {args.large} @ {args.large_budget}"
    )
    print(
        f"{'mixture':<13} {'weights (' + ', '.join(domains) + ')':<28} {'predicted':>9} "
        f"{'larger-size loss':>20}  per domain"
    )
    for name, row in rows.items():
        shown = ", ".join(f"{row['weights'][d]:.2f}" for d in domains)
        spread = (
            f"{row['large_mean']:.4f} ± {row['large_sd']:.4f}"
            if len(row["large_losses"]) > 1
            else f"{row['large_mean']:.4f} (1 seed)"
        )
        dom = ", ".join(f"{d} {v:.3f}" for d, v in row["large_per_domain"].items())
        print(f"{name:<13} {shown:<28} {row['predicted_loss']:9.4f} {spread:>20}  {dom}")
    print(
        f"Spearman(predicted, larger-size loss) over {len(rows)} mixtures: seed 0 "
        f"{rank_seed0:.2f}, seed means {rank_mean:.2f}"
    )
    print(
        "leave-one-out rank correlation on the trials: "
        + ", ".join(
            f"{r} {v['spearman']:.2f}" if "spearman" in v else f"{r} n/a" for r, v in loo.items()
        )
    )
    print(f"search {search_minutes:.1f} min, total {results['minutes']['total']:.1f} min")


if __name__ == "__main__":
    main()
