"""Training throughput of budgetlm against Hugging Face transformers on the same model and data.

For each model size, the same Llama-style shape (d_model, layers, heads, kv heads, SwiGLU width,
vocab, tied embeddings, seq_len) is trained on the same fixed batches (windows of the built-in
prose + code data, drawn once by budgetlm's MixtureSampler as `runner.run_training` builds it) by
three contenders, each with fp32 master weights, bf16 autocast on CPU, AdamW (lr 3e-3, betas
0.9/0.95, weight decay 0.1) and gradient clipping at 1.0:

  budgetlm    `budgetlm.train.loop.Trainer._optimizer_step`, the step `Trainer.run` times, on
              the model and optimizer `runner.run_training` builds (`Decoder`,
              `build_optimizer`: fused AdamW by default)
  hf-loop     `transformers.LlamaForCausalLM` (attn_implementation="sdpa", use_cache=False) in
              a plain PyTorch loop under `torch.autocast("cpu", dtype=torch.bfloat16)`, with
              torch's fused AdamW (the default optimizer of the transformers Trainer)
  hf-trainer  the same model in `transformers.Trainer` (bf16=True, use_cpu=True, no evaluation,
              no saving, no logging, sequential sampler over the same pre-tokenized windows;
              needs `accelerate`)

Each contender runs --warmup untimed steps, then --steps timed ones; tokens/s is batch x seq_len
tokens per step over the mean timed step. With --rounds R the contenders run R times in turn
and the fastest round of each is kept (other processes can only slow a step down); "noise" is
the median / fastest timed step, near 1 on a quiet machine, and "others" the share of the
machine's CPU time that other processes used meanwhile (from /proc; near 0% when quiet).

MFU = tokens/s x FLOPs per token / peak, with FLOPs per token from
`budgetlm.model.flops.flops_per_token` for every contender (6 x matmul weights incl. the head, plus
the attention term) and the peak measured in this run: the best of several 4096x4096 bf16
matmuls (inputs already bf16, and under CPU autocast from fp32; the faster of the two). "ratio"
is budgetlm's tokens/s over the faster of hf-loop and hf-trainer (issue 5's target: >= 1.5,
with MFU >= 40%).

--compile compiles every contender's model (budgetlm: train.compile=true; hf-loop:
torch.compile(model); hf-trainer: torch_compile=True); compilation falls in the warm-up steps,
so keep --warmup >= 3.

--profile also breaks budgetlm's step into forward / backward / clip / optimizer and lists the
top operators by self CPU time (torch.profiler) per size. --pretrain adds a cross-check:
`budgetlm.api.pretrain` with a step budget (evaluations and checkpoints cut to the minimum),
reading tokens/s from the run's metrics.jsonl "end" record (all training steps, warm-up
included).

    python benchmarks/throughput.py                          # nano and small, ~5 minutes
    python benchmarks/throughput.py --sizes nano --steps 5 --warmup 1   # quick check
    python benchmarks/throughput.py --profile --pretrain     # plus the breakdown, cross-check
    python benchmarks/throughput.py --compile                # all three under torch.compile
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

# Benchmark this checkout's code, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from budgetlm import api  # noqa: E402
from budgetlm.config import RunConfig, load_config  # noqa: E402
from budgetlm.data.feed.sampler import MixtureSampler  # noqa: E402
from budgetlm.data.feed.streams import from_dataset  # noqa: E402
from budgetlm.data.prepare.cache import prepare_cached  # noqa: E402
from budgetlm.data.store.dataset import PreparedDataset  # noqa: E402
from budgetlm.model.config import ModelConfig  # noqa: E402
from budgetlm.model.decoder import Decoder  # noqa: E402
from budgetlm.model.flops import count_parameters, flops_per_token  # noqa: E402
from budgetlm.run.records import (
    MetricsLog,  # noqa: E402
    read_metrics,  # noqa: E402
)
from budgetlm.train.loop import Trainer  # noqa: E402
from budgetlm.train.optim import build_optimizer  # noqa: E402
from budgetlm.train.progress import Progress  # noqa: E402

CONTENDERS = ("budgetlm", "hf-loop", "hf-trainer")
DEVICE = torch.device("cpu")


@dataclass
class Result:
    size: str
    contender: str
    step_seconds: list[float]
    tokens_per_step: int
    others: float | None = None
    """Share of the machine's CPU time used by other processes meanwhile (None if unknown)."""

    @property
    def tokens_per_second(self) -> float:
        return self.tokens_per_step / statistics.fmean(self.step_seconds)

    @property
    def noise(self) -> float:
        return statistics.median(self.step_seconds) / min(self.step_seconds)


