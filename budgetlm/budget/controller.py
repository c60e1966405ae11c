"""Turn a budget into a number of optimizer steps, and keep that plan true while training.

Token, FLOP and step budgets are exact arithmetic. A time budget is planned from measured step
times: the trainer reports each step's duration and the time its evaluations and checkpoints
take, and re-plans the total while the schedule allows it (e.g. until a WSD decay starts), so the
run ends fully decayed when the budget does."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from budgetlm.budget.spec import Budget
from budgetlm.errors import UserError

PROVISIONAL_STEPS = 1000
"""Plan used for a time budget before any step has been timed."""
SKIP_FIRST_STEPS = 2
"""Steps whose time includes one-off warm-up costs (allocation, kernel selection)."""


@dataclass
class BudgetController:
    """Plans total optimizer steps for a budget and tracks how much of it has been used."""

    budget: Budget
    tokens_per_step: int
    flops_per_step: float
    step_seconds: list[float] = field(default_factory=list)
    overhead_seconds: dict[str, list[float]] = field(default_factory=dict)

    def initial_total(self) -> int:
        """Planned steps before training; errors when the budget cannot pay for one step."""
        if self.budget.kind == "seconds":
            return PROVISIONAL_STEPS
        per_step = {"tokens": self.tokens_per_step, "flops": self.flops_per_step, "steps": 1}
        total = math.floor(self.budget.amount / per_step[self.budget.kind])
        if total < 1:
            unit = {"tokens": "tokens", "flops": "FLOPs"}[self.budget.kind]
            raise UserError(
                f"budget {self.budget} is too small for one optimizer step, which uses "
                f"{per_step[self.budget.kind]:.3g} {unit}; raise --budget or lower "
                "train.batch_size / model.seq_len"
            )
        return total

    def observe_step(self, seconds: float) -> None:
        """Record one optimizer step's wall time."""
        self.step_seconds.append(seconds)
        if len(self.step_seconds) > 200:
            del self.step_seconds[SKIP_FIRST_STEPS : SKIP_FIRST_STEPS + 100]

    def observe_overhead(self, kind: str, seconds: float) -> None:
        """Record the wall time of an evaluation ('eval') or checkpoint ('checkpoint')."""
        self.overhead_seconds.setdefault(kind, []).append(seconds)

    def seconds_per_step(self) -> float | None:
        """Typical step time: median of recent steps, skipping warm-up steps when possible."""
        if not self.step_seconds:
            return None
        usable = self.step_seconds[SKIP_FIRST_STEPS:] or self.step_seconds
        return statistics.median(usable[-50:])

    def overhead(self, kind: str, default: float = 0.0) -> float:
        """Typical wall time of one overhead event of this kind."""
        seen = self.overhead_seconds.get(kind)
        return statistics.median(seen[-5:]) if seen else default

    def replan(self, steps_done: int, elapsed: float, reserve_seconds: float) -> int:
        """New total steps for a time budget, given elapsed time and time still reserved for
        evaluations and checkpoints; other budgets never change their plan."""
        if self.budget.kind != "seconds":
            return self.initial_total()
        per_step = self.seconds_per_step()
        if per_step is None:
            return PROVISIONAL_STEPS
        remaining = self.budget.amount - elapsed - reserve_seconds
        if steps_done <= 1 and remaining < 0:
            raise UserError(
                f"budget {self.budget} is too small: the first optimizer step took "
                f"{elapsed:.1f} s here and evaluation/checkpoints need {reserve_seconds:.1f} s "
                "more; "
                f"use at least --budget {math.ceil(10 * per_step + 2 * reserve_seconds) + 1}s, "
                "a smaller --model or a smaller train.batch_size"
            )
        if len(self.step_seconds) <= SKIP_FIRST_STEPS:
            # Only warm-up steps timed so far (the first may include compiling the model, 15-30 s):
            # planning from them would end the run after a few steps, and a decay that has
            # started cannot be re-planned. Keep the provisional plan until a typical step is seen.
            return max(PROVISIONAL_STEPS, steps_done + 1)
        return steps_done + max(0, math.floor(remaining / per_step))

    def used(self, steps_done: int, elapsed: float, total: int) -> float:
        """Share of the budget used so far (0..1, may exceed 1 slightly for time)."""
        if self.budget.kind == "seconds":
            return elapsed / self.budget.amount
        return steps_done / max(1, total)

    def state_dict(self) -> dict:
        return {
            "step_seconds": list(self.step_seconds),
            "overhead_seconds": {k: list(v) for k, v in self.overhead_seconds.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        self.step_seconds = [float(s) for s in state["step_seconds"]]
        self.overhead_seconds = {
            k: [float(s) for s in v] for k, v in state["overhead_seconds"].items()
        }
