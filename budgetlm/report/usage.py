"""Where a run's budget went: planned against used, in the budget's own unit, and how fast the
training steps ran (tokens/s, FLOP/s and, against a known peak, model FLOPs utilisation)."""

from __future__ import annotations

from dataclasses import dataclass

from budgetlm.budget.spec import parse_budget
from budgetlm.errors import UserError
from budgetlm.report.figure import format_seconds, format_value
from budgetlm.report.rundata import Run, finite

TIME_SHARES = (
    ("training steps", "steps"),
    ("evaluation", "eval"),
    ("checkpoints", "checkpoint"),
)
"""What the budget pays for (a time budget counts these)."""
OUTSIDE_SHARES = (
    ("data preparation", "data"),
    ("model setup", "setup"),
    ("samples", "samples"),
)
"""Wall time a run spends outside its budget."""


@dataclass
class BudgetUse:
    """The budget as planned and as used, in its unit (seconds, tokens, FLOPs or steps)."""

    budget: str
    kind: str | None
    """None when the recorded budget cannot be parsed (an older run)."""
    planned: float | None
    used: float | None
    finished: bool
    first_plan: int | None
    """Total steps planned before the first step (a time budget re-plans it while training)."""
    steps: int
    tokens: int
    seconds: dict[str, float]
    """Where the wall time went (the end record's split; 'elapsed' for an unfinished run)."""
    training_seconds: float
    """Wall time paid from the budget: steps, evaluations and checkpoints."""

    @property
    def share(self) -> float | None:
        """Used / planned."""
        if self.planned and self.used is not None:
            return self.used / self.planned
        return None

    def format(self, amount: float | None) -> str:
        """An amount in the budget's unit, as a person reads it."""
        if amount is None:
            return "unknown"
        if self.kind == "seconds":
            return format_seconds(amount)
        unit = {"tokens": " tokens", "flops": " FLOPs", "steps": " steps"}.get(self.kind, "")
        if self.kind == "steps":
            return f"{amount:,.0f}{unit}"
        return f"{format_value(amount, 'number')}{unit}"


def budget_use(run: Run) -> BudgetUse:
    """Planned against used; for an unfinished run, what it used up to its last record."""
    start, end = run.start, run.end
    try:
        budget = parse_budget(start.get("budget", ""))
        kind, planned = budget.kind, budget.amount
    except UserError:
        kind, planned = None, None
    plans = [r["total_steps"] for r in run.train if "total_steps" in r]
    if end is not None:
        steps, tokens = int(end["steps"]), int(end["tokens"])
        seconds = {k: float(v) for k, v in end.get("seconds", {}).items()}
        flops = float(end.get("flops", 0.0))
    else:
        last = run.train[-1] if run.train else run.evals[-1]
        steps, tokens = int(last.get("step", 0)), int(last.get("tokens", 0))
        state = run.checkpoints[-1]["train"] if run.checkpoints else {}
        seconds = {k: float(v) for k, v in state.get("seconds", {}).items()}
        seconds["elapsed"] = float(last.get("elapsed", 0.0))
        flops = tokens * float(start.get("flops_per_token", 0))
    budget_seconds = sum(seconds.get(key, 0.0) for _, key in TIME_SHARES)
    if end is None:
        budget_seconds = seconds.get("elapsed", budget_seconds)
    used = {"seconds": budget_seconds, "tokens": tokens, "flops": flops, "steps": steps}
    return BudgetUse(
        budget=str(start.get("budget", "?")),
        kind=kind,
        planned=planned,
        used=used.get(kind) if kind else None,
        finished=end is not None,
        first_plan=int(plans[0]) if plans else None,
        steps=steps,
        tokens=tokens,
        seconds=seconds,
        training_seconds=budget_seconds,
    )


@dataclass
class Throughput:
    """Training-step speed: tokens/s, achieved FLOP/s and, with a peak, MFU."""

    tokens_per_s: float | None
    flops_per_s: float | None
    peak_flops: float | None
    peak_source: str | None

    @property
    def mfu(self) -> float | None:
        if self.flops_per_s is None or not self.peak_flops:
            return None
        return self.flops_per_s / self.peak_flops


def throughput(run: Run, peak_flops: float | None = None) -> Throughput:
    """tokens/s of the training steps (the end record's, else the mean of the logged rates);
    FLOP/s from the recorded FLOPs per token (model/flops.py: 6N plus attention); MFU only
    against a peak that was measured: `peak_flops` given by the user, else one the run
    recorded. Without one MFU stays unknown."""
    rate = finite(run.end.get("tokens_per_s")) if run.end else None
    if rate is None:
        rates = [finite(r.get("tokens_per_s")) for r in run.train]
        rates = [r for r in rates if r is not None]
        rate = sum(rates) / len(rates) if rates else None
    per_token = finite(run.start.get("flops_per_token"))
    achieved = rate * per_token if rate is not None and per_token else None
    source = None
    if peak_flops:
        source = "given with --peak-flops"
    elif finite(run.start.get("peak_flops")):
        peak_flops, source = float(run.start["peak_flops"]), "measured by the run"
    return Throughput(rate, achieved, peak_flops or None, source)
