"""CI's training check: a short default-data run must finish and end each domain below the
unigram entropy of its data (a model no better than a table of token frequencies fails)."""

import json
import subprocess
import sys
import tempfile
from pathlib import Path


def main() -> int:
    budget = sys.argv[1] if len(sys.argv) > 1 else "60s"
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        done = subprocess.run(["budgetlm", "pretrain", "--budget", budget, "--out", str(run)])
        if done.returncode != 0:
            print(f"check_training: budgetlm pretrain --budget {budget} failed", file=sys.stderr)
            return 1
        records = [json.loads(line) for line in (run / "metrics.jsonl").open()]
        start = next(r for r in records if r["type"] == "start")
        end = next(r for r in records if r["type"] == "end")
        worse = {
            domain: (loss, start["unigram_entropy"][domain])
            for domain, loss in end["val_loss"].items()
            if loss >= start["unigram_entropy"][domain]
        }
        for domain, loss in end["val_loss"].items():
            entropy = start["unigram_entropy"][domain]
            print(f"check_training: {domain} {loss:.3f} nats (unigram entropy {entropy:.3f})")
        if worse:
            print(f"check_training: not below the unigram entropy: {worse}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
