import json

from budgetlm.run.records import MetricsLog


def test_records_are_valid_json_lines_even_with_nan(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.write("train", step=1, loss=float("nan"), val={"a": float("inf")})
    log.write("eval", step=2, val_loss={"a": 1.5})
    log.close()
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["loss"] == "nan" and lines[0]["val"]["a"] == "inf"
    assert lines[1]["type"] == "eval" and lines[1]["val_loss"] == {"a": 1.5}


def test_log_is_appended_not_overwritten(tmp_path):
    for step in (1, 2):
        log = MetricsLog(tmp_path / "metrics.jsonl")
        log.write("train", step=step)
        log.close()
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2
