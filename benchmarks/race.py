"""Fastest to a given loss: budgetlm's default against the nanoGPT and transformers recipes.

Issue 16.

One command, one machine, the same data (the built-in prose + code corpora, their held-out
split) and the same wall-clock budget for every contender:

  budgetlm    `budgetlm pretrain --budget B --train.seed S`: the default, every choice (model
              size, batch, precision, compile, LR, schedule) made by the product itself. Its
              clock is the run's own `elapsed` (setup, compile and evaluations included).
  nanogpt     the nanoGPT recipe: a GPT-2 block (LayerNorm, GELU MLP, learned positions, tied
              embeddings: transformers' GPT2LMHeadModel, which nanoGPT's model.py mirrors), AdamW
              (betas 0.9/0.95, weight decay 0.1 on matrices), linear warm-up over 2% of the steps
              then cosine decay to lr/10, gradient clipping at 1.0.
  hf-trainer  transformers' LlamaForCausalLM of budgetlm's shape in the transformers `Trainer`
              with its usual recipe (AdamW, weight decay 0.0, warm-up 3%, cosine decay to 0,
              max_grad_norm 1.0).

The baselines get the width, depth, heads, sequence length, batch and precision that budgetlm
chose for the same budget on this machine (read from its config.yaml), and batches from the same
sampler with the same seed. Each baseline times 8 steps of its own (after 2 untimed), then sets
its step count so that its training ends on the budget (a callback also stops it at the budget),
as a careful user would. Each baseline sweeps --lrs on the first seed; the best LR is then run
on every seed. All are scored by budgetlm's `validation_loss` on the same validation tokens
(mean nats/token over the domains) and bits per byte with the run's bytes per token.

Reported per contender: final loss and bits per byte (mean +- spread over seeds), tokens, MFU
(tokens/s x budgetlm's FLOPs per token / the matmul peak of the chosen precision measured in
this run), and for each baseline the wall-clock and tokens at which budgetlm's eval records
first reach its final loss (the first eval at or below it: an upper bound, evals are sparse)
as ratios of the baseline's own. Issue 16's target: <= 0.5x tokens and <= 0.6x wall-clock.

    python benchmarks/race.py --budget 90s --seeds 0 1 2      # ~20 minutes on 2 cores
    python benchmarks/race.py --budget 5m --seeds 0 1 2       # ~1 hour
    python benchmarks/race.py --budget 30s --seeds 0 --lrs 3e-3   # logic check

On a CUDA machine every contender trains on the GPU (budgetlm decides so itself; the baselines
follow its config's train.device), and the peak is an 8192^3 matmul there.
--compile-baselines compiles the baselines too.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from budgetlm.budget.spec import parse_budget  # noqa: E402
from budgetlm.config import load_config  # noqa: E402
from budgetlm.data.feed.sampler import MixtureSampler  # noqa: E402
from budgetlm.data.feed.streams import TrainingData, from_dataset  # noqa: E402
from budgetlm.data.prepare.cache import prepare_cached  # noqa: E402
from budgetlm.data.store.dataset import PreparedDataset  # noqa: E402
from budgetlm.evaluate.bpb import bits_per_byte  # noqa: E402
from budgetlm.evaluate.loss import validation_loss  # noqa: E402
from budgetlm.model.flops import flops_per_token  # noqa: E402
from budgetlm.run.records import read_metrics, records_of  # noqa: E402


class CausalLoss(torch.nn.Module):
    """Wraps a transformers causal LM as budgetlm's model(inputs, targets, reduction) -> loss."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, inputs, targets, reduction: str = "mean"):
        logits = self.model(input_ids=inputs).logits.float()
        loss = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1), targets.flatten(), reduction=reduction
        )
        return loss.view(targets.shape) if reduction == "none" else loss


# ---------------------------------------------------------------- budgetlm


def run_budgetlm(
    budget: str, seed: int, out: Path, extra: tuple[str, ...] = (), name: str = "budgetlm"
) -> dict:
    """`budgetlm pretrain` as a user runs it (with `extra` flags); its decisions and eval curve
    from the run dir."""
    run = out / f"{name}-s{seed}"
    cmd = [sys.executable, "-m", "budgetlm", "pretrain", "--budget", budget,
           "--out", str(run), "--train.seed", str(seed), *extra]  # fmt: skip
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    config = load_config(run / "config.yaml")
    records = read_metrics(run)
    end = records_of(records, "end")[-1]
    curve = [(r["elapsed"], r["tokens"], statistics.fmean(r["val_loss"].values()))
             for r in records_of(records, "eval")]  # fmt: skip
    return {
        "config": config,
        "loss": statistics.fmean(end["val_loss"].values()),
        "bpb": statistics.fmean(end["val_bpb"].values()),
        "tokens": end["tokens"],
        "steps_s": end["seconds"]["steps"],
        "wall": wall,
        "curve": curve,
    }


