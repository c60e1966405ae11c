"""Parse a compute budget: wall time, tokens, FLOPs or optimizer steps."""

from __future__ import annotations

import re
from dataclasses import dataclass

from budgetlm.errors import UserError

KINDS = ("seconds", "tokens", "flops", "steps")
_TIME_UNITS = {"s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}
_SCALE = {"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "B": 1e9, "T": 1e12}
_NUMBER = r"(\d+(?:\.\d*)?(?:[eE][+-]?\d+)?)"
_HELP = "use e.g. 90s, 5m, 2h, 1h30m, 50Mtok, 1e15flop or 2000steps"


@dataclass(frozen=True)
class Budget:
    """How much compute a run may use, in one of KINDS."""

    kind: str
    amount: float

    def __str__(self) -> str:
        if self.kind == "seconds":
            return _format_seconds(self.amount)
        unit = {"tokens": "tok", "flops": "flop", "steps": "steps"}[self.kind]
        return f"{self.amount:g}{unit}"


def parse_budget(text: str) -> Budget:
    """'5m' -> Budget('seconds', 300); '50Mtok' -> Budget('tokens', 5e7); errors name the fix."""
    s = str(text).strip().replace("_", "")
    time_parts = re.fullmatch(r"(?:" + _NUMBER + r"(?:d|h|m|min|s|sec))+", s)
    if time_parts:
        seconds = sum(
            float(n) * _TIME_UNITS[u] for n, u in re.findall(_NUMBER + r"(d|h|min|m|sec|s)", s)
        )
        return _checked(Budget("seconds", seconds), text)
    m = re.fullmatch(_NUMBER + r"([kKMGBT]?)(tok|toks|tokens|flop|flops|step|steps)", s)
    if m:
        number, scale, unit = m.groups()
        kind = {"tok": "tokens", "token": "tokens", "flop": "flops", "step": "steps"}[
            unit.rstrip("s")
        ]
        amount = float(number) * _SCALE[scale]
        if kind == "steps" and not amount.is_integer():
            raise UserError(f"budget '{text}': steps must be a whole number; {_HELP}")
        return _checked(Budget(kind, amount), text)
    raise UserError(f"budget '{text}' is not understood; {_HELP}")


def _checked(budget: Budget, text: str) -> Budget:
    if budget.amount <= 0:
        raise UserError(f"budget '{text}' must be positive; {_HELP}")
    return budget


def _format_seconds(seconds: float) -> str:
    seconds = round(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    parts = [f"{h}h" if h else "", f"{m}m" if m else "", f"{s}s" if s or not (h or m) else ""]
    return "".join(parts)
