import json
import shutil

import pytest

from budgetlm.report.rundata import load_run
from budgetlm.report.usage import budget_use, throughput


def edit_metrics(src, dst, change):
    """A copy of run `src` whose metrics.jsonl records pass through `change` (None drops one)."""
    shutil.copytree(src, dst)
    lines = (dst / "metrics.jsonl").read_text().splitlines()
    kept = [change(json.loads(line)) for line in lines]
    (dst / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept if r))
    return dst


def test_step_budget_used_exactly(report_runs):
    use = budget_use(load_run(report_runs["parent"]))
    assert (use.kind, use.planned, use.used, use.share) == ("steps", 12, 12, 1.0)
    assert use.first_plan == 12 and use.finished
    assert use.tokens == 12 * 8 * 32  # steps x batch x seq_len
    assert use.format(use.used) == "12 steps"


def test_time_budget_counts_steps_evaluation_and_checkpoints(report_runs, tmp_path):
    def change(r):
        if r["type"] == "start":
            r["budget"] = "2m"
        if r["type"] == "end":
            r["seconds"].update(steps=100.0, eval=15.0, checkpoint=5.0, data=60.0)
        return r

    run = load_run(edit_metrics(report_runs["parent"], tmp_path / "timed", change))
    use = budget_use(run)
    assert (use.kind, use.planned, use.used) == ("seconds", 120.0, 120.0)  # data is outside
    assert use.format(use.used) == "2m00s"


def test_unfinished_run_reports_what_it_used_so_far(report_runs, tmp_path):
    def change(r):
        if r["type"] == "end" or r.get("step", 0) > 6:
            return None
        return r

    run = load_run(edit_metrics(report_runs["parent"], tmp_path / "killed", change))
    use = budget_use(run)
    assert not use.finished
    assert use.steps == run.train[-1]["step"] <= 6
    assert use.share == use.steps / 12


def test_mfu_only_against_a_measured_peak(report_runs, tmp_path):
    run = load_run(report_runs["parent"])
    speed = throughput(run)
    assert speed.tokens_per_s == run.end["tokens_per_s"]
    assert speed.flops_per_s == pytest.approx(speed.tokens_per_s * run.start["flops_per_token"])
    assert speed.mfu is None and speed.peak_flops is None
    given = throughput(run, peak_flops=4 * speed.flops_per_s)
    assert given.mfu == pytest.approx(0.25) and given.peak_source == "given with --peak-flops"

    def recorded(r):
        if r["type"] == "start":
            r["peak_flops"] = 2 * speed.flops_per_s
        return r

    run = load_run(edit_metrics(report_runs["parent"], tmp_path / "peak", recorded))
    assert throughput(run).mfu == pytest.approx(0.5)
    assert throughput(run).peak_source == "measured by the run"
