"""mix.json: the mixture `budgetlm mix search` found (weights per domain, with how it was found)
and that `budgetlm pretrain/continue --mixture mix.json` train with."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from budgetlm.errors import UserError
from budgetlm.io import write_text_atomic

MIXTURE_FORMAT = 1
SUM_TOLERANCE = 1e-6


def mixture_weights(path: str | Path) -> dict[str, float]:
    """The weights of a mixture file: a JSON object whose "weights" maps each domain to a
    non-negative number, summing to one (checked here, with the file named in any error)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(
            f"mixture file {path} does not exist; make one with `budgetlm mix search` or check "
            "--mixture"
        )
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"mixture file {path} is not valid JSON ({e})") from None
    weights = payload.get("weights") if isinstance(payload, dict) else None
    if not isinstance(weights, dict) or not weights:
        raise UserError(
            f'mixture file {path} has no "weights" mapping; it must look like '
            '{"weights": {"code": 0.6, "prose": 0.4}}'
        )
    for domain, w in weights.items():
        if isinstance(w, bool) or not isinstance(w, int | float) or not math.isfinite(w) or w < 0:
            raise UserError(
                f"mixture file {path}: the weight of '{domain}' must be a non-negative number, "
                f"got {w!r}"
            )
    total = sum(weights.values())
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise UserError(
            f"mixture file {path}: the weights sum to {total:.6g}, not 1; fix them so they sum "
            "to one"
        )
    return {str(d): float(w) for d, w in weights.items()}


def write_mixture_file(path: str | Path, result: dict[str, Any]) -> None:
    """Write a search result (with "weights") as mix.json, atomically."""
    payload = {"format": MIXTURE_FORMAT, **result}
    write_text_atomic(path, json.dumps(payload, indent=2) + "\n")