# ---------------------------------------------------------------- data and peak


def fixed_batches(config: RunConfig, count: int) -> tuple[list[np.ndarray], int]:
    """`count` batches [batch_size, seq_len + 1] of the default data, drawn once by the sampler
    the runner builds, and the tokenizer's vocabulary size."""
    d = config.data
    path = prepare_cached(
        d.sources, d.vocab_size, d.val_fraction, d.text_field, d.seed, d.cache_dir
    )
    dataset = PreparedDataset(path)
    data = from_dataset(dataset, d.weights)
    sampler = MixtureSampler(
        data.train, config.model.seq_len, data.weights, config.train.seed,
        max_epochs=d.max_epochs, schedule=d.schedule,
    )  # fmt: skip
    batches = [sampler.next_batch(config.train.batch_size) for _ in range(count)]
    return batches, dataset.tokenizer.vocab_size


def peak_flops(n: int = 4096, repeats: int = 6) -> dict[str, float]:
    """Best FLOP/s of an n x n x n bf16 matmul: inputs in bf16, and fp32 inputs under autocast."""
    g = torch.Generator().manual_seed(0)
    a32, b32 = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    a16, b16 = a32.bfloat16(), b32.bfloat16()

    def bf16() -> torch.Tensor:
        return a16 @ b16

    def autocast() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return a32 @ b32

    out = {}
    for name, fn in (("bf16", bf16), ("autocast", autocast)):
        fn()
        best = min(_timed(fn) for _ in range(repeats))
        out[name] = 2 * n**3 / best
    return out


class OtherLoad:
    """The share of all cores' time that other processes used between start() and stop(), from
    /proc/stat and /proc/self/stat (Linux; None elsewhere). Near 0 on a quiet machine."""

    def start(self) -> None:
        self.begin = self._sample()

    def stop(self) -> float | None:
        end = self._sample()
        if self.begin is None or end is None:
            return None
        (busy0, total0, own0), (busy1, total1, own1) = self.begin, end
        return max(0.0, (busy1 - busy0) - (own1 - own0)) / max(1, total1 - total0)

    @staticmethod
    def _sample() -> tuple[int, int, int] | None:
        try:
            fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
            own = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, ValueError, IndexError):
            return None
        idle = fields[3] + fields[4]  # idle + iowait
        total = sum(fields[:8])  # guest time is already counted in user
        return total - idle, total, int(own[11]) + int(own[12])  # utime + stime, all threads


def _timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ---------------------------------------------------------------- contenders


class FixedBatches:
    """A Trainer batch source serving the prepared batches in order."""

    def __init__(self, batches: list[np.ndarray]) -> None:
        self.batches, self.i = batches, 0

    def next_batch(self, n: int, progress: float = 0.0) -> np.ndarray:
        batch = self.batches[self.i % len(self.batches)]
        assert batch.shape[0] == n
        self.i += 1
        return batch

    def state_dict(self) -> dict:
        return {"i": self.i}

    def load_state_dict(self, state: dict) -> None:
        self.i = state["i"]


def budgetlm_trainer(config: RunConfig, batches: list[np.ndarray], run_dir: Path) -> Trainer:
    """A Trainer on the model and optimizer `runner.run_training` builds."""
    torch.manual_seed(config.train.seed)
    model = Decoder(config.model).to(DEVICE)
    optimizer = build_optimizer(model, config.train)  # AdamW by default (train.optimizer)
    return Trainer(
        model,
        optimizer,
        FixedBatches(batches),
        schedule=None,  # an optimizer step uses neither
        controller=None,
        val_streams={},
        run_dir=run_dir,
        train=config.train,
        evaluation=config.eval,
        checkpoint=config.checkpoint,
        metrics=MetricsLog(run_dir / "metrics.jsonl"),
        progress=Progress(),
        device=DEVICE,
        seq_len=config.model.seq_len,
    )