# ---------------------------------------------------------------- baselines


def gpt2_model(config) -> torch.nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    m = config.model
    return GPT2LMHeadModel(GPT2Config(
        vocab_size=m.vocab_size, n_positions=m.seq_len, n_embd=m.d_model, n_layer=m.n_layers,
        n_head=m.n_heads, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
        tie_word_embeddings=True, use_cache=False, attn_implementation="sdpa",
        bos_token_id=None, eos_token_id=None,
    ))  # fmt: skip


def llama_model(config) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    m = config.model
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=m.vocab_size, hidden_size=m.d_model, intermediate_size=m.ffn_hidden,
        num_hidden_layers=m.n_layers, num_attention_heads=m.n_heads,
        num_key_value_heads=m.n_kv_heads, max_position_embeddings=m.seq_len,
        tie_word_embeddings=m.tie_embeddings, use_cache=False, attn_implementation="sdpa",
    ))  # fmt: skip


def open_data(config) -> TrainingData:
    """The prepared built-in data of budgetlm's run (its cache), opened once for every baseline."""
    d = config.data
    dataset = PreparedDataset(
        prepare_cached(d.sources, d.vocab_size, d.val_fraction, d.text_field, d.seed, d.cache_dir)
    )
    return from_dataset(dataset, d.weights)


def sampler_for(config, data: TrainingData, seed: int) -> MixtureSampler:
    return MixtureSampler(data.train, config.model.seq_len, data.weights, seed,
                          max_epochs=config.data.max_epochs,
                          schedule=config.data.schedule)  # fmt: skip


def device_for(config) -> torch.device:
    """The device budgetlm's run trained on: CUDA when it is there (train.device auto or cuda)."""
    wanted = config.train.device
    return torch.device("cuda" if wanted != "cpu" and torch.cuda.is_available() else "cpu")


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work, so a clock read after it times the work (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast_for(precision: str, device: torch.device):
    if precision == "bf16":
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    import contextlib

    return contextlib.nullcontext


def nanogpt_lr(step: int, steps: int, lr: float) -> float:
    warm = max(1, int(0.02 * steps))
    if step < warm:
        return lr * (step + 1) / warm
    t = (step - warm) / max(1, steps - warm)
    return lr / 10 + 0.5 * (lr - lr / 10) * (1 + math.cos(math.pi * t))


def run_nanogpt(
    config, data: TrainingData, lr: float, seed: int, seconds: float, compile: bool = False
) -> dict:
    """The nanoGPT loop, its step count set from 8 timed steps so that it ends on the budget;
    `compile` wraps the model in torch.compile (its compile time counts, as nanoGPT's does)."""
    t0 = time.perf_counter()
    device = device_for(config)
    torch.manual_seed(seed)
    model = gpt2_model(config).to(device)
    forward = torch.compile(model) if compile else model
    decay = [p for p in model.parameters() if p.dim() >= 2]
    other = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": other, "weight_decay": 0.0}],
                            lr=lr, betas=(0.9, 0.95), fused=True)  # fmt: skip
    sampler, batch = sampler_for(config, data, seed), config.train.batch_size
    cast = autocast_for(config.train.precision, device)

    def step(i: int, steps: int) -> None:
        ids = torch.from_numpy(sampler.next_batch(batch).astype(np.int64)).to(device)
        for g in opt.param_groups:
            g["lr"] = nanogpt_lr(i, steps, lr)
        with cast():
            loss = forward(input_ids=ids[:, :-1]).logits.float()
        loss = torch.nn.functional.cross_entropy(loss.flatten(0, 1), ids[:, 1:].flatten())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    guess = 10**6  # the schedule's first steps are warm-up whatever the step count
    for i in range(2):  # the first steps allocate (and compile); time the next 8
        step(i, guess)
    synchronize(device)
    t_probe = time.perf_counter()
    for i in range(2, 10):
        step(i, guess)
    synchronize(device)
    per_step = (time.perf_counter() - t_probe) / 8
    steps = 10 + max(1, int((seconds - (time.perf_counter() - t0)) / per_step))
    i = 10
    while i < steps and time.perf_counter() - t0 < seconds:
        step(i, steps)
        i += 1
    synchronize(device)
    train_s = time.perf_counter() - t0
    return {"model": model, "steps": i, "tokens": i * batch * config.model.seq_len,
            "train_s": train_s, "planned": steps}  # fmt: skip


