"""How closely `pretrain` meets a time budget: training time (steps + evaluation + checkpoints)
against the budget, and whether the run ended fully decayed (last learning rate 0).

    python benchmarks/budget_adherence.py              # default model and data, 30s and 90s
    python benchmarks/budget_adherence.py 90s 5m       # other budgets
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

# Benchmark this checkout's code, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from budgetlm import api  # noqa: E402
from budgetlm.budget.spec import parse_budget  # noqa: E402
from budgetlm.config import load_config  # noqa: E402


def measure(budget: str, out_dir: str) -> dict:
    """Run the default pretrain with this budget; return its budget use from metrics.jsonl."""
    config = load_config(None, [("budget", budget), ("out_dir", out_dir), ("name", budget)])
    result = api.pretrain(config, log=lambda _: None)
    records = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    end = [r for r in records if r["type"] == "end"][-1]
    last_train = [r for r in records if r["type"] == "train"][-1]
    used = sum(end["seconds"][k] for k in ("steps", "eval", "checkpoint"))
    return {
        "budget_s": parse_budget(budget).amount,
        "used_s": used,
        "steps": end["steps"],
        "final_lr": last_train["lr"],
        "val_loss": end["val_loss"],
    }


def main(budgets: list[str]) -> None:
    print(f"{'budget':>8} {'used':>8} {'used/budget':>11} {'steps':>6} {'final lr':>9}  val loss")
    with tempfile.TemporaryDirectory() as tmp:
        for budget in budgets:
            m = measure(budget, tmp)
            losses = ", ".join(f"{d} {v:.3f}" for d, v in m["val_loss"].items())
            print(
                f"{budget:>8} {m['used_s']:7.1f}s {m['used_s'] / m['budget_s']:11.3f} "
                f"{m['steps']:6d} {m['final_lr']:9.2g}  {losses}"
            )


if __name__ == "__main__":
    main(sys.argv[1:] or ["30s", "90s"])
