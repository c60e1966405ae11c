"""Skill-ordered curricula (online Skill-it) against the random mixture, at equal tokens.

Trains a small model on builtin:arith split into one domain per skill (`builtin:arith/SKILL`
sources): the hardest skill (highest level) and everything it builds on. Every arm spends the
same token budget (an estimated graph's probe runs are paid from it); the score is exact-match
accuracy on held-out problems of the hardest skill. Arms:

    random            the natural mixture (each skill's share of the tokens), fixed
    skillit-target    online Skill-it lowering the hardest skill's loss, prerequisite graph
    static-matched    fixed weights equal to skillit-target's average token shares (same seed):
                      the same allocation without the ordering
    skillit-probe     the same with a graph estimated by probe runs (paid from the budget)
    skillit-all       online Skill-it lowering every skill's loss, prerequisite graph
    target-only       the hardest skill alone (a reference, not a curriculum)

    python benchmarks/skills.py                          # sub_2digit, 3 seeds, 1.5M tokens
    python benchmarks/skills.py --arms random skillit-target --seeds 1
    python benchmarks/skills.py --target add_multidigit --budget 3Mtok

Accuracy is measured on `--items` held-out problems per skill, each prompt preceded by a
newline as every training problem is (a line of a document); greedy decoding must produce the
answer and the newline after it. Finished runs are reused.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

# Benchmark this checkout's code, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from budgetlm import api  # noqa: E402
from budgetlm.config import load_config  # noqa: E402
from budgetlm.data.ingest.arith import SKILLS, arith_eval_set  # noqa: E402
from budgetlm.evaluate.exact_match import exact_match, tokenize_items  # noqa: E402

ARMS = ["random", "skillit-target", "static-matched", "skillit-probe", "skillit-all", "target-only"]
COMMON = {
    "model.size": "nano",
    "model.seq_len": 128,
    "data.vocab_size": 512,
    "eval.count": 10,
    "eval.tokens_per_domain": 4096,
    "samples.prompts_per_domain": 0,
    "checkpoint.every": 0.5,
}


def prerequisite_closure(target: str) -> list[str]:
    """The target skill and every skill it builds on, directly or not, easiest first."""
    chosen, todo = set(), [target]
    while todo:
        skill = todo.pop()
        if skill not in chosen:
            chosen.add(skill)
            todo += SKILLS[skill].prerequisites
    return [s for s in SKILLS if s in chosen]


def arm_settings(
    arm: str, seed: int, skills: list[str], target: str, args: argparse.Namespace, out: Path
) -> dict:
    skillit = {
        "data.curriculum": "skillit",
        "data.curriculum_eta": args.eta,
        "data.curriculum_every": args.every,
    }
    if arm == "random":
        return {}
    if arm == "target-only":
        return {"data.weights": {s: float(s == target) for s in skills}}
    if arm == "static-matched":
        curriculum = out / f"skillit-target-seed{seed}"
        if not (curriculum / "metrics.jsonl").exists() or not records(curriculum, "end"):
            raise SystemExit("static-matched needs the skillit-target run of the same seed first")
        steps = records(curriculum, "end")[-1]["steps"]
        mixture = [(r["step"], r["weights"]) for r in records(curriculum, "mixture")]
        return {"data.weights": {s: token_share(mixture, steps, s) for s in skills}}
    if arm == "skillit-target":
        return {**skillit, "data.skill_graph": "prerequisites", "data.curriculum_targets": [target]}
    if arm == "skillit-probe":
        return {**skillit, "data.curriculum_targets": [target]}
    if arm == "skillit-all":
        return {**skillit, "data.skill_graph": "prerequisites"}
    raise SystemExit(f"unknown arm {arm}; arms: {', '.join(ARMS)}")


def records(run_dir: Path, kind: str) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == kind]


def accuracy(run_dir: Path, skills: list[str], items: int) -> dict[str, float]:
    """Exact-match accuracy per skill on held-out problems, prompts after a newline."""
    model, tokenizer = api.load_model(run_dir), api.load_tokenizer(run_dir)
    result = {}
    for skill in skills:
        pairs = [("\n" + p, a) for p, a in arith_eval_set(skill, items)]
        result[skill] = exact_match(
            model, tokenize_items(pairs, tokenizer.encode), torch.device("cpu")
        )
    return result


def run_arm(arm: str, seed: int, skills: list[str], target: str, args, out: Path) -> dict:
    name = f"{arm}-seed{seed}"
    run = out / name
    if not ((run / "metrics.jsonl").exists() and records(run, "end")):
        values = {
            **COMMON,
            "data.sources": [f"builtin:arith/{s}" for s in skills],
            "data.cache_dir": args.cache,
            "budget": args.budget,
            "train.seed": seed,
            "out_dir": str(out),
            "name": name,
            **arm_settings(arm, seed, skills, target, args, out),
        }
        t0 = time.perf_counter()
        api.pretrain(load_config(None, list(values.items())), log=print)
        print(f"{name}: {time.perf_counter() - t0:.0f}s")
    end = records(run, "end")[-1]
    graph = records(run, "skill_graph")
    probe_steps = (graph[0].get("probe_cost") or {}).get("steps", 0) if graph else 0
    start = records(run, "start")[0]
    return {
        "accuracy": accuracy(run, skills, args.items),
        "val_loss": end["val_loss"],
        "train_tokens": end["tokens"],
        "probe_tokens": probe_steps * start["tokens_per_step"],
        # the weights over training: each update's, or the fixed ones of the start record
        "mixture": [(r["step"], r["weights"]) for r in records(run, "mixture") if "weights" in r]
        or [(0, start["weights"])],
        "tokens_per_step": start["tokens_per_step"],
        "steps": end["steps"],
        "graph": graph[0]["matrix"] if graph else None,
        "seconds": end["seconds"],
    }


def mean(values: list[float]) -> float:
    return statistics.fmean(values)


def sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def token_share(mixture: list, steps: int, skill: str) -> float:
    """Share of the training sequences that came from `skill`, from the logged weights (each
    holds from its update to the next)."""
    total = 0.0
    for (step, weights), nxt in zip(mixture, [*mixture[1:], (steps, None)], strict=True):
        total += weights[skill] * (nxt[0] - step)
    return total / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="sub_2digit", help="the hardest skill")
    parser.add_argument("--budget", default="1500Ktok")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--arms", nargs="+", default=ARMS)
    parser.add_argument("--eta", type=float, default=0.1)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--items", type=int, default=400, help="held-out problems per skill")
    parser.add_argument("--out", default="runs/bench-skills")
    parser.add_argument("--cache", default=None, help="data.cache_dir")
    parser.add_argument("--results", default="benchmarks/results/skills.json")
    args = parser.parse_args()
    skills = prerequisite_closure(args.target)
    out = Path(args.out) / args.target
    results = {
        arm: [run_arm(arm, seed, skills, args.target, args, out) for seed in range(args.seeds)]
        for arm in args.arms
    }
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "cache", "results")}
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    Path(args.results).write_text(
        json.dumps(
            {"settings": settings, "skills": skills, "common": COMMON, "runs": results}, indent=1
        )
        + "\n"  # fmt: skip
    )
    plot(results, skills, Path(args.results).with_suffix(".png"))
    print(
        f"\nbuiltin:arith skills {', '.join(skills)}; hardest: {args.target}; {args.budget} per "
        f"run incl. probes; {args.seeds} seeds (mean ± sd); exact match on {args.items} held-out "
        "problems per skill"
    )
    header = f"{'arm':<16} {args.target + ' acc':>16} {'mean acc':>15} {args.target + ' share':>18}"
    print(header + f" {'probe tok':>10} " + " ".join(f"{s:>11}" for s in skills))
    for arm, runs in results.items():
        hard = [r["accuracy"][args.target] for r in runs]
        avg = [mean(list(r["accuracy"].values())) for r in runs]
        share = [token_share(r["mixture"], r["steps"], args.target) for r in runs]
        per_skill = " ".join(f"{mean([r['accuracy'][s] for r in runs]):11.3f}" for s in skills)
        print(
            f"{arm:<16} {mean(hard):8.3f} ± {sd(hard):.3f} {mean(avg):7.3f} ± {sd(avg):.3f}"
            f" {mean(share):18.2f} {runs[0]['probe_tokens']:>10,} {per_skill}"
        )
    if "random" in results:
        base = mean([r["accuracy"][args.target] for r in results["random"]])
        for arm, runs in results.items():
            if arm.startswith("skillit"):
                got = mean([r["accuracy"][args.target] for r in runs])
                print(
                    f"  {arm} vs random on {args.target}: {got - base:+.3f} "
                    f"({got:.3f} vs {base:.3f})"
                )


def plot(results: dict, skills: list[str], path: Path) -> None:
    """Each curriculum arm's skill weights over training (seed 0), one panel per arm."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return
    arms = [a for a in results if a.startswith("skillit")]
    if not arms:
        return
    fig, axes = plt.subplots(1, len(arms), figsize=(4.5 * len(arms), 3.5), squeeze=False)
    for ax, arm in zip(axes[0], arms, strict=True):
        run = results[arm][0]
        steps = [step for step, _ in run["mixture"]]
        for skill in skills:
            ax.step(steps, [w[skill] for _, w in run["mixture"]], where="post", label=skill)
        ax.set_title(f"{arm} (seed 0)")
        ax.set_xlabel("step")
        ax.set_ylabel("mixture weight")
        ax.set_ylim(0, 1)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