def run_budgetlm(config: RunConfig, batches: list[np.ndarray], warmup: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = budgetlm_trainer(config, batches, Path(tmp))
        seconds = []
        for i in range(len(batches)):
            t0 = time.perf_counter()
            trainer._optimizer_step(config.train.lr)  # what Trainer.run times as a step
            if i >= warmup:
                seconds.append(time.perf_counter() - t0)
        trainer.metrics.close()
    return seconds


def hf_model(model: ModelConfig) -> torch.nn.Module:
    """transformers' LlamaForCausalLM of the same shape as budgetlm's Decoder, in fp32."""
    from transformers import LlamaConfig, LlamaForCausalLM

    hf_config = LlamaConfig(
        vocab_size=model.vocab_size,
        hidden_size=model.d_model,
        intermediate_size=model.ffn_hidden,
        num_hidden_layers=model.n_layers,
        num_attention_heads=model.n_heads,
        num_key_value_heads=model.n_kv_heads,
        max_position_embeddings=model.seq_len,
        rms_norm_eps=model.norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": model.rope_theta},
        tie_word_embeddings=model.tie_embeddings,
        attention_bias=model.qkv_bias,
        use_cache=False,
        initializer_range=model.init_std,
        dtype=torch.float32,
    )
    hf_config._attn_implementation = "sdpa"
    torch.manual_seed(0)
    hf = LlamaForCausalLM(hf_config).float().to(DEVICE)
    hf.config._attn_implementation = "sdpa"
    total = sum(p.numel() for p in hf.parameters())  # tied weights counted once
    expected = count_parameters(model)["total"]
    if total != expected:
        raise RuntimeError(f"HF model has {total:,} parameters, budgetlm's {expected:,}")
    hf.train()
    return hf


def adamw_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


def run_hf_loop(config: RunConfig, batches: list[np.ndarray], warmup: int) -> list[float]:
    t = config.train
    model = hf_model(config.model)
    forward = torch.compile(model) if t.compile else model
    optimizer = torch.optim.AdamW(
        adamw_groups(model, t.weight_decay), lr=t.lr, betas=(t.beta1, t.beta2), fused=True
    )
    seconds = []
    for i, batch in enumerate(batches):
        t0 = time.perf_counter()
        ids = torch.from_numpy(batch[:, :-1])  # HF shifts the labels itself
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = forward(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i >= warmup:
            seconds.append(time.perf_counter() - t0)
    return seconds


def run_hf_trainer(config: RunConfig, batches: list[np.ndarray], warmup: int) -> list[float]:
    from transformers import Trainer as HFTrainer
    from transformers import TrainerCallback, TrainingArguments, default_data_collator

    t = config.train
    rows = [torch.from_numpy(row[:-1].copy()) for batch in batches for row in batch]

    class Windows(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(rows)

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {"input_ids": rows[i], "labels": rows[i]}

    class InOrder(HFTrainer):
        def _get_train_sampler(self, *args, **kwargs):  # the same batches as the others
            return torch.utils.data.SequentialSampler(self.train_dataset)

    class StepClock(TrainerCallback):
        def __init__(self) -> None:
            self.ends: list[float] = []
            self.threads: set[int] = set()

        def on_step_end(self, args, state, control, **kwargs):
            self.ends.append(time.perf_counter())
            self.threads.add(torch.get_num_threads())

    clock = StepClock()
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(
            output_dir=tmp,
            per_device_train_batch_size=t.batch_size,
            max_steps=len(batches),
            learning_rate=t.lr,
            adam_beta1=t.beta1,
            adam_beta2=t.beta2,
            weight_decay=t.weight_decay,
            max_grad_norm=t.grad_clip,
            lr_scheduler_type="constant",
            optim="adamw_torch_fused",
            bf16=True,
            use_cpu=True,
            eval_strategy="no",
            save_strategy="no",
            logging_strategy="no",
            report_to="none",
            disable_tqdm=True,
            dataloader_num_workers=0,
            dataloader_pin_memory=False,
            seed=t.seed,
            torch_compile=t.compile,
        )
        trainer = InOrder(
            model=hf_model(config.model),
            args=args,
            train_dataset=Windows(),
            data_collator=default_data_collator,
            callbacks=[clock],
        )
        trainer.train()
    if clock.threads != {torch.get_num_threads()}:
        print(f"  note: hf-trainer ran with {clock.threads} threads", flush=True)
    return list(np.diff(clock.ends[warmup:]))  # step k's time: from the end of step k - 1


def _share(value: float | None) -> str:
    return "?" if value is None else f"{100 * value:.0f}%"


RUNNERS = {"budgetlm": run_budgetlm, "hf-loop": run_hf_loop, "hf-trainer": run_hf_trainer}


# ---------------------------------------------------------------- profile and cross-check


def profile_budgetlm(config: RunConfig, batches: list[np.ndarray], warmup: int, top: int) -> None:
    """Forward / backward / clip / optimizer times of budgetlm's step (as `_optimizer_step` runs
    them, one micro-batch), then the top operators by self CPU time over a few steps."""
    with tempfile.TemporaryDirectory() as tmp:
        trainer = budgetlm_trainer(config, batches, Path(tmp))
        model, optimizer, cfg = trainer.model, trainer.optimizer, config.train
        phases: dict[str, list[float]] = {
            "forward": [],
            "backward": [],
            "clip": [],
            "optimizer": [],
        }

        def step(record: bool) -> None:
            batch = torch.from_numpy(trainer.batches.next_batch(cfg.batch_size))
            marks = [time.perf_counter()]
            with trainer.autocast():
                loss = trainer.forward(batch[:, :-1], batch[:, 1:])
                marks.append(time.perf_counter())
                loss.backward()
            marks.append(time.perf_counter())
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            marks.append(time.perf_counter())
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            marks.append(time.perf_counter())
            if record:
                for name, a, b in zip(phases, marks, marks[1:], strict=False):
                    phases[name].append(b - a)

        for i in range(len(batches) - 3):
            step(i >= warmup)
        total = sum(statistics.fmean(v) for v in phases.values())
        print(f"\nbudgetlm {config.model.size}: step phases (mean of {len(phases['forward'])})")
        for name, values in phases.items():
            mean = statistics.fmean(values)
            print(f"  {name:<10} {mean * 1e3:8.1f} ms  {100 * mean / total:5.1f}%")
        activities = [torch.profiler.ProfilerActivity.CPU]
        with torch.profiler.profile(activities=activities) as prof:
            for _ in range(3):
                step(False)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top))
        trainer.metrics.close()


def pretrain_check(size: str, steps: int, threads: int) -> float:
    """tokens_per_s of the "end" record of `api.pretrain` with a step budget."""
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(
            None,
            [
                ("model.size", size),
                ("budget", f"{steps}steps"),
                ("out_dir", tmp),
                ("name", "run"),
                ("eval.count", 1),
                ("eval.tokens_per_domain", 4096),
                ("checkpoint.every", 0),
                ("checkpoint.pre_decay", False),
                ("samples.prompts_per_domain", 1),  # 0 would mean every document: job/samples.py
                ("samples.max_new_tokens", 1),
            ],
        )
        torch.set_num_threads(threads)
        result = api.pretrain(config, log=lambda _m: None)
        end = [r for r in read_metrics(result.run_dir) if r["type"] == "end"][-1]
        return float(end["tokens_per_s"])


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["nano", "small"])
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=CONTENDERS)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per contender")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--rounds", type=int, default=1, help="run the contenders this often")
    parser.add_argument("--batch-size", type=int, default=None, help="default: the config's")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--profile", action="store_true", help="profile budgetlm's step")
    parser.add_argument("--top", type=int, default=15, help="operators listed by --profile")
    parser.add_argument("--pretrain", action="store_true", help="cross-check with api.pretrain")
    parser.add_argument(
        "--compile", action="store_true", help="torch.compile every contender's model"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if "hf-trainer" in args.contenders and importlib.util.find_spec("accelerate") is None:
        print("hf-trainer skipped: transformers.Trainer needs `pip install accelerate`")
        args.contenders.remove("hf-trainer")

    peak = peak_flops()
    peak_best = max(peak.values())
    print(
        f"bf16 matmul 4096^3 peak on this CPU ({args.threads} threads): "
        f"{peak['bf16'] / 1e12:.3f} TFLOP/s bf16 inputs, {peak['autocast'] / 1e12:.3f} TFLOP/s "
        f"under autocast; MFU against {peak_best / 1e12:.3f}",
        flush=True,
    )

    results: dict[tuple[str, str], Result] = {}
    configs = {}
    pretrain_rates = {}
    for size in args.sizes:
        overrides = [("model.size", size), ("train.device", "cpu")]
        if args.compile:
            overrides.append(("train.compile", True))
        if args.batch_size:
            overrides += [
                ("train.batch_size", args.batch_size),
                ("train.micro_batch_size", args.batch_size),
            ]
        config = load_config(None, overrides)
        batches, vocab = fixed_batches(config, args.warmup + args.steps)
        config.model = config.model.resolved(vocab_size=vocab)
        configs[size] = config
        tokens = config.train.batch_size * config.model.seq_len
        for r in range(args.rounds):
            for name in args.contenders:
                torch.set_num_threads(args.threads)
                gc.collect()
                t0 = time.perf_counter()
                load = OtherLoad()
                load.start()
                seconds = RUNNERS[name](config, batches, args.warmup)
                result = Result(size, name, seconds, tokens, load.stop())
                wall = time.perf_counter() - t0
                print(
                    f"{size:<6} {name:<11} round {r + 1}: {result.tokens_per_second:9,.0f} tok/s "
                    f"(noise {result.noise:.2f}, others {_share(result.others)}, {wall:.0f}s)",
                    flush=True,
                )
                best = results.get((size, name))
                if best is None or result.tokens_per_second > best.tokens_per_second:
                    results[size, name] = result
        if args.profile:
            profile_budgetlm(config, batches, min(args.warmup, 2), args.top)
        if args.pretrain:
            pretrain_rates[size] = pretrain_check(size, args.warmup + args.steps, args.threads)

    print(
        f"\nbatch {configs[args.sizes[0]].train.batch_size} x seq_len "
        f"{configs[args.sizes[0]].model.seq_len}, bf16 autocast on CPU, {args.threads} threads, "
        f"{args.steps} timed steps after {args.warmup} warm-up, best of {args.rounds} round(s), "
        f"torch.compile {'on' if args.compile else 'off'}; "
        f"peak {peak_best / 1e12:.3f} TFLOP/s"
    )
    header = (
        f"{'size':<6} {'params':>7} {'GFLOP/tok':>9} {'contender':<11} {'tokens/s':>9} "
        f"{'TFLOP/s':>8} {'MFU':>6} {'noise':>5} {'others':>6} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for size in args.sizes:
        config = configs[size]
        fpt = flops_per_token(config.model)
        params = count_parameters(config.model)["total"]
        hf = [
            results[size, c].tokens_per_second
            for c in ("hf-loop", "hf-trainer")
            if (size, c) in results
        ]
        ratio = None
        if (size, "budgetlm") in results and hf:
            ratio = results[size, "budgetlm"].tokens_per_second / max(hf)
        for name in args.contenders:
            res = results[size, name]
            achieved = res.tokens_per_second * fpt
            shown = f"{ratio:6.2f}" if name == "budgetlm" and ratio is not None else ""
            print(
                f"{size:<6} {params / 1e6:6.2f}M {fpt / 1e9:9.4f} {name:<11} "
                f"{res.tokens_per_second:9,.0f} {achieved / 1e12:8.4f} "
                f"{100 * achieved / peak_best:5.1f}% {res.noise:5.2f} "
                f"{_share(res.others):>6} {shown:>6}"
            )
            rows.append(
                {
                    "size": size,
                    "contender": name,
                    "tokens_per_s": res.tokens_per_second,
                    "mfu": achieved / peak_best,
                    "noise": res.noise,
                    "others_cpu_share": res.others,
                    "ratio": ratio if name == "budgetlm" else None,
                    "flops_per_token": fpt,
                    "parameters": params,
                }
            )
    if pretrain_rates:
        print("\napi.pretrain cross-check (metrics.jsonl 'end' tokens_per_s, warm-up included):")
        for size, rate in pretrain_rates.items():
            fpt = flops_per_token(configs[size].model)
            print(f"  {size:<6} {rate:9,.0f} tok/s, MFU {100 * rate * fpt / peak_best:.1f}%")
    print("\ntarget (issue 5): ratio >= 1.5 and MFU >= 40% at nano and small")
    if args.json:
        payload = {"peak_flops": peak, "rows": rows, "pretrain_tokens_per_s": pretrain_rates}
        args.json.write_text(json.dumps(payload, indent=1))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
