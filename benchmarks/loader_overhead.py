"""Data-loader overhead: the share of a training step spent getting its batch.

Builds the default run's parts as `job.run.run_training` does (the built-in prose + code
data, prepared and cached by `prepare_cached` through `workflows.data.open_data`; the default
model "nano",
batch 16, seq_len 256, bf16 autocast on CPU; AdamW) and runs the trainer's own optimizer step
(`Trainer._optimizer_step`) with the sampler wrapped in a timer. Per step, the loader's work is
what the trainer does before the forward pass: `MixtureSampler.next_batch(batch_size)`, then
`torch.from_numpy(...).to(device)` (timed separately on the same batch). Reported: mean and
median over --steps steps after --warmup steps, and the sampler alone in a tight loop.

    python benchmarks/loader_overhead.py                  # 50 steps, ~1 minute
    python benchmarks/loader_overhead.py --steps 200 --batch-size 32
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

# Benchmark this checkout's code, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from budgetlm.config import load_config  # noqa: E402
from budgetlm.data.feed.sampler import MixtureSampler  # noqa: E402
from budgetlm.data.feed.streams import from_dataset  # noqa: E402
from budgetlm.machine.device import resolve_device  # noqa: E402
from budgetlm.model.decoder import Decoder  # noqa: E402
from budgetlm.run.records import MetricsLog  # noqa: E402
from budgetlm.train.loop import Trainer  # noqa: E402
from budgetlm.train.optim import build_adamw  # noqa: E402
from budgetlm.train.progress import Progress  # noqa: E402
from budgetlm.workflows.data import open_data  # noqa: E402


class TimedSampler:
    """A sampler that records how long each `next_batch` call took."""

    def __init__(self, sampler: MixtureSampler) -> None:
        self.sampler = sampler
        self.seconds: list[float] = []
        self.last: np.ndarray | None = None

    def next_batch(self, *args, **kwargs) -> np.ndarray:
        start = time.perf_counter()
        batch = self.sampler.next_batch(*args, **kwargs)
        self.seconds.append(time.perf_counter() - start)
        self.last = batch
        return batch

    def state_dict(self) -> dict:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)


def conversion_seconds(batch: np.ndarray, device: torch.device, repeats: int = 1000) -> float:
    """Mean seconds of the trainer's `torch.from_numpy(batch).to(device, non_blocking=True)`."""
    start = time.perf_counter()
    for _ in range(repeats):
        torch.from_numpy(batch).to(device, non_blocking=True)
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="timed steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the config's")
    parser.add_argument("--model", default=None, help="model size (default: the config's)")
    args = parser.parse_args()

    overrides = []
    if args.batch_size:
        overrides += [
            ("train.batch_size", args.batch_size),
            ("train.micro_batch_size", args.batch_size),
        ]
    if args.model:
        overrides.append(("model.size", args.model))
    config = load_config(None, overrides)
    dataset = open_data(config, tokenizer=None, log=print)
    data = from_dataset(dataset, config.data.weights)
    config.model = config.model.resolved(vocab_size=dataset.tokenizer.vocab_size)
    device = resolve_device(config.train.device)
    torch.manual_seed(config.train.seed)
    model = Decoder(config.model).to(device)
    optimizer = build_adamw(model, config.train, device)
    sampler = MixtureSampler(  # as runner.run_training builds it
        data.train,
        config.model.seq_len,
        data.weights,
        config.train.seed,
        max_epochs=config.data.max_epochs,
        schedule=config.data.schedule,
    )
    timed = TimedSampler(sampler)
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(
            model,
            optimizer,
            timed,
            schedule=None,  # not used by an optimizer step
            controller=None,
            val_streams=data.val,
            run_dir=Path(run_dir),
            train=config.train,
            evaluation=config.eval,
            checkpoint=config.checkpoint,
            metrics=MetricsLog(Path(run_dir) / "metrics.jsonl"),
            progress=Progress(),
            device=device,
            seq_len=config.model.seq_len,
        )
        step_seconds = []
        for i in range(args.warmup + args.steps):
            start = time.perf_counter()
            trainer._optimizer_step(config.train.lr)  # what Trainer.run times as a step
            if i >= args.warmup:
                step_seconds.append(time.perf_counter() - start)
        trainer.metrics.close()
    loader_seconds = timed.seconds[args.warmup :]
    convert = conversion_seconds(timed.last, device)
    tight = []
    for _ in range(max(200, args.steps)):
        start = time.perf_counter()
        sampler.next_batch(config.train.batch_size)
        tight.append(time.perf_counter() - start)

    print(
        f"\nmodel {config.model.size}, batch {config.train.batch_size} x seq_len "
        f"{config.model.seq_len}, {config.train.precision} on {device} "
        f"({torch.get_num_threads()} threads); data {', '.join(data.domains)}; "
        f"{args.steps} steps after {args.warmup} warm-up"
    )
    rows = [
        ("training step (whole)", step_seconds),
        ("  next_batch in the step", loader_seconds),
        ("  from_numpy + .to(device)", [convert]),
        ("next_batch alone (tight loop)", tight),
    ]
    header = f"{'':<32} {'mean ms':>9} {'median ms':>9} {'% of step':>9}"
    print(header)
    print("-" * len(header))
    step_mean = statistics.fmean(step_seconds)
    for name, values in rows:
        mean = statistics.fmean(values)
        print(
            f"{name:<32} {mean * 1e3:>9.3f} {statistics.median(values) * 1e3:>9.3f} "
            f"{100 * mean / step_mean:>8.3f}%"
        )
    overhead = (statistics.fmean(loader_seconds) + convert) / step_mean
    print(f"\nloader overhead: {100 * overhead:.3f}% of the mean step time (target < 2%)")


if __name__ == "__main__":
    main()
