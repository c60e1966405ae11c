"""Do runs end on time? Runs `budgetlm pretrain` (the default data), a short one on builtin:prose,
and from that one a `budgetlm continue` on builtin:code per schedule kind (cosine: naive,
rewarm: rewarm, wsd: infinite), all under time budgets, and
prints each command's wall time against its budget, the precision chosen, the tokens trained
and the final losses against the unigram entropy.

    python benchmarks/time_budgets.py [--pretrain 5m] [--continue 90s] [--short 60s]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from budgetlm.budget.spec import parse_budget  # noqa: E402
from budgetlm.machine.fingerprint import describe_machine  # noqa: E402

CONTINUE_RECIPES = {"naive": "cosine", "rewarm": "rewarm", "infinite": "wsd"}


def run(args: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(["budgetlm", *args], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def row(name: str, budget: str, wall: float, run_dir: Path) -> str:
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    start = next(r for r in records if r["type"] == "start")
    end = next(r for r in records if r["type"] == "end")
    seconds = parse_budget(budget).amount
    losses = " ".join(
        f"{d} {v:.3f}/{start['unigram_entropy'].get(d, float('nan')):.3f}"
        for d, v in end["val_loss"].items()
    )
    return (
        f"{name:<26}{budget:>7}{wall:>8.1f}s{wall / seconds:>7.2f}  {start['precision']:<5}"
        f"{end['steps']:>6}{end['tokens'] / 1e6:>8.2f}M  {losses}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrain", default="5m")
    parser.add_argument("--continue", dest="cont", default="90s")
    parser.add_argument("--short", default="60s")
    a = parser.parse_args()
    import torch

    print(f"machine: {describe_machine(torch.device('cpu'))}")
    print(f"{'command':<26}{'budget':>7}{'wall':>9}{'ratio':>7}  prec  steps  tokens  "
          "final loss / unigram entropy")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        prose = ["--data", "builtin:prose"]
        runs = (("pretrain", a.pretrain, []), ("pretrain prose", a.short, prose))
        for name, budget, data in runs:
            out = root / name.replace(" ", "_")
            wall = run(["pretrain", "--budget", budget, "--out", str(out), *data])
            print(row(name, budget, wall, out), flush=True)
        parent = root / "pretrain_prose"
        for recipe, schedule in CONTINUE_RECIPES.items():
            out = root / f"continue_{recipe}"
            wall = run(["continue", "--from", str(parent), "--data", "builtin:code",
                        "--recipe", recipe, "--budget", a.cont, "--out", str(out)])  # fmt: skip
            print(row(f"continue {recipe} ({schedule})", a.cont, wall, out), flush=True)


if __name__ == "__main__":
    main()
