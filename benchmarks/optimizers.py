"""AdamW against Muon (hidden matrices) + AdamW (the rest), at equal tokens.

Pre-trains the default model (nano) on the default data (builtin:prose + builtin:code) with the
default WSD schedule, once per optimizer setting and seed, all with the same token budget, and
prints each setting's final validation loss per domain (mean over seeds), its training time and
throughput. Muon runs at `train.lr` x `train.muon_lr_scale` (its update is scaled to AdamW's RMS,
so 1.0 is the "same LR" point); AdamW runs at `train.lr`. Finished runs are reused, so adding a
setting re-runs only that one. Writes results.json.

    python benchmarks/optimizers.py                                   # 3Mtok, 2 seeds
    python benchmarks/optimizers.py --muon-scales 1 2 4 8 --adamw-lrs 3e-3 6e-3
    python benchmarks/optimizers.py --budget 200steps --seeds 1 --muon-scales 1   # smoke test
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

# Benchmark this checkout's code, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from budgetlm import api  # noqa: E402
from budgetlm.config import load_config  # noqa: E402
from budgetlm.train.checkpoint import OPTIM_FILE, list_checkpoints  # noqa: E402

COMMON = {"eval.tokens_per_domain": 32768, "samples.prompts_per_domain": 1}


def records(run_dir: Path, kind: str) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == kind]


def finished(run_dir: Path) -> bool:
    return (run_dir / "metrics.jsonl").exists() and bool(records(run_dir, "end"))


def trained_with_muon(run_dir: Path) -> bool:
    """Whether the run's final optimizer state is Muon + AdamW (not plain AdamW)."""
    path = list_checkpoints(run_dir)[-1] / OPTIM_FILE
    state = torch.load(path, map_location="cpu", weights_only=True)["optimizer"]
    return set(state) == {"muon", "adamw"}


def run(args: argparse.Namespace, name: str, settings: dict, seed: int) -> dict:
    """Train one setting with one seed (or reuse the finished run); its end record."""
    out = Path(args.out)
    run_dir = out / f"{name}-seed{seed}"
    if not finished(run_dir):
        values = {
            **COMMON,
            **settings,
            "budget": args.budget,
            "train.seed": seed,
            "out_dir": str(out),
            "name": run_dir.name,
        }
        api.pretrain(load_config(None, list(values.items())), log=print)
    muon = settings["train.optimizer"] == "muon"
    if trained_with_muon(run_dir) != muon:
        raise SystemExit(
            f"{run_dir} was trained with {'AdamW' if muon else 'Muon'}, not as configured: "
            "budgetlm/job/run.py must build the optimizer with train.optim.build_optimizer "
            "(delete the run directory after fixing it)"
        )
    end = records(run_dir, "end")[-1]
    return {
        "val_loss": end["val_loss"],
        "steps": end["steps"],
        "tokens": end["tokens"],
        "tokens_per_s": end["tokens_per_s"],
        "step_seconds": end["seconds"]["steps"],
        "curve": [(r["tokens"], r["val_loss"]) for r in records(run_dir, "eval")],
    }


def settings_to_run(args: argparse.Namespace) -> dict[str, dict]:
    settings = {}
    for lr in args.adamw_lrs:
        settings[f"adamw-lr{lr:g}"] = {"train.optimizer": "adamw", "train.lr": lr}
    for scale in args.muon_scales:
        settings[f"muon-x{scale:g}"] = {
            "train.optimizer": "muon",
            "train.lr": args.lr,
            "train.muon_lr_scale": scale,
        }
    return settings


def mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {sd:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", default="3Mtok")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--lr", type=float, default=3e-3, help="train.lr of the Muon runs")
    parser.add_argument("--adamw-lrs", type=float, nargs="*", default=[3e-3])
    parser.add_argument("--muon-scales", type=float, nargs="*", default=[1.0, 2.0, 4.0])
    parser.add_argument("--out", default="runs/bench-optimizers")
    args = parser.parse_args()
    settings = settings_to_run(args)
    results = {
        name: [run(args, name, values, seed) for seed in range(args.seeds)]
        for name, values in settings.items()
    }
    out = Path(args.out)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    domains = list(next(iter(results.values()))[0]["val_loss"])
    print(
        f"\nnano, default data, {args.budget}, {args.seeds} seed(s) (mean ± sd); Muon's LR is "
        f"{args.lr:g} x scale on hidden matrices, {args.lr:g} on the rest"
    )
    header = "".join(f"{'val ' + d:>16}" for d in domains)
    print(f"{'setting':<16}{header}{'mean':>8}{'steps':>7}{'step s':>8}{'tok/s':>8}")
    best = {}
    for name, runs in results.items():
        losses = [[r["val_loss"][d] for r in runs] for d in domains]
        means = [statistics.fmean(v) for v in losses]
        best[name] = statistics.fmean(means)
        cells = "".join(f"{mean_sd(v):>16}" for v in losses)
        seconds = statistics.fmean(r["step_seconds"] for r in runs)
        rate = statistics.fmean(r["tokens_per_s"] for r in runs)
        print(f"{name:<16}{cells}{best[name]:8.3f}{runs[0]['steps']:7d}{seconds:8.1f}{rate:8.0f}")
    adamw = min((n for n in best if n.startswith("adamw")), key=best.get, default=None)
    muon = min((n for n in best if n.startswith("muon")), key=best.get, default=None)
    if adamw and muon:
        print(
            f"\nbest Muon ({muon}) - best AdamW ({adamw}), mean over domains: "
            f"{best[muon] - best[adamw]:+.3f} nats/token at equal tokens"
        )
    print(f"results: {out / 'results.json'}")


if __name__ == "__main__":
    main()
