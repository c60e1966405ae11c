"""The run's metrics.jsonl: one JSON object per logged step, evaluation or event, append-only;
written by MetricsLog, read back here by everyone else (report, workflows, benchmarks)."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from budgetlm.errors import UserError
from budgetlm.run.files import METRICS_FILE


class MetricsLog:
    """Appends records to metrics.jsonl, flushed line by line so a killed run keeps its log."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, kind: str, **fields: Any) -> None:
        record = {"type": kind, "time": round(time.time(), 3), **fields}
        self._file.write(json.dumps(_finite(record)) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class NullMetrics:
    """The metrics log of ranks other than 0: rank 0 writes metrics.jsonl for the job."""

    def write(self, kind: str, **fields: Any) -> None:
        pass

    def close(self) -> None:
        pass


def read_metrics(run_dir: str | Path, missing_ok: bool = False) -> list[dict[str, Any]]:
    """All records of a run's metrics.jsonl (a torn last line from a killed run is ignored);
    a missing file is a UserError, or no records when `missing_ok`."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        if missing_ok:
            return []
        raise UserError(f"{path} does not exist; is {run_dir} a budgetlm run directory?")
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "type" in record:
            records.append(record)
    return records


def records_of(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The records of one type ("start", "step", "eval", "end", ...), in order."""
    return [r for r in records if r["type"] == kind]


def last_of(records: list[dict[str, Any]], kind: str) -> dict[str, Any] | None:
    """The newest record of one type, or None."""
    found = records_of(records, kind)
    return found[-1] if found else None


def start_record(run_dir: str | Path) -> dict[str, Any] | None:
    """What the run recorded when it started (model, data, budget, machine), or None."""
    return last_of(read_metrics(run_dir, missing_ok=True), "start")


def finished_record(run_dir: str | Path) -> dict[str, Any] | None:
    """The end record of a finished run, or None (never started, or killed before the end)."""
    return last_of(read_metrics(run_dir, missing_ok=True), "end")


def eval_records(run_dir: str | Path) -> list[dict[str, Any]]:
    """The run's evaluations, oldest first (none when it has no metrics yet)."""
    return records_of(read_metrics(run_dir, missing_ok=True), "eval")


def final_val_loss(run_dir: str | Path, metric: str = "val_loss") -> dict[str, float] | None:
    """Validation loss per domain at the run's last evaluation, in nats per token or, with
    `metric` "val_bpb", in bits per byte (None when it has none)."""
    evals = eval_records(run_dir)
    return evals[-1].get(metric) if evals else None


def _finite(value: Any) -> Any:
    """JSON has no NaN/inf: write them as strings so every line stays valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
