import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from budgetlm import api
from budgetlm.config import load_config
from budgetlm.errors import UserError
from budgetlm.train.checkpoint import list_checkpoints
from tests.conftest import kill_after_step


def records(run_dir, kind):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == kind]


def test_pretrain_writes_the_run_directory_contract(tiny_config):
    result = api.pretrain(tiny_config(), log=lambda _: None)
    run = result.run_dir
    assert {"config.yaml", "metrics.jsonl", "samples.txt", "tokenizer.json", "checkpoints"} <= {
        p.name for p in run.iterdir()
    }
    assert result.steps == 12 and result.tokens == 12 * 8 * 32
    train = records(run, "train")
    assert train[-1]["step"] == 12 and train[-1]["lr"] == 0.0  # ends fully decayed
    evals = records(run, "eval")
    assert evals[0]["step"] == 0 and evals[-1]["step"] == 12
    assert set(evals[-1]["val_loss"]) == {"code", "prose"}
    # the model learned something: below the loss of a uniform guess over 300 tokens
    assert all(v < np.log(300) - 1 for v in evals[-1]["val_loss"].values())
    tags = [json.loads((p / "state.json").read_text())["tags"] for p in list_checkpoints(run)]
    assert ["final"] in tags and ["pre_decay"] in tags
    assert "=== prose" in (run / "samples.txt").read_text()
    assert "where the budget went" in result.summary
    assert load_config(run / "config.yaml").train.compile is False  # auto: a short budget


def compile_decision(api_config, monkeypatch):
    """train.compile as the run decides it, without training."""
    from budgetlm.job import run as runner

    seen = {}

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        seen["compile"] = kwargs["train"].compile if "train" in kwargs else args[7].compile
        raise Stop

    monkeypatch.setattr(runner, "Trainer", stop)
    with pytest.raises(Stop):
        api.pretrain(api_config, log=lambda _: None)
    return seen["compile"]


@pytest.mark.parametrize(("recorded", "budget", "on"), [
    (None, "2m", False),  # the prior: 30 s to compile for 1.2x pays after ~4 minutes
    (None, "10m", True),
    ((5.0, 1.5), "2m", True),  # measured here: cheap to compile and fast
    ((60.0, 1.05), "10m", False),  # measured here: not worth it
])  # fmt: skip
def test_compile_auto_follows_what_compiling_costs_on_this_machine(
    tiny_config, monkeypatch, recorded, budget, on
):
    from budgetlm.machine import compile as machine_compile

    if recorded is not None:
        cost = machine_compile.CompileCost(*recorded, measured=True)
        monkeypatch.setattr("budgetlm.job.decide.compile_cost", lambda *a: cost)
    assert compile_decision(tiny_config(budget=budget), monkeypatch) is on


def test_loaded_model_gives_logits_and_generate_text(tiny_config):
    result = api.pretrain(tiny_config(), log=lambda _: None)
    model = api.load_model(result.run_dir)
    logits = model(torch.tensor([[1, 2, 3]]))
    assert logits.shape == (1, 3, 300)
    text = api.generate(result.run_dir, "the cat", max_new_tokens=5, temperature=0)
    assert isinstance(text, str) and text == api.generate(
        result.run_dir, "the cat", max_new_tokens=5, temperature=0
    )


