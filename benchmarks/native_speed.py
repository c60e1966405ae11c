"""Native-decoder training speed of this checkout against an earlier revision, on this machine.

Runs the same `budgetlm pretrain` (built-in data, nano model, fp32, a step budget, evaluations
and samples cut to the minimum) with this checkout's code and with REV's (a temporary git
worktree), in turn, --rounds times each, and prints the training tokens/s of each from the
runs' end records (all training steps) and their ratio (this / REV; 1.0 = unchanged). The
fastest round of each is kept: other processes can only slow a run down.

    python benchmarks/native_speed.py --baseline b1441fb          # ~3 minutes on 2 cores
    python benchmarks/native_speed.py --baseline HEAD~5 --steps 60 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(code: Path, out: Path, steps: int) -> float:
    """Training tokens/s of one pretrain run with the package at `code`."""
    command = [
        sys.executable, "-m", "budgetlm", "pretrain",
        "--budget", f"{steps}steps", "--model", "nano", "--out", str(out),
        "--train.precision", "fp32", "--train.compile", "false",
        "--eval.count", "1", "--eval.tokens_per_domain", "512",
        "--checkpoint.every", "0", "--samples.prompts_per_domain", "0",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(code)}
    subprocess.run(command, cwd=code, env=env, check=True, capture_output=True, text=True)
    lines = (out / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    end = [r for r in map(json.loads, lines) if r["type"] == "end"][-1]
    return float(end["tokens_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=True, help="the git revision to compare with")
    parser.add_argument("--steps", type=int, default=40, help="training steps per run")
    parser.add_argument("--rounds", type=int, default=2, help="runs of each, in turn")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-native-") as tmp:
        tmp = Path(tmp)
        base = tmp / "baseline"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(base), args.baseline],
            cwd=ROOT, check=True, capture_output=True,
        )  # fmt: skip
        try:
            speeds: dict[str, list[float]] = {"this": [], "baseline": []}
            for i in range(args.rounds):
                for name, code in (("baseline", base), ("this", ROOT)):
                    speed = run(code, tmp / f"{name}-{i}", args.steps)
                    speeds[name].append(speed)
                    print(f"round {i + 1}: {name:<8} {speed:10,.0f} tokens/s", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(base)], cwd=ROOT)
    this, baseline = max(speeds["this"]), max(speeds["baseline"])
    print(f"fastest: this {this:,.0f} tokens/s, {args.baseline} {baseline:,.0f} tokens/s")
    print(f"ratio this / {args.baseline}: {this / baseline:.3f}")


if __name__ == "__main__":
    main()
