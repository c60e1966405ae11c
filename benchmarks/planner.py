"""The planner's predicted wall time for its recommended run against the run's measured time.

Plans a FLOP budget on the default data (measuring this machine's speed afresh: the cached
speeds are cleared first), runs the written config with `api.pretrain`, and prints predicted
against measured wall time of the whole run (setup, training, evaluations, checkpoints,
samples). Issue 7's target is an error within 15%.

    python benchmarks/planner.py                       # 4e13flop, ~3.5 minutes
    python benchmarks/planner.py --budget 1e14flop
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from budgetlm import api  # noqa: E402
from budgetlm.config import load_config  # noqa: E402
from budgetlm.data.prepare.cache import default_cache_dir  # noqa: E402
from budgetlm.workflows.plan import THROUGHPUT_CACHE  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budget", default="4e13flop")
    parser.add_argument("--out", default=None, help="work directory (default: a temporary one)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="bench-planner-"))
    work.mkdir(parents=True, exist_ok=True)
    (default_cache_dir() / THROUGHPUT_CACHE).unlink(missing_ok=True)  # measure afresh
    config = load_config(None, [("budget", args.budget)])
    t0 = time.perf_counter()
    plan, planned = api.plan(config, out=work / "plan.yaml")
    plan_seconds = time.perf_counter() - t0
    planned.out_dir, planned.name = str(work), "run"
    t0 = time.perf_counter()
    result = api.pretrain(planned)
    measured = time.perf_counter() - t0
    predicted = plan.chosen.seconds
    error = predicted / measured - 1
    row = {
        "budget": args.budget,
        "size": plan.chosen.size,
        "planning_seconds": plan_seconds,
        "predicted_seconds": predicted,
        "measured_seconds": measured,
        "error": error,
        "predicted_tokens": plan.chosen.tokens,
        "trained_tokens": result.tokens,
    }
    print(json.dumps(row, indent=1))
    print(f"predicted {predicted:.1f} s, measured {measured:.1f} s: error {100 * error:+.1f}% "
          f"(target within 15%: {'met' if abs(error) <= 0.15 else 'NOT met'})")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(row, indent=1))


if __name__ == "__main__":
    main()
