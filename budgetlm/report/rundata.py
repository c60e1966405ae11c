"""A run directory read for reporting: its config, metrics, checkpoint states, evaluation
results, samples and tokenizer, with the histories the report plots. Reads files only."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from budgetlm.errors import UserError
from budgetlm.run.files import (
    CONFIG_FILE,
    EVAL_FILE,
    METRICS_FILE,
    SAMPLES_FILE,
    TOKENIZER_FILE,
)
from budgetlm.run.records import read_metrics


@dataclass
class Run:
    """Everything a run directory holds that a report shows (never its weights)."""

    path: Path
    config: dict[str, Any]
    config_text: str
    records: list[dict[str, Any]]
    checkpoints: list[dict[str, Any]] = field(default_factory=list)
    """state.json of each checkpoint still on disk, oldest first, with its folder as 'name'."""
    evaluation: dict[str, Any] | None = None
    """eval.json, written by `budgetlm eval`."""
    samples: str | None = None

    @property
    def name(self) -> str:
        return self.path.name

    def of(self, kind: str) -> list[dict[str, Any]]:
        """Records of one type, in file order."""
        return [r for r in self.records if r.get("type") == kind]

    def last(self, kind: str) -> dict[str, Any] | None:
        found = self.of(kind)
        return found[-1] if found else None

    @cached_property
    def start(self) -> dict[str, Any]:
        """The start record (the first one: a resumed run writes 'resume' records after it)."""
        return self.of("start")[0]

    @property
    def end(self) -> dict[str, Any] | None:
        """The end record; None while the run is unfinished (still training, or killed)."""
        return self.last("end")

    @cached_property
    def train(self) -> list[dict[str, Any]]:
        """Training records along the surviving history (see `timeline`)."""
        return timeline(self.records, "train")

    @cached_property
    def evals(self) -> list[dict[str, Any]]:
        """Evaluation records along the surviving history."""
        return timeline(self.records, "eval")

    @property
    def tokens_per_step(self) -> int:
        return int(self.start.get("tokens_per_step") or 0)

    @property
    def is_continual(self) -> bool:
        return bool(self.start.get("parent"))

    @property
    def domains(self) -> list[str]:
        """Validation domains in the order the run evaluated them."""
        seen: dict[str, None] = {}
        for record in self.evals:
            seen.update(dict.fromkeys(record.get("val_loss", {})))
        return list(seen)

    def final_val_loss(self, metric: str = "val_loss") -> dict[str, float]:
        """The last validation loss per domain (the end record's, else the last evaluation's),
        in nats per token, or in bits per byte with `metric` "val_bpb" ({} for runs from before
        bits per byte)."""
        if self.end and self.end.get(metric):
            return dict(self.end[metric])
        return dict(self.evals[-1].get(metric, {})) if self.evals else {}

    @cached_property
    def tokenizer_fingerprint(self) -> str | None:
        """The fingerprint of the run's tokenizer.json (None when the file is missing)."""
        path = self.path / TOKENIZER_FILE
        if not path.is_file():
            return None
        from budgetlm.data.store.tokenizer import Tokenizer

        return Tokenizer.load(path).fingerprint


def load_run(path: str | Path) -> Run:
    """Read a run directory; a missing directory or one with no metrics gets a UserError."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(
            f"run directory {path} does not exist; pass a directory written by "
            "`budgetlm pretrain` or `budgetlm continue`"
        )
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        raise UserError(
            f"{path} is not a budgetlm run directory (no {CONFIG_FILE}); check the path"
        )
    config_text = config_path.read_text(encoding="utf-8")
    try:
        config = yaml.safe_load(config_text) or {}
    except yaml.YAMLError as e:
        raise UserError(
            f"{config_path} is not valid YAML ({e}); restore the run's config"
        ) from None
    if not (path / METRICS_FILE).is_file():
        raise UserError(
            f"run {path} has no metrics.jsonl: it has not started training; train it first "
            f"(`budgetlm pretrain --resume --out {path}`)"
        )
    records = read_metrics(path)
    if not any(r["type"] == "start" for r in records):
        raise UserError(
            f"{path / METRICS_FILE} has no start record: nothing to report yet; train the run "
            f"first (`budgetlm pretrain --resume --out {path}`)"
        )
    if not any(r["type"] in ("train", "eval") for r in records):
        raise UserError(
            f"{path / 'metrics.jsonl'} has no training or evaluation records yet; report on the "
            "run after its first steps"
        )
    return Run(
        path=path,
        config=config if isinstance(config, dict) else {},
        config_text=config_text,
        records=[_numbers(r) for r in records],
        checkpoints=_checkpoint_states(path),
        evaluation=_read_json(path / EVAL_FILE),
        samples=_read_text(path / SAMPLES_FILE),
    )


def timeline(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The records of one type along the history that survived: a rollback past a loss spike
    (to its `to_step`) or a resume from a checkpoint (at its `step`) discards the records logged
    after that step, which belong to a history the model no longer has; a record at a step
    already logged replaces the earlier one."""
    kept: list[dict[str, Any]] = []

    def cut(after: int) -> None:
        while kept and kept[-1].get("step", 0) > after:
            kept.pop()

    for record in records:
        if record["type"] == "rollback":
            cut(int(record.get("to_step", 0)))
        elif record["type"] == "resume":
            cut(int(record.get("step", 0)))
        elif record["type"] == kind:
            cut(int(record.get("step", 0)) - 1)
            kept.append(record)
    return kept


def finite(value: Any) -> float | None:
    """A finite float, or None (metrics write NaN/inf as strings)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _numbers(record: dict[str, Any]) -> dict[str, Any]:
    """The record with 'nan'/'inf' strings turned back into floats."""
    out = {}
    for key, value in record.items():
        if isinstance(value, str) and value in ("nan", "inf", "-inf"):
            value = float(value)
        elif isinstance(value, dict):
            value = _numbers(value)
        out[key] = value
    return out


def _checkpoint_states(path: Path) -> list[dict[str, Any]]:
    root = path / "checkpoints"
    if not root.is_dir():
        return []
    states = []
    for folder in sorted(root.glob("step_*")):
        state = _read_json(folder / "state.json")
        if state is not None:
            states.append({**state, "name": folder.name})
    return states


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _read_text(path: Path) -> str | None:
    return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None
