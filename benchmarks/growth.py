"""Model growth (G_stack, `pretrain --grow-from`) against training the deep model from scratch.

Trains (a) the deep model from scratch for --large-budget tokens and (b) a shallow model of the
same widths for --small-budget tokens, then the deep model grown from it by stacking its blocks
for the same --large-budget. The target is (a)'s final held-out loss (mean over domains); the
result is the tokens each deep run needs to reach it (read from its evaluation curve, linear
between evaluations; both runs share the WSD schedule, so at equal tokens they train at equal
learning rates) and the total compute including the shallow model's training.

    OMP_NUM_THREADS=1 python benchmarks/growth.py --work /tmp/grow-bench      # 2 -> 4 layers
    OMP_NUM_THREADS=1 python benchmarks/growth.py --large-layers 8 --seeds 0 1

Finished runs in --work are reused, so an interrupted benchmark continues where it stopped.
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


def records(run_dir: Path, kind: str) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == kind]


def prepared_data(work: Path) -> Path:
    data = work / "data"
    if not (data / "manifest.json").is_file():
        api.prepare(["builtin:prose", "builtin:code"], data, vocab_size=4096)
    return data


def train(
    args: argparse.Namespace, data: Path, name: str, layers: int, budget: str, seed: int, **extra
) -> Path:
    """One run (reused when finished): the shared shape with `layers` blocks."""
    run = args.work / "runs" / name
    if (run / "metrics.jsonl").is_file() and records(run, "end"):
        return run
    values = {
        "data.prepared": str(data),
        "out_dir": str(run.parent),
        "name": name,
        "budget": budget,
        "model.size": "custom",
        "model.d_model": args.d_model,
        "model.n_heads": args.n_heads,
        "model.n_layers": layers,
        "train.seed": seed,
        "eval.count": args.evals,
        "eval.tokens_per_domain": args.eval_tokens,
        "checkpoint.every": 0,
        "samples.prompts_per_domain": 0,
        **extra,
    }
    return api.pretrain(load_config(None, list(values.items()))).run_dir


def curve(run: Path) -> list[tuple[int, float]]:
    """(tokens, mean held-out loss over domains) at each evaluation."""
    return [(r["tokens"], statistics.fmean(r["val_loss"].values())) for r in records(run, "eval")]


def tokens_to_reach(points: list[tuple[int, float]], target: float) -> float | None:
    """The first token count at which the curve reaches `target`, linear between evaluations;
    None when it never does."""
    for i, (t1, l1) in enumerate(points):
        if l1 <= target:
            if i == 0:
                return float(t1)
            t0, l0 = points[i - 1]
            return t0 + (t1 - t0) * (l0 - target) / (l0 - l1)
    return None


def measure(args: argparse.Namespace, data: Path, seed: int) -> dict:
    large_name = f"scratch-L{args.large_layers}-s{seed}"
    scratch = train(args, data, large_name, args.large_layers, args.large_budget, seed)
    small = train(args, data, f"small-L{args.small_layers}-s{seed}", args.small_layers,
                  args.small_budget, seed)  # fmt: skip
    grown = train(
        args, data, f"grown-L{args.small_layers}x{args.large_layers // args.small_layers}-s{seed}",
        args.large_layers, args.large_budget, seed, **{"growth.from_run": str(small)},
    )  # fmt: skip
    s_end, g_end, sm_end = (records(r, "end")[-1] for r in (scratch, grown, small))
    large_fpt = records(scratch, "start")[0]["flops_per_token"]
    target = curve(scratch)[-1][1]
    reach_scratch = tokens_to_reach(curve(scratch), target)
    reach_grown = tokens_to_reach(curve(grown), target)
    small_flops = sm_end["flops"]
    result = {
        "seed": seed,
        "target_loss": target,
        "scratch": {"final_loss": target, "tokens": s_end["tokens"], "flops": s_end["flops"],
                    "tokens_to_target": reach_scratch, "curve": curve(scratch)},
        "small": {"final_loss": curve(small)[-1][1], "tokens": sm_end["tokens"],
                  "flops": small_flops, "curve": curve(small)},
        "grown": {"final_loss": curve(grown)[-1][1], "tokens": g_end["tokens"],
                  "flops": g_end["flops"], "tokens_to_target": reach_grown,
                  "curve": curve(grown)},
    }  # fmt: skip
    if reach_grown is not None and reach_scratch:
        grown_flops = reach_grown * large_fpt
        result["large_token_saving"] = 1 - reach_grown / reach_scratch
        result["total_flop_saving"] = 1 - (grown_flops + small_flops) / (reach_scratch * large_fpt)
    return result


def report(args: argparse.Namespace, runs: list[dict]) -> str:
    lines = [
        f"d_model {args.d_model}, {args.small_layers} -> {args.large_layers} layers; small "
        f"{args.small_budget}, deep runs {args.large_budget}; target = the from-scratch deep "
        "run's final mean held-out loss",
        "seed  scratch final  grown final  small final  deep tokens to target (scratch / grown)"
        "  large-token saving  total-FLOP saving",
    ]
    for r in runs:
        reach = r["grown"]["tokens_to_target"]
        lines.append(
            f"{r['seed']:>4}  {r['scratch']['final_loss']:13.4f}  {r['grown']['final_loss']:11.4f}"
            f"  {r['small']['final_loss']:11.4f}  {r['scratch']['tokens_to_target']:>12,.0f} / "
            + (f"{reach:>9,.0f}" if reach is not None else "never    ")
            + f"  {r.get('large_token_saving', float('nan')):18.1%}"
            f"  {r.get('total_flop_saving', float('nan')):17.1%}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/grow-bench"))
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--n-heads", type=int, default=4)
    parser.add_argument("--small-layers", type=int, default=2)
    parser.add_argument("--large-layers", type=int, default=4)
    parser.add_argument("--small-budget", default="0.4Mtok")
    parser.add_argument("--large-budget", default="1.2Mtok")
    parser.add_argument("--evals", type=int, default=20)
    parser.add_argument("--eval-tokens", type=int, default=16384)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "growth.json")
    args = parser.parse_args()
    data = prepared_data(args.work)
    runs = [measure(args, data, seed) for seed in args.seeds]
    text = report(args, runs)
    print(text)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"settings": settings, "runs": runs, "table": text}, indent=1))


if __name__ == "__main__":
    main()
