"""The memory estimate that fits a job to a device (job/decide.fit_memory: weights, gradients
and AdamW state of the trainable parameters, plus activations per sequence) against the peak
memory measured on CPU: each case trains a few steps in a fresh process, and the peak resident
set (ru_maxrss) minus the resident set before the model was built is the measured cost.

Prints, per case, the formula's estimate without and with the 1.5x safety factor
(train/memory.SAFETY), the measured cost, measured / estimate (below 1: the estimate is
conservative), and the same for the estimate whose activations are measured on fake tensors
(train/activation_probe, what the fit uses when memory is tight). As in training, glibc keeps
freed buffers for reuse (train/host_memory).

    python benchmarks/memory_estimate.py                 # ~2 minutes on 2 cores
    python benchmarks/memory_estimate.py --device cuda   # on a GPU: peak allocated, bf16
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CASES = {
    "native small, micro 4": {"size": "small", "micro": 4, "recompute": False},
    "native small, micro 4, recompute": {"size": "small", "micro": 4, "recompute": True},
    "native tiny, micro 16": {"size": "tiny", "micro": 16, "recompute": False},
    "qwen3 hf, micro 4": {"hf": "qwen3", "micro": 4, "recompute": False, "adapter": "none"},
    "qwen3 hf, micro 4, lora": {"hf": "qwen3", "micro": 4, "recompute": False, "adapter": "lora"},
    "qwen3 hf, micro 4, recompute": {
        "hf": "qwen3",
        "micro": 4,
        "recompute": True,
        "adapter": "none",
    },
}
SEQ_LEN = 256
VOCAB = 8192
QWEN3 = {  # ~30M parameters: large enough for training to dominate the process's memory
    "vocab_size": VOCAB, "hidden_size": 512, "intermediate_size": 1536, "num_hidden_layers": 6,
    "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 64,
    "max_position_embeddings": 1024, "tie_word_embeddings": False,
}  # fmt: skip


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def child(case: dict, folder: str, device_name: str) -> None:
    """Build the case's model, train 3 steps, print the estimate and the measured peak (peak
    RSS on CPU; torch.cuda.max_memory_allocated on CUDA, bf16 autocast there)."""
    import torch

    from budgetlm.model.build import build_model
    from budgetlm.model.config import ModelConfig
    from budgetlm.model.flops import count_parameters
    from budgetlm.train.config import TrainConfig
    from budgetlm.train.memory import (
        SAFETY,
        activation_bytes,
        measured_sequence_bytes,
        state_bytes,
    )
    from budgetlm.train.optim import build_optimizer
    from budgetlm.train.recompute import checkpoint_blocks

    torch.set_num_threads(2)
    if device_name == "cpu":
        from budgetlm.train.host_memory import reuse_freed_memory

        reuse_freed_memory()  # as job/run does before training
    if "hf" in case:
        import transformers  # noqa: F401  (its import is not the model's memory)

        from budgetlm.model.hf_backend import hf_backend_config

        config = hf_backend_config({"model_type": case["hf"], **QWEN3}, folder, SEQ_LEN)
        config.adapter = case["adapter"]
    else:
        config = ModelConfig(size=case["size"], seq_len=SEQ_LEN).resolved(VOCAB)
    count_parameters(config)  # the meta-device count, before the baseline
    device = torch.device(device_name)
    cuda = device.type == "cuda"
    batch = torch.randint(0, VOCAB, (case["micro"], SEQ_LEN + 1), device=device)
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device) if cuda else _rss()
    model = build_model(config).to(device)
    if case["recompute"]:
        checkpoint_blocks(model)
    optimizer = build_optimizer(model, TrainConfig())
    for _ in range(3):
        with torch.autocast("cuda", torch.bfloat16, enabled=cuda):
            loss = model(batch[:, :-1], batch[:, 1:])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if cuda:
        peak = torch.cuda.max_memory_allocated(device)
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    value_bytes = 2 if cuda else 4  # bf16 activations on CUDA, fp32 on CPU
    total = count_parameters(config)["total"]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    estimate = state_bytes(total, trainable) + case["micro"] * activation_bytes(
        config, 1, case["recompute"], value_bytes=value_bytes
    )
    unsafe = (
        state_bytes(total, trainable)
        + case["micro"]
        * activation_bytes(config, 1, case["recompute"], value_bytes=value_bytes)
        / SAFETY
    )
    probe = state_bytes(total, trainable) + case["micro"] * measured_sequence_bytes(
        config, case["recompute"], value_bytes
    )
    print(json.dumps({"estimate": estimate, "unsafe": unsafe, "measured": peak - before,
                      "probe": probe,
                      "parameters": total, "trainable": trainable}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", help="cpu (peak RSS) or cuda (peak allocated)")
    args = parser.parse_args()
    if args.child:
        child(CASES[args.child], str(ROOT), args.device)
        return
    print(f"{'case':<34} {'params':>8} {'train':>8} {'raw est':>8} {'est':>8} {'measured':>9} "
          f"{'meas/est':>8} {'probe':>7} {'meas/probe':>10}")  # fmt: skip
    for name in CASES:
        out = subprocess.run(
            [sys.executable, __file__, "--child", name, "--device", args.device],
            check=True, capture_output=True, text=True,
        ).stdout.strip().splitlines()[-1]  # fmt: skip
        r = json.loads(out)
        mib = 2**20
        print(
            f"{name:<34} {r['parameters'] / 1e6:7.1f}M {r['trainable'] / 1e6:7.2f}M "
            f"{r['unsafe'] / mib:7.0f}M {r['estimate'] / mib:7.0f}M {r['measured'] / mib:8.0f}M "
            f"{r['measured'] / r['estimate']:8.2f} {r['probe'] / mib:6.0f}M "
            f"{r['measured'] / r['probe']:10.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
