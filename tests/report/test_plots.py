import json
import shutil

import pytest
import yaml

from budgetlm.report.plots import build_figures, mixture_targets, served_shares, smoothed
from budgetlm.report.rundata import load_run

SINGLE = [
    "loss-tokens",
    "loss-time",
    "train-loss",
    "lr",
    "grad-norm",
    "throughput",
    "budget-plan",
    "time-split",
    "mixture",
]


def by_id(figures):
    return {f.id: f for f in figures}


def copy_run(src, dst, change=None, extra=()):
    """A copy of a run whose metrics records pass through `change` (None drops one), with
    `extra` records appended."""
    shutil.copytree(src, dst)
    records = [json.loads(line) for line in (dst / "metrics.jsonl").read_text().splitlines()]
    records = [change(r) if change else r for r in records]
    records = [r for r in records if r] + list(extra)
    (dst / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return dst


def test_one_run_gets_every_figure_it_has_data_for(report_runs):
    run = load_run(report_runs["parent"])
    figures = by_id(build_figures([run]))
    assert list(figures) == SINGLE  # no accuracy (no arith data), no MFU (no peak)
    loss = figures["loss-tokens"]
    assert [s.label for s in loss.series] == ["prose", "code"]
    assert loss.series[0].x == [r["tokens"] for r in run.evals]
    assert loss.series[1].y == [r["val_loss"]["code"] for r in run.evals]
    assert figures["loss-time"].series[0].x == [r["elapsed"] for r in run.evals]
    assert figures["lr"].series[0].y == [r["lr"] for r in run.train]
    bars = figures["time-split"].bars[0]
    assert dict(bars.segments)["training steps"] == run.end["seconds"]["steps"]
    with_peak = by_id(build_figures([run], peak_flops=1e12))
    mfu = with_peak["mfu"].series[0]
    first = run.train[0]
    assert mfu.y[0] == pytest.approx(first["tokens_per_s"] * run.start["flops_per_token"] / 1e12)


def test_comparison_colours_runs_and_dashes_domains(report_runs):
    runs = [load_run(report_runs["parent"]), load_run(report_runs["continual"])]
    figures = by_id(build_figures(runs))
    assert "mixture-0" in figures and "mixture-1" in figures and "mixture" not in figures
    series = {s.label: s for s in figures["loss-tokens"].series}
    assert set(series) == {
        "parent · prose",
        "parent · code",
        "continual · notes",
        "continual · prose",
        "continual · code",
    }
    assert series["parent · prose"].color == series["parent · code"].color == 0
    assert series["continual · prose"].color == 1
    assert series["parent · prose"].dash == series["continual · prose"].dash
    assert series["parent · prose"].dash != series["parent · code"].dash
    assert not figures["loss-tokens"].references  # parent lines only on one run's page


def test_stability_gap_marked_where_the_loss_peaks_and_recovers(report_runs, tmp_path):
    notes = iter([4.4, 4.6, 4.5, 4.3])  # up 0.2 at the 2nd evaluation, back at the 4th

    def change(r):
        if r["type"] == "continual":
            return None  # as while the run is still training: the gap is computed
        if r["type"] == "eval":
            r["val_loss"]["notes"] = next(notes, 4.0)
        return r

    run = load_run(copy_run(report_runs["continual"], tmp_path / "gap", change))
    evals = run.evals
    loss = by_id(build_figures([run]))["loss-tokens"]
    gap = [m for m in loss.markers if "notes" in m.label]
    assert [m.label for m in gap] == ["gap +0.200 · notes", "recovered · notes"]
    assert (gap[0].x, gap[0].y) == (evals[1]["tokens"], 4.6)
    assert gap[1].x == evals[3]["tokens"] and gap[1].y is None  # first back at or below 4.4
    parent_final = load_run(report_runs["parent"]).end["val_loss"]
    assert {r.label: r.y for r in loss.references} == {
        f"parent final · {d}": v for d, v in parent_final.items()
    }


def test_rollbacks_and_resumes_are_marked_on_the_training_loss(report_runs, tmp_path):
    extra = [{"type": "rollback", "step": 11, "to_step": 8, "reason": "loss is nan"}]
    run = load_run(copy_run(report_runs["parent"], tmp_path / "spike", extra=extra))
    markers = by_id(build_figures([run]))["train-loss"].markers
    assert [(m.x, m.label) for m in markers] == [(11 * 256, "rollback at step 11")]


def test_mixture_targets_from_start_weights_records_or_schedule(report_runs, tmp_path):
    run = load_run(report_runs["parent"])
    final = run.end["tokens"]
    targets, source = mixture_targets(run, final)
    assert source == "each domain's share of tokens"
    assert targets == {d: [(0.0, w), (final, w)] for d, w in run.start["weights"].items()}

    records = [
        {"type": "mixture", "step": 0, "weights": {"prose": 0.5, "code": 0.5}},
        {"type": "mixture", "step": 3, "skipped": "non-finite loss", "val_loss": {}},
        {"type": "mixture", "step": 6, "tokens": 6 * 256, "weights": {"prose": 0.8, "code": 0.2}},
    ]
    logged = load_run(copy_run(report_runs["parent"], tmp_path / "logged", extra=records))
    targets, source = mixture_targets(logged, final)
    assert source == "the run's 'mixture' records"
    assert targets["prose"] == [(0.0, 0.5), (1536.0, 0.8), (final, 0.8)]

    staged = copy_run(report_runs["parent"], tmp_path / "staged")
    config = yaml.safe_load((staged / "config.yaml").read_text())
    config["data"]["schedule"] = [
        {"until": 0.5, "weights": {"prose": 3, "code": 1}},
        {"until": 1.0, "weights": {"prose": 1, "code": 1}},
    ]
    (staged / "config.yaml").write_text(yaml.safe_dump(config))
    targets, source = mixture_targets(load_run(staged), final)
    assert source == "the configured data.schedule"
    assert targets["prose"] == [(0.0, 0.75), (final / 2, 0.5), (final, 0.5)]


def test_drawn_shares_between_checkpoints_sum_to_one(report_runs):
    run = load_run(report_runs["parent"])
    shares = served_shares(run)
    assert set(shares) == {"prose", "code"}
    for i in range(len(shares["prose"])):
        assert shares["prose"][i][1] + shares["code"][i][1] == pytest.approx(1.0)
    newest = max(run.checkpoints, key=lambda s: s["step"])
    assert shares["code"][-1][0] == newest["train"]["tokens"]


def test_smoothing_is_a_bias_corrected_moving_average():
    points = [(0, 2.0), (1, None), (2, 4.0)]
    out = smoothed(points, decay=0.5)
    assert out[0] == (0, 2.0)  # corrected: starts at the first value, not at 0
    assert out[1] == (1, 2.0)  # a missing value changes nothing
    # (0.5 * 0.5 * 2 + 0.5 * 4) / (0.5 * 0.5 + 0.5) = 2.5 / 0.75
    assert out[2][1] == pytest.approx(2.5 / 0.75)


def test_a_long_training_loss_gets_a_smoothed_line(report_runs, tmp_path):
    extra = [
        {"type": "train", "step": 12 + k, "tokens": (12 + k) * 256, "loss": 4.0, "lr": 0.0}
        for k in range(1, 60)
    ]
    run = load_run(copy_run(report_runs["parent"], tmp_path / "long", extra=extra))
    series = by_id(build_figures([run]))["train-loss"].series
    assert [s.label for s in series] == ["training loss", "training loss (smoothed)"]
    assert series[0].faint and not series[1].faint
