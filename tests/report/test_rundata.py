import json
import shutil

import pytest

from budgetlm.errors import UserError
from budgetlm.report.rundata import finite, load_run, timeline


def rec(kind, step, **fields):
    return {"type": kind, "step": step, **fields}


def test_timeline_drops_history_undone_by_rollback_and_resume():
    records = [
        rec("train", 2, loss=5.0),
        rec("train", 4, loss=4.0),
        rec("train", 6, loss=9.0),  # logged, then the run rolled back to step 4
        rec("rollback", 7, to_step=4),
        rec("train", 8, loss=3.5),
        rec("train", 10, loss=3.0),  # the run was killed after this and resumed at step 8
        rec("resume", 8),
        rec("train", 10, loss=3.1),
    ]
    kept = timeline(records, "train")
    assert [(r["step"], r["loss"]) for r in kept] == [(2, 5.0), (4, 4.0), (8, 3.5), (10, 3.1)]


def test_real_run_is_read_whole(report_runs):
    run = load_run(report_runs["parent"])
    assert run.name == "parent"
    assert run.end["steps"] == 12
    steps = [r["step"] for r in run.evals]  # eval.count 3: the start, two along the way, the end
    assert len(steps) == 4 and steps[0] == 0 and steps[-1] == 12 and steps == sorted(steps)
    assert run.domains == ["prose", "code"]
    assert run.final_val_loss() == run.end["val_loss"]
    on_disk = sorted(p.name for p in (report_runs["parent"] / "checkpoints").iterdir())
    assert [s["name"] for s in run.checkpoints] == on_disk
    assert run.samples and run.samples.startswith("=== ")
    assert run.config["budget"] == "12steps"
    assert len(run.tokenizer_fingerprint) == 64
    assert not run.is_continual
    assert load_run(report_runs["continual"]).is_continual


def test_missing_directory_names_the_path(tmp_path):
    with pytest.raises(UserError, match=r"nope does not exist"):
        load_run(tmp_path / "nope")


def test_directory_without_config_is_not_a_run(tmp_path):
    with pytest.raises(UserError, match="no config.yaml"):
        load_run(tmp_path)


def test_run_without_metrics_says_to_train_it(report_runs, tmp_path):
    run = tmp_path / "fresh"
    run.mkdir()
    shutil.copy(report_runs["parent"] / "config.yaml", run)
    with pytest.raises(UserError, match="no metrics.jsonl.*train it first"):
        load_run(run)
    start = next(
        line
        for line in (report_runs["parent"] / "metrics.jsonl").read_text().splitlines()
        if json.loads(line)["type"] == "start"
    )
    (run / "metrics.jsonl").write_text(start + "\n")
    with pytest.raises(UserError, match="no training or evaluation records"):
        load_run(run)
    (run / "metrics.jsonl").write_text("")
    with pytest.raises(UserError, match="no start record"):
        load_run(run)


def test_non_finite_values_come_back_as_floats(report_runs, tmp_path):
    run = tmp_path / "nan"
    shutil.copytree(report_runs["parent"], run)
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps(rec("train", 13, tokens=13 * 256, loss="nan", lr=0.0)) + "\n")
    loaded = load_run(run)
    assert finite(loaded.train[-1]["loss"]) is None
    assert finite("1.5") == 1.5 and finite(None) is None
