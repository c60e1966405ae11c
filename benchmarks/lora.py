"""LoRA against full continued pre-training of a transformers model, at equal token budgets.

Pre-trains a budgetlm base model on the old domain, exports it as a Hugging Face (Llama)
folder, then continues that folder with `budgetlm continue` (the transformers backend) on the
new domain, replaying the old one, once with full training and once with `--adapter lora`, for
each seed. Each continuation runs in its own process, so its peak resident memory is its own.
Prints per mode: final new-domain loss, forgetting (final old-domain loss minus the base
model's), training tokens/s and peak RSS, mean ± sd over seeds.

Each mode runs at every LR of its list (an LR sweep: LoRA is usually given a higher one), and
the best LR of each mode by final new-domain loss is marked.

    python benchmarks/lora.py                          # prose -> code, 2 seeds, ~12 minutes
    python benchmarks/lora.py --old builtin:code --new builtin:prose --lora-lr 3e-3,1e-2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from budgetlm import api  # noqa: E402
from budgetlm.config import load_config  # noqa: E402
from budgetlm.run.records import read_metrics, records_of  # noqa: E402


def records(run_dir: Path, kind: str) -> list[dict]:
    return records_of(read_metrics(run_dir), kind)


def domain_of(spec: str) -> str:
    return spec.split("=", 1)[0] if "=" in spec else spec.split(":")[-1]


def base_model(args: argparse.Namespace, out: Path) -> tuple[Path, Path]:
    """The base run (pre-trained on the old domain) and its Hugging Face export."""
    run, folder = out / "base", out / "base-hf"
    if not ((run / "metrics.jsonl").exists() and records(run, "end")):
        values = {
            "data.sources": [args.old],
            "budget": args.base_budget,
            "model.size": args.model,
            "eval.tokens_per_domain": args.eval_tokens,
            "out_dir": str(out),
            "name": "base",
        }
        api.pretrain(load_config(None, list(values.items())), log=print)
    if not (folder / "config.json").is_file():
        api.export(run, folder)
    return run, folder


def continued(
    args: argparse.Namespace, folder: Path, out: Path, mode: str, lr: float, seed: int
) -> dict:
    """One continuation in a child process: its end record, last eval and peak RSS."""
    name = f"{mode}-lr{lr:g}-seed{seed}"
    run = out / name
    if not ((run / "metrics.jsonl").exists() and records(run, "end")):
        command = [
            sys.executable, "-m", "budgetlm", "continue", "--from", str(folder),
            "--data", args.new, "--replay", args.old, "--budget", args.budget,
            "--out", str(run), "--continual.lr", str(lr), "--train.seed", str(seed),
            "--continual.seq_len", "256", "--eval.tokens_per_domain", str(args.eval_tokens),
            "--samples.prompts_per_domain", "1", "--checkpoint.every", "0",
        ] + (["--adapter", "lora"] if mode == "lora" else [])  # fmt: skip
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        if status != 0:
            raise SystemExit(f"{name} failed (status {status}); run it by hand: {command}")
        (run / "peak_rss_kib").write_text(str(usage.ru_maxrss))
    return {
        "end": records(run, "end")[-1],
        "final": records(run, "eval")[-1]["val_loss"],
        "peak_mib": int((run / "peak_rss_kib").read_text()) / 1024,
    }


def stat(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):8.3f} ± {sd:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default="builtin:prose")
    parser.add_argument("--new", default="builtin:code")
    parser.add_argument("--model", default="nano")
    parser.add_argument("--base-budget", default="2Mtok")
    parser.add_argument("--budget", default="500ktok")
    parser.add_argument("--lr", default="1e-3,3e-3", help="peak LRs of full training")
    parser.add_argument("--lora-lr", default="3e-3,1e-2,3e-2", help="peak LRs of LoRA")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--eval-tokens", type=int, default=16384)
    parser.add_argument("--out", default="runs/bench-lora")
    args = parser.parse_args()
    out = Path(args.out)
    base, folder = base_model(args, out)
    old, new = domain_of(args.old), domain_of(args.new)
    base_old = records(base, "eval")[-1]["val_loss"][old]
    rows = {}
    for mode, lrs in (("full", args.lr), ("lora", args.lora_lr)):
        for lr in map(float, lrs.split(",")):
            results = [continued(args, folder, out, mode, lr, seed) for seed in range(args.seeds)]
            rows[f"{mode} {lr:g}"] = {
                "mode": mode,
                "new": [r["final"][new] for r in results],
                "forgetting": [r["final"][old] - base_old for r in results],
                "tokens_per_s": [r["end"]["tokens_per_s"] for r in results],
                "peak_mib": [r["peak_mib"] for r in results],
            }
    best = {}
    for key, row in rows.items():
        if row["mode"] not in best or statistics.fmean(row["new"]) < statistics.fmean(
            rows[best[row["mode"]]]["new"]
        ):
            best[row["mode"]] = key
    start = records(out / next(iter(sorted(p.name for p in out.glob("full-*")))), "eval")[0]
    print(
        f"{old} -> {new}: base {args.model} {args.base_budget} (final {old} loss {base_old:.3f}, "
        f"{new} loss {start['val_loss'][new]:.3f}), continue {args.budget} with replay, "
        f"{args.seeds} seeds (mean ± sd); * = the best LR of its mode"
    )
    header = ("final new loss", "forgetting", "tokens/s", "peak RSS MiB")
    print(f"{'mode, LR':<13} " + " ".join(f"{h:>18}" for h in header))
    for key, row in rows.items():
        mark = "*" if best[row["mode"]] == key else " "
        print(
            f"{key:<12}{mark} {stat(row['new']):>18} {stat(row['forgetting']):>18} "
            f"{stat(row['tokens_per_s']):>18} {stat(row['peak_mib']):>18}"
        )
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
