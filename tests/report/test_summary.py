import json
import re

import pytest

from budgetlm.errors import UserError
from budgetlm.report.summary import summarize
from budgetlm.run.records import read_metrics


def write(run, records):
    run.mkdir(exist_ok=True)
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


START = {
    "type": "start",
    "budget": "5m",
    "model_size": "nano",
    "parameters": {"total": 1000, "non_embedding": 600},
    "flops_per_token": 6e6,
    "device": "cpu",
    "precision": "bf16",
    "unigram_entropy": {"prose": 6.5},
}
END = {
    "type": "end",
    "steps": 10,
    "tokens": 2560,
    "tokens_per_s": 100.0,
    "flops": 1.5e10,
    "seconds": {
        "steps": 24.0,
        "eval": 4.0,
        "checkpoint": 2.0,
        "data": 5.0,
        "setup": 1.0,
        "samples": 3.0,
    },
}


def test_summary_reports_losses_entropy_and_budget_shares(tmp_path):
    write(
        tmp_path / "run",
        [
            START,
            {"type": "eval", "step": 0, "val_loss": {"prose": 8.3}},
            {"type": "eval", "step": 10, "val_loss": {"prose": 4.25}},
            END,
        ],
    )
    text = summarize(tmp_path / "run")
    assert "10 steps, 2,560 tokens in 30.0s of training (budget 5m)" in text
    assert re.search(r"prose +8\.300 ->  4\.250 +6\.500", text)  # no bits/byte in old runs
    assert "training steps 24.0s (80%), evaluation 4.0s (13%), checkpoints 2.0s (7%)" in text
    assert "data preparation 5.0s" in text


def test_summary_shows_bits_per_byte_and_bytes_per_token(tmp_path):
    start = {**START, "bytes_per_token": {"prose": 4.0}}
    evals = [
        {"type": "eval", "step": s, "val_loss": {"prose": v}, "val_bpb": {"prose": b}}
        for s, v, b in ((0, 8.3, 3.0), (10, 4.25, 1.5))
    ]
    write(tmp_path / "run", [start, *evals, END])
    text = summarize(tmp_path / "run")
    assert "bits/byte" in text and "bytes/token" in text
    assert re.search(r"prose +8\.300 ->  4\.250   3\.000 ->  1\.500 +4\.00 +6\.500", text)


def test_unfinished_run_says_how_to_resume(tmp_path):
    write(tmp_path / "run", [START])
    with pytest.raises(UserError, match="--resume"):
        summarize(tmp_path / "run")


def test_torn_last_line_is_ignored(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(json.dumps(START) + '\n{"type": "tra')
    assert len(read_metrics(tmp_path)) == 1
