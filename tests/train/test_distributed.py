"""Data-parallel training with torchrun (gloo on CPU): same result as one process, and a run
resumes with a different number of processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from budgetlm.data.feed.sampler import MixtureSampler
from budgetlm.errors import UserError
from budgetlm.train.checkpoint import list_checkpoints
from budgetlm.train.distributed import rank_slice


def test_rank_slices_see_the_same_sequences_for_any_number_of_processes():
    streams = {"a": np.arange(0, 1001, dtype=np.uint16), "b": np.arange(2000, 2301)}
    one = MixtureSampler(streams, seq_len=10, seed=1).next_batch(8)
    batch = MixtureSampler(streams, seq_len=10, seed=1).next_batch(8)
    parts = [rank_slice(batch, rank, 2) for rank in range(2)]
    assert sorted(map(tuple, np.concatenate(parts))) == sorted(map(tuple, one))
    with pytest.raises(UserError, match="not divisible by the 3 processes"):
        rank_slice(batch, 0, 3)


def pretrain_command(prepared, out, processes, parallel="ddp"):
    launcher = (
        [sys.executable, "-m", "torch.distributed.run", "--standalone"]
        + [f"--nproc_per_node={processes}", "-m", "budgetlm"]
        if processes > 1
        else [sys.executable, "-m", "budgetlm"]
    )
    return launcher + [
        "pretrain", "--prepared", str(prepared), "--out", str(out), "--budget", "12steps",
        "--model.size", "custom", "--model.d_model", "32", "--model.n_layers", "2",
        "--model.n_heads", "2", "--model.seq_len", "32", "--train.batch_size", "8",
        "--train.micro_batch_size", "2", "--train.precision", "fp32", "--checkpoint.every", "0.5",
        "--eval.count", "2", "--eval.tokens_per_domain", "256", "--samples.max_new_tokens", "4",
        "--train.parallel", parallel,
    ]  # fmt: skip


def final_weights(run):
    (final,) = [p for p in list_checkpoints(run) if p.name == "step_000012"]
    return load_file(final / "model.safetensors")


def train_losses(run_dir):
    records = map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
    return [(r["step"], r["loss"]) for r in records if r["type"] == "train"]


def run(command):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_two_processes_train_like_one_and_resume_with_one(tiny_prepared, tmp_path):
    run(pretrain_command(tiny_prepared, tmp_path / "one", 1))
    two = run(pretrain_command(tiny_prepared, tmp_path / "two", 2))
    assert two.stdout.count("run ") == 1  # rank 0 alone reports
    one_w, two_w = final_weights(tmp_path / "one"), final_weights(tmp_path / "two")
    for key in one_w:
        torch.testing.assert_close(two_w[key], one_w[key], rtol=1e-4, atol=2e-5)
    start = (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()[0]
    assert '"processes": 2' in start
    curves = [train_losses(tmp_path / name) for name in ("one", "two")]
    assert [step for step, _ in curves[0]] == [step for step, _ in curves[1]]
    np.testing.assert_allclose([x for _, x in curves[1]], [x for _, x in curves[0]], rtol=1e-5)

    # the two-process run, stopped at its step-6 checkpoint, resumed by a single process
    shutil.copytree(tmp_path / "two", tmp_path / "resumed")
    shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "step_000012")
    run([sys.executable, "-m", "budgetlm.cli", "pretrain", "--resume", "--out",
         str(tmp_path / "resumed")])  # fmt: skip
    resumed = final_weights(tmp_path / "resumed")
    for key in one_w:
        torch.testing.assert_close(resumed[key], one_w[key], rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("parallel", ["ddp", "fsdp"])
def test_a_single_process_run_resumes_with_two(tiny_prepared, tmp_path, parallel):
    run(pretrain_command(tiny_prepared, tmp_path / "one", 1))
    shutil.copytree(tmp_path / "one", tmp_path / "resumed")
    shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "step_000012")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    run([*launcher, "--nproc_per_node=2", "-m", "budgetlm", "pretrain", "--resume", "--out",
         str(tmp_path / "resumed"), "--train.parallel", parallel])  # fmt: skip
    one_w, resumed = final_weights(tmp_path / "one"), final_weights(tmp_path / "resumed")
    for key in one_w:
        torch.testing.assert_close(resumed[key], one_w[key], rtol=1e-4, atol=2e-5)


def test_sharded_training_matches_one_process_and_resumes_sharded(tiny_prepared, tmp_path):
    """FSDP2 over two processes: the same losses and weights as one process, checkpoints in
    the unsharded format, and a sharded resume from the middle lands on the same weights."""
    run(pretrain_command(tiny_prepared, tmp_path / "one", 1))
    run(pretrain_command(tiny_prepared, tmp_path / "fsdp", 2, parallel="fsdp"))
    curves = [train_losses(tmp_path / name) for name in ("one", "fsdp")]
    np.testing.assert_allclose([x for _, x in curves[1]], [x for _, x in curves[0]], rtol=1e-5)
    one_w, fsdp_w = final_weights(tmp_path / "one"), final_weights(tmp_path / "fsdp")
    assert fsdp_w.keys() == one_w.keys()
    for key in one_w:
        torch.testing.assert_close(fsdp_w[key], one_w[key], rtol=1e-4, atol=2e-5)
    assert (tmp_path / "fsdp" / "samples.txt").read_text().strip()

    shutil.copytree(tmp_path / "fsdp", tmp_path / "resumed")
    shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "step_000012")
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    run([*launcher, "--nproc_per_node=2", "-m", "budgetlm", "pretrain", "--resume", "--out",
         str(tmp_path / "resumed")])  # fmt: skip
    resumed = final_weights(tmp_path / "resumed")
    for key in one_w:
        torch.testing.assert_close(resumed[key], one_w[key], rtol=1e-4, atol=2e-5)


def test_sharding_refuses_muon(tiny_config):
    from budgetlm.job.decide import use_sharding

    config = tiny_config(**{"train.parallel": "fsdp", "train.optimizer": "muon"})
    with pytest.raises(UserError, match="adamw only"):
        use_sharding(config, distributed=True)
    with pytest.raises(UserError, match="train.parallel must be one of ddp, fsdp"):
        use_sharding(tiny_config(**{"train.parallel": "zero"}), distributed=True)


@pytest.mark.parametrize("parallel, adapter", [("ddp", "none"), ("fsdp", "none"), ("fsdp", "lora")])
def test_a_transformers_model_trains_sharded_like_one_process(tmp_path, parallel, adapter):
    """`continue --from HF_DIR` on two processes (FSDP2 shards each decoder layer of the
    transformers model, LoRA's frozen base weights with its adapters): the same losses and
    final weights as one process."""
    pytest.importorskip("transformers")
    if adapter == "lora":
        pytest.importorskip("peft")
    from tests.conftest import write_corpus, write_hf_model

    _, code = write_corpus(tmp_path)
    write_hf_model(tmp_path / "qwen3", "qwen3", texts=[Path(__file__).read_text()] * 2, head_dim=8)

    def command(processes, out):
        launcher = [sys.executable, "-m", "budgetlm"]
        if processes > 1:
            launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                        f"--nproc_per_node={processes}", "-m", "budgetlm"]  # fmt: skip
        return launcher + [
            "continue", "--from", str(tmp_path / "qwen3"), "--data", code, "--out", str(out),
            "--budget", "8steps", "--continual.seq_len", "32", "--train.batch_size", "8",
            "--train.micro_batch_size", "2", "--train.precision", "fp32", "--checkpoint.every",
            "0", "--eval.count", "2", "--eval.tokens_per_domain", "256",
            "--samples.max_new_tokens", "4", "--data.cache_dir", str(tmp_path / "cache"),
            "--data.val_fraction", "0.2", "--train.parallel", parallel, "--adapter", adapter,
        ]  # fmt: skip

    run(command(1, tmp_path / "one"))
    run(command(2, tmp_path / "two"))
    curves = [train_losses(tmp_path / name) for name in ("one", "two")]
    np.testing.assert_allclose([x for _, x in curves[1]], [x for _, x in curves[0]], rtol=1e-5)
    finals = [
        load_file(list_checkpoints(tmp_path / name)[-1] / "model.safetensors")
        for name in ("one", "two")
    ]
    assert finals[0].keys() == finals[1].keys()
    for key in finals[0]:
        torch.testing.assert_close(finals[1][key], finals[0][key], rtol=1e-4, atol=2e-5)
