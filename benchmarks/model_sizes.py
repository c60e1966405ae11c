"""Training throughput of the preset model sizes on this CPU, fp32 vs bf16 autocast.

Each step is forward + backward + AdamW on a micro batch of random tokens (vocab 4096,
seq_len 256, batch 16), timed after warmup steps. The table picks the default model size for
a CPU budget: see the "5-min tokens" and "tok/param" columns (Chinchilla's compute-optimal
ratio is ~20 tokens per parameter; Hoffmann et al., "Training Compute-Optimal Large
Language Models").

fp32 and bf16 steps alternate, so both see the same machine load, and tok/s comes from the
fastest step (timeit's convention: other processes can only slow a step down). The "noise"
column is median / fastest step time; well above 1 means the machine was busy.

    python benchmarks/model_sizes.py                # nano, micro, tiny, small; 2 threads
    python benchmarks/model_sizes.py --medium       # also medium
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

# Benchmark this checkout's code, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from budgetlm.model.config import MODEL_SIZES, ModelConfig  # noqa: E402
from budgetlm.model.decoder import Decoder  # noqa: E402
from budgetlm.model.flops import count_parameters, flops_per_token  # noqa: E402

VOCAB = 4096


def training_step(config: ModelConfig, batch: int, bf16: bool) -> Callable[[], None]:
    """One forward + backward + AdamW step on a fixed random batch, parameters in fp32 and the
    forward under CPU autocast when `bf16` (as the trainer runs it)."""
    torch.manual_seed(0)
    model = Decoder(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1)
    idx = torch.randint(0, config.vocab_size, (batch, config.seq_len + 1))
    x, y = idx[:, :-1], idx[:, 1:]

    def step() -> None:
        autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
        with autocast:
            loss = model(x, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def step_times(
    steps: dict[str, Callable[[], None]], warmup: int, min_steps: int, min_seconds: float
) -> dict[str, list[float]]:
    """Seconds per step for each named step function, run alternately after `warmup` untimed
    rounds, until each has `min_steps` samples and `min_seconds` of timed work."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    while any(len(t) < min_steps or sum(t) < min_seconds for t in times.values()):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--medium", action="store_true", help="also benchmark 'medium' (slow)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--batch", type=int, default=16, help="micro batch size (sequences)")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per measurement")
    parser.add_argument("--steps", type=int, default=5, help="minimum timed steps per dtype")
    parser.add_argument("--seconds", type=float, default=5.0, help="minimum timed s per dtype")
    parser.add_argument("--budget-min", type=float, default=5.0, help="budget for token column")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    last = "medium" if args.medium else "small"
    sizes = list(MODEL_SIZES)[: list(MODEL_SIZES).index(last) + 1]
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, vocab {VOCAB}, "
        f"seq_len {args.seq_len}, batch {args.batch}, load average {os.getloadavg()[0]:.1f}"
    )
    header = (
        f"{'size':<7}{'params':>9}{'GFLOP/tok':>10}{'fp32 tok/s':>12}{'fp32 TF/s':>10}"
        f"{'bf16 tok/s':>12}{'bf16 TF/s':>10}{'bf16/fp32':>10}{'noise':>7}"
        f"{f'{args.budget_min:g}-min tok':>13}{'tok/param':>10}"
    )
    print(header)
    print("-" * len(header))
    for size in sizes:
        config = ModelConfig(size=size, seq_len=args.seq_len).resolved(VOCAB)
        params = count_parameters(config)["total"]
        flops = flops_per_token(config)
        steps = {
            "fp32": training_step(config, args.batch, bf16=False),
            "bf16": training_step(config, args.batch, bf16=True),
        }
        times = step_times(steps, args.warmup, args.steps, args.seconds)
        tokens = args.batch * config.seq_len
        fp32, bf16 = (tokens / min(times[name]) for name in ("fp32", "bf16"))
        noise = max(statistics.median(t) / min(t) for t in times.values())
        budget_tokens = max(fp32, bf16) * args.budget_min * 60
        print(
            f"{size:<7}{params / 1e6:>8.2f}M{flops / 1e9:>10.3f}{fp32:>12,.0f}"
            f"{fp32 * flops / 1e12:>10.4f}{bf16:>12,.0f}{bf16 * flops / 1e12:>10.4f}"
            f"{bf16 / fp32:>10.2f}{noise:>7.2f}"
            f"{budget_tokens / 1e6:>12.1f}M{budget_tokens / params:>10.1f}",
            flush=True,
        )
    print(f"load average at end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
