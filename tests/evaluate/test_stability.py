import pytest

from budgetlm.evaluate.stability import accuracy_gap, continual_summary, loss_gap


def test_gap_depth_peak_and_recovery():
    points = [(0, 0, 3.0), (10, 100, 3.5), (20, 200, 3.2), (30, 300, 2.9), (40, 400, 2.5)]
    gap = loss_gap(points)
    assert gap["depth"] == pytest.approx(0.5) and gap["peak_step"] == 10
    assert gap["recover_step"] == 30 and gap["recover_tokens"] == 300 and gap["recovered"]
    assert gap["final"] == 2.5


def test_no_gap_when_loss_only_falls():
    gap = loss_gap([(0, 0, 3.0), (10, 100, 2.0)])
    assert gap["depth"] == 0 and gap["peak_step"] is None and gap["recovered"]


def test_never_recovered():
    gap = loss_gap([(0, 0, 3.0), (10, 100, 4.0), (20, 200, 3.5)])
    assert gap["depth"] == 1.0 and gap["recover_step"] is None and not gap["recovered"]


def test_accuracy_gap_is_a_drop():
    gap = accuracy_gap([(0, 0, 0.8), (10, 100, 0.5), (20, 200, 0.85)])
    assert gap["depth"] == pytest.approx(0.3) and gap["recover_step"] == 20


def test_continual_summary_from_eval_records():
    evals = [
        {"step": 0, "tokens": 0, "val_loss": {"code": 5.0, "prose": 3.0}, "accuracy": {"add": 0.5}},
        {
            "step": 5,
            "tokens": 50,
            "val_loss": {"code": 5.4, "prose": 3.6},
            "accuracy": {"add": 0.2},
        },
        {
            "step": 9,
            "tokens": 90,
            "val_loss": {"code": 3.0, "prose": 3.3},
            "accuracy": {"add": 0.6},
        },
    ]
    out = continual_summary(evals, ["code"], ["prose"])
    assert out["new"]["code"]["depth"] == pytest.approx(0.4)
    assert out["forgetting"]["prose"] == pytest.approx(0.3)
    assert out["accuracy"]["add"]["depth"] == pytest.approx(0.3)