def test_killed_run_resumes_to_the_same_weights(tiny_config, monkeypatch):
    straight = api.pretrain(tiny_config(name="straight"), log=lambda _: None)

    kill_after_step(monkeypatch, 7)
    with pytest.raises(KeyboardInterrupt):
        api.pretrain(tiny_config(name="killed"), log=lambda _: None)
    monkeypatch.undo()
    killed_dir = straight.run_dir.parent / "killed"
    assert max(int(p.name[5:]) for p in list_checkpoints(killed_dir)) == 6
    resumed = api.pretrain(tiny_config(name="killed"), resume=True, log=lambda _: None)
    assert resumed.steps == 12
    a = load_file(straight.run_dir / "checkpoints/step_000012/model.safetensors")
    b = load_file(resumed.run_dir / "checkpoints/step_000012/model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.val_loss == straight.val_loss


def test_time_budget_is_met_and_ends_decayed(tiny_config):
    result = api.pretrain(tiny_config(budget="6s", **{"checkpoint.every": 0.5}), log=lambda _: None)
    end = records(result.run_dir, "end")[-1]
    # a time budget pays for preparing (data, setup and measuring) and the samples too
    in_budget = sum(end["seconds"][k] for k in ("data", "setup", "steps", "eval", "checkpoint",
                                                 "samples"))  # fmt: skip
    assert 6 * 0.85 <= in_budget <= 6 * 1.15
    assert records(result.run_dir, "train")[-1]["lr"] == 0.0
    assert result.steps > 20


def test_existing_run_directory_is_not_overwritten(tiny_config):
    api.pretrain(tiny_config(), log=lambda _: None)
    with pytest.raises(UserError, match="already exists; pass --resume"):
        api.pretrain(tiny_config(), log=lambda _: None)


def test_token_budget_below_one_step_fails_before_creating_the_run(tiny_config, tmp_path):
    with pytest.raises(UserError, match="too small for one optimizer step"):
        api.pretrain(tiny_config(budget="100tok"), log=lambda _: None)
    assert not (tmp_path / "runs" / "tiny").exists()


def test_resume_of_a_finished_run_is_refused(tiny_config):
    api.pretrain(tiny_config(), log=lambda _: None)
    with pytest.raises(UserError, match="already finished"):
        api.pretrain(tiny_config(), resume=True, log=lambda _: None)


def test_mixture_schedule_and_epoch_limits_from_the_config(tiny_config):
    config = tiny_config(
        **{
            "data.max_epochs": {"code": 4},
            "data.schedule": [
                {"until": 0.5, "weights": {"code": 1, "prose": 0}},
                {"until": 1.0, "weights": {"code": 1, "prose": 1}},
            ],
        }
    )
    assert config.data.schedule[0].until == 0.5
    result = api.pretrain(config, log=lambda _: None)
    assert result.steps == 12
    with pytest.raises(UserError, match=r"schedule ends at 0.5, not 1.0"):
        api.pretrain(
            tiny_config(
                name="bad",
                **{"data.schedule": [{"until": 0.5, "weights": {"code": 1, "prose": 1}}]},
            )
        )


def test_kill_9_at_a_random_step_then_resume_is_bitwise_exact(tiny_prepared, tmp_path):
    """A real SIGKILL (no cleanup runs) while training, then `--resume`: same final weights as
    a run never interrupted."""
    import os
    import random
    import signal
    import subprocess
    import sys
    import time

    def command(name):
        return [
            sys.executable, "-m", "budgetlm.cli", "pretrain",
            "--prepared", str(tiny_prepared), "--out", str(tmp_path / name),
            "--budget", "40steps", "--model.size", "custom", "--model.d_model", "32",
            "--model.n_layers", "2", "--model.n_heads", "2", "--model.seq_len", "32",
            "--train.batch_size", "8", "--train.micro_batch_size", "4",
            "--checkpoint.every", "0.1", "--eval.count", "2",
            "--eval.tokens_per_domain", "256", "--samples.max_new_tokens", "4",
        ]  # fmt: skip

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(command("straight"), check=True, env=env, capture_output=True)
    victim = subprocess.Popen(command("killed"), env=env, stdout=subprocess.DEVNULL)
    kill_after = random.Random().randint(2, 6)  # checkpoints written before the kill
    deadline = time.time() + 120
    while time.time() < deadline and victim.poll() is None:
        metrics = tmp_path / "killed" / "metrics.jsonl"
        if metrics.exists() and metrics.read_text().count('"checkpoint"') >= kill_after:
            victim.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    victim.wait()
    assert victim.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    resume = [sys.executable, "-m", "budgetlm.cli", "pretrain", "--resume", "--out"]
    subprocess.run([*resume, str(tmp_path / "killed")], check=True, env=env, capture_output=True)
    final = [load_file(d / "checkpoints/step_000040/model.safetensors") for d in (
        tmp_path / "straight", tmp_path / "killed")]  # fmt: skip
    assert final[0].keys() == final[1].keys()
    for key in final[0]:
        assert torch.equal(final[0][key], final[1][key]), key


def test_retention_keeps_the_last_k_and_every_mth(tiny_config):
    config = tiny_config(
        name="kept",
        **{"checkpoint.every": 0.125, "checkpoint.keep_last": 1, "checkpoint.keep_every": 3},
    )
    result = api.pretrain(config, log=lambda _: None)
    names = sorted(int(p.name[5:]) for p in list_checkpoints(result.run_dir))
    # about 7 periodic checkpoints in 12 steps: the 3rd and 6th are kept for good, only the
    # newest other periodic one survives, and the pre-decay and final ones always stay
    tags = {}
    for path in list_checkpoints(result.run_dir):
        tags[int(path.name[5:])] = json.loads((path / "state.json").read_text())["tags"]
    kept = [step for step, t in tags.items() if "kept" in t]
    assert len(kept) == 2 and all(step in names for step in kept)
    assert any("final" in t for t in tags.values()) and any("pre_decay" in t for t in tags.values())
    periodic = [step for step, t in tags.items() if not t]
    assert len(periodic) <= 1
