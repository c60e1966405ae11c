import json

import pytest

from budgetlm.errors import UserError
from budgetlm.run.records import (
    MetricsLog,
    eval_records,
    final_val_loss,
    finished_record,
    last_of,
    read_metrics,
    records_of,
    start_record,
)

RECORDS = [
    {"type": "start", "step": 0, "model": "nano"},
    {"type": "eval", "step": 0, "val_loss": {"prose": 5.5, "code": 5.6}},
    {"type": "train", "step": 2, "loss": 5.0},
    {"type": "eval", "step": 4, "val_loss": {"prose": 4.5, "code": 4.25}},
    {"type": "resume", "step": 4},
    {"type": "start", "step": 4, "model": "micro"},
    {"type": "eval", "step": 8, "val_loss": {"prose": 3.5, "code": 3.75}},
    {"type": "end", "step": 8, "val_loss": {"prose": 3.5, "code": 3.75}},
]


def write(run_dir, text):
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "metrics.jsonl").write_text(text)
    return run_dir


@pytest.fixture
def run(tmp_path):
    return write(tmp_path / "run", "".join(json.dumps(r) + "\n" for r in RECORDS))


def test_read_metrics_returns_every_record_in_order(run):
    assert read_metrics(run) == RECORDS
    assert read_metrics(str(run)) == RECORDS


def test_a_torn_last_line_is_skipped(run):
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"type": "train", "step": 9, "lo')
    assert read_metrics(run) == RECORDS


def test_lines_that_are_not_records_are_skipped(tmp_path):
    run = write(tmp_path, '\n[1, 2]\n"text"\n{"step": 1}\n{"type": "train", "step": 3}\n')
    assert read_metrics(run) == [{"type": "train", "step": 3}]


def test_a_missing_file_is_an_error_unless_missing_ok(tmp_path):
    with pytest.raises(UserError, match=r"metrics.jsonl does not exist; is .* a budgetlm run"):
        read_metrics(tmp_path)
    assert read_metrics(tmp_path, missing_ok=True) == []


def test_records_of_and_last_of():
    assert [r["step"] for r in records_of(RECORDS, "eval")] == [0, 4, 8]
    assert records_of(RECORDS, "continual") == []
    assert last_of(RECORDS, "start")["model"] == "micro"
    assert last_of(RECORDS, "average") is None


def test_start_record_is_the_newest_start(run):
    assert start_record(run) == {"type": "start", "step": 4, "model": "micro"}


def test_finished_record_is_the_end_record(run):
    assert finished_record(run) == RECORDS[-1]


def test_eval_records_oldest_first(run):
    assert [r["step"] for r in eval_records(run)] == [0, 4, 8]


def test_final_val_loss_is_the_last_evaluation(run):
    assert final_val_loss(run) == {"prose": 3.5, "code": 3.75}


def test_a_killed_run_has_no_end_but_its_records(tmp_path):
    run = write(tmp_path, json.dumps(RECORDS[0]) + "\n" + json.dumps(RECORDS[1]) + "\n{")
    assert finished_record(run) is None
    assert start_record(run) == RECORDS[0]
    assert final_val_loss(run) == {"prose": 5.5, "code": 5.6}


def test_readers_of_a_run_without_metrics(tmp_path):
    assert start_record(tmp_path) is None
    assert finished_record(tmp_path) is None
    assert eval_records(tmp_path) == []
    assert final_val_loss(tmp_path) is None


def test_what_metrics_log_writes_reads_back(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.write("start", step=0)
    log.write("eval", step=2, val_loss={"a": 2.5})
    log.write("end", step=2)
    log.close()
    records = read_metrics(tmp_path)
    assert [r["type"] for r in records] == ["start", "eval", "end"]
    assert all(isinstance(r["time"], float) for r in records)
    assert final_val_loss(tmp_path) == {"a": 2.5}
    assert finished_record(tmp_path)["step"] == 2