def run_hf_trainer(
    config, data: TrainingData, lr: float, seed: int, seconds: float, compile: bool = False
) -> dict:
    """transformers' Trainer on LlamaForCausalLM, max_steps from 8 timed steps, stopped at the
    budget by a callback; `compile` is the Trainer's own torch_compile option."""
    from transformers import Trainer, TrainerCallback, TrainingArguments

    t0 = time.perf_counter()
    device = device_for(config)
    torch.manual_seed(seed)
    model = llama_model(config)
    sampler, batch, seq = (
        sampler_for(config, data, seed),
        config.train.batch_size,
        config.model.seq_len,
    )

    class Stream(torch.utils.data.IterableDataset):
        def __iter__(self):
            while True:
                for row in sampler.next_batch(batch).astype(np.int64):
                    ids = torch.from_numpy(row[:-1].copy())
                    yield {"input_ids": ids, "labels": ids}

    class Clock(TrainerCallback):
        def __init__(self, limit: float | None) -> None:
            self.limit, self.steps, self.ends = limit, 0, []

        def on_step_end(self, args, state, control, **kwargs):
            synchronize(device)
            self.steps = state.global_step
            self.ends.append(time.perf_counter())
            if self.limit is not None and time.perf_counter() - t0 >= self.limit:
                control.should_training_stop = True

    def train(max_steps: int, lr_now: float, limit: float | None) -> Clock:
        clock = Clock(limit)
        with tempfile.TemporaryDirectory() as tmp:
            args = TrainingArguments(
                output_dir=tmp, max_steps=max_steps, learning_rate=lr_now,
                per_device_train_batch_size=batch, lr_scheduler_type="cosine",
                warmup_steps=max(1, int(0.03 * max_steps)),
                bf16=config.train.precision == "bf16", use_cpu=device.type == "cpu",
                torch_compile=compile, report_to=[],
                save_strategy="no", eval_strategy="no", logging_strategy="no", seed=seed,
                dataloader_num_workers=0, disable_tqdm=True,
            )  # fmt: skip
            Trainer(model=model, args=args, train_dataset=Stream(), callbacks=[clock]).train()
        return clock

    # 10 timing steps on a throwaway copy of the start, so the real run starts fresh
    start = {k: v.clone() for k, v in model.state_dict().items()}
    ends = train(10, lr, None).ends
    per_step = (ends[-1] - ends[1]) / (len(ends) - 2)  # steps 3-10: past the first allocations
    model.load_state_dict(start)
    steps = max(6, int((seconds - (time.perf_counter() - t0)) / per_step))
    clock = train(steps, lr, seconds)
    train_s = time.perf_counter() - t0
    return {"model": model, "steps": clock.steps, "tokens": clock.steps * batch * seq,
            "train_s": train_s, "planned": steps}  # fmt: skip


BASELINES = {"nanogpt": run_nanogpt, "hf-trainer": run_hf_trainer}


def score(config, data: TrainingData, result: dict, bytes_per_token: dict[str, float]) -> dict:
    losses = validation_loss(
        CausalLoss(result["model"]), data.val, config.model.seq_len,
        config.eval.tokens_per_domain, config.eval.batch_size, device_for(config),
        autocast_for(config.train.precision, device_for(config)),
    )  # fmt: skip
    bpb = bits_per_byte(losses, bytes_per_token)
    return {
        "loss": statistics.fmean(losses.values()),
        "bpb": statistics.fmean(bpb.values()),
        "tokens": result["tokens"],
        "train_s": result["train_s"],
        "steps": result["steps"],
        "planned": result["planned"],
    }


# ---------------------------------------------------------------- report


def matmul_peak(precision: str, device: torch.device, n: int = 2048) -> float:
    """FLOP/s of the best of 5 n^3 matmuls in the run's precision on its device (n 8192 on
    CUDA, where 2048 would not fill the GPU)."""
    n = 8192 if device.type == "cuda" else n
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    a @ b
    best = math.inf
    for _ in range(5):
        synchronize(device)
        t = time.perf_counter()
        a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def first_reach(curve: list[tuple[float, int, float]], target: float) -> tuple[float, int] | None:
    for elapsed, tokens, loss in curve:
        if loss <= target:
            return elapsed, tokens
    return None


def spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.fmean(values):.3f} ± {statistics.stdev(values):.3f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--budget", default="90s")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--lrs", type=float, nargs="+", default=[1e-3, 3e-3, 1e-2])
    p.add_argument(
        "--compile-baselines",
        action="store_true",
        help="torch.compile the baselines (nanoGPT's compile=True; the Trainer's "
        "torch_compile); their compile time counts in their budget",
    )
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    seconds = parse_budget(args.budget).amount

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        ours = [run_budgetlm(args.budget, s, out) for s in args.seeds]
        config = ours[0]["config"]
        m = config.model
        print(f"budgetlm chose: d_model {m.d_model}, {m.n_layers} layers, {m.n_heads} heads, "
              f"seq {m.seq_len}, batch {config.train.batch_size}, {config.train.precision}, "
              f"compile {config.train.compile}, lr {config.train.lr}")  # fmt: skip
        run0 = out / f"budgetlm-s{args.seeds[0]}"
        start = records_of(read_metrics(run0), "start")[0]
        bpt = start["bytes_per_token"]
        data = open_data(config)
        compiled = args.compile_baselines

        def trained(fn, lr: float, seed: int) -> dict:
            return score(config, data, fn(config, data, lr, seed, seconds, compiled), bpt)

        results: dict[str, dict] = {}
        for name, fn in BASELINES.items():
            sweep = {}
            for lr in args.lrs:
                sweep[lr] = trained(fn, lr, args.seeds[0])
                print(
                    f"  {name} lr {lr:g}: loss {sweep[lr]['loss']:.3f}, "
                    f"{sweep[lr]['steps']} of {sweep[lr]['planned']} planned steps in "
                    f"{sweep[lr]['train_s']:.0f} s"
                )
            best = min(sweep, key=lambda lr: sweep[lr]["loss"])
            runs = [sweep[best]] + [trained(fn, best, s) for s in args.seeds[1:]]
            results[name] = {"lr": best, "sweep": sweep, "runs": runs}

    peak = matmul_peak(config.train.precision, device_for(config))
    fpt = flops_per_token(m)
    print(
        f"\nbudget {args.budget}, seeds {args.seeds}, baselines "
        f"{'compiled' if args.compile_baselines else 'eager'}; matmul peak "
        f"{peak / 1e9:.0f} GFLOP/s ({config.train.precision}); {fpt / 1e6:.1f} MFLOP/token"
    )
    print("| contender | best LR | val loss (nats) | bits/byte | tokens | MFU |")
    print("|---|---|---|---|---|---|")
    mfu = statistics.fmean(r["tokens"] / r["steps_s"] * fpt / peak for r in ours)
    print(
        f"| budgetlm default | {config.train.lr:g} | {spread([r['loss'] for r in ours])} | "
        f"{spread([r['bpb'] for r in ours])} | {statistics.fmean(r['tokens'] for r in ours):,.0f}"
        f" | {mfu:.1%} |"
    )
    for name, res in results.items():
        runs = res["runs"]
        mfu = statistics.fmean(r["tokens"] / r["train_s"] * fpt / peak for r in runs)
        print(
            f"| {name} | {res['lr']:g} | {spread([r['loss'] for r in runs])} | "
            f"{spread([r['bpb'] for r in runs])} | "
            f"{statistics.fmean(r['tokens'] for r in runs):,.0f} | {mfu:.1%} |"
        )
    print(
        "\n| baseline | its final loss | budgetlm reaches it at (wall, tokens) | "
        "wall ratio | tokens ratio |"
    )
    print("|---|---|---|---|---|")
    for name, res in results.items():
        runs = res["runs"]
        target = statistics.fmean(r["loss"] for r in runs)
        walls, toks = [], []
        for r in ours:
            hit = first_reach(r["curve"], target)
            if hit:
                walls.append(hit[0])
                toks.append(hit[1])
        base_wall = statistics.fmean(r["train_s"] for r in runs)
        base_tok = statistics.fmean(r["tokens"] for r in runs)
        if len(walls) < len(ours):
            print(
                f"| {name} | {target:.3f} | not reached in {len(ours) - len(walls)} of "
                f"{len(ours)} seeds | - | - |"
            )
            continue
        w, t = statistics.fmean(walls), statistics.fmean(toks)
        print(
            f"| {name} | {target:.3f} | {w:.0f} s, {t:,.0f} | {w / base_wall:.2f}x | "
            f"{t / base_tok:.2f}x |"
        )
    if args.json:
        ours_out = [{k: v for k, v in r.items() if k != "config"} for r in ours]
        args.json.write_text(json.dumps({"budgetlm": ours_out, **results}, indent=1, default=str))


if __name__ == "__main__":
    main()
