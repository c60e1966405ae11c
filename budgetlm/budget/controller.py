"""Turn a budget into a number of optimizer steps, and keep that plan true while training.

Token, FLOP and step budgets are exact arithmetic. A time budget is planned from measured step
times: before training from the step time measured on this machine (machine/throughput.py), then
from the trainer's report of each step's duration and of the time its evaluations and checkpoints
take. The trainer re-plans freely while the schedule allows it (e.g. until a WSD decay starts),
and later only when the run would miss its budget by more than DRIFT_TOLERANCE, so every schedule
ends on time. A run that has started never aborts for time: a slow first step (compilation) is
not extrapolated."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from budgetlm.budget.spec import Budget
from budgetlm.errors import UserError

PROVISIONAL_STEPS = 1000
"""Plan used for a time budget before any step has been timed."""
SKIP_FIRST_STEPS = 2
"""Steps whose time includes one-off warm-up costs (allocation, kernel selection, compiling)."""
MIN_RUN_STEPS = 20
"""The smallest sensible run: a time budget that cannot hold this many steps besides its
evaluations and checkpoints is too small."""
DRIFT_TOLERANCE = 0.03
"""Share of a time budget by which a run whose schedule is fixed (e.g. decaying) may be projected
to miss it before its total is re-planned anyway (a small jump of the LR beats an overrun)."""


@dataclass
class BudgetController:
    """Plans total optimizer steps for a budget and tracks how much of it has been used."""

    budget: Budget
    tokens_per_step: int
    flops_per_step: float
    estimated_step_seconds: float | None = None
    """One optimizer step's time measured on this machine before training (None: unknown)."""
    estimated_overhead: dict[str, float] = field(default_factory=dict)
    """Seconds of one 'eval' or 'checkpoint', and of the 'end' (samples), until measured."""
    step_seconds: list[float] = field(default_factory=list)
    overhead_seconds: dict[str, list[float]] = field(default_factory=dict)

    def initial_total(self, elapsed: float = 0.0, reserve: float = 0.0) -> int:
        """Planned steps before training, `elapsed` seconds into a time budget with `reserve`
        seconds still needed for evaluations and checkpoints; errors when the budget cannot pay
        for one step (or a time budget for the smallest sensible run)."""
        if self.budget.kind == "seconds":
            if self.estimated_step_seconds is None:
                return PROVISIONAL_STEPS
            self.check_time_fits(elapsed, reserve)
            remaining = self.budget.amount - elapsed - reserve
            return max(MIN_RUN_STEPS, math.floor(remaining / self.estimated_step_seconds))
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

    def check_time_fits(self, elapsed: float, reserve: float) -> None:
        """Error naming the figures when a time budget cannot hold MIN_RUN_STEPS steps of the
        estimated time besides `reserve` seconds of evaluations, checkpoints and samples."""
        per_step = self.estimated_step_seconds
        if self.budget.kind != "seconds" or per_step is None:
            return
        needed = elapsed + reserve + MIN_RUN_STEPS * per_step
        if needed > self.budget.amount:
            raise UserError(
                f"budget {self.budget} is too small: {MIN_RUN_STEPS} optimizer steps take "
                f"~{MIN_RUN_STEPS * per_step:.0f} s here ({per_step:.2g} s each), evaluation, "
                f"checkpoints and samples ~{reserve:.0f} s, and {elapsed:.0f} s went to "
                f"preparing the run; use at least --budget {math.ceil(1.1 * needed)}s, a "
                "smaller --model or a smaller train.batch_size"
            )

    def observe_step(self, seconds: float) -> None:
        """Record one optimizer step's wall time."""
        self.step_seconds.append(seconds)
        if len(self.step_seconds) > 200:
            del self.step_seconds[SKIP_FIRST_STEPS : SKIP_FIRST_STEPS + 100]

    def observe_overhead(self, kind: str, seconds: float) -> None:
        """Record the wall time of an evaluation ('eval') or checkpoint ('checkpoint')."""
        self.overhead_seconds.setdefault(kind, []).append(seconds)

    def seconds_per_step(self) -> float | None:
        """Typical step time: median of recent steps after the warm-up steps; until there are
        any, the estimate measured before training, else the warm-up steps'."""
        usable = self.step_seconds[SKIP_FIRST_STEPS:]
        if usable:
            return statistics.median(usable[-50:])
        if self.estimated_step_seconds is not None:
            return self.estimated_step_seconds
        return statistics.median(self.step_seconds) if self.step_seconds else None

    def overhead(self, kind: str, default: float = 0.0) -> float:
        """Typical wall time of one overhead event of this kind (the estimate until one is
        timed, else `default`)."""
        seen = self.overhead_seconds.get(kind)
        if seen:
            return statistics.median(seen[-5:])
        return self.estimated_overhead.get(kind, default)

    def replan(self, steps_done: int, elapsed: float, reserve_seconds: float) -> int:
        """New total steps for a time budget, given elapsed time and time still reserved for
        evaluations and checkpoints; other budgets never change their plan."""
        if self.budget.kind != "seconds":
            return self.initial_total()
        per_step = self.seconds_per_step()
        if per_step is None:
            return PROVISIONAL_STEPS
        if len(self.step_seconds) <= SKIP_FIRST_STEPS and self.estimated_step_seconds is None:
            # Only warm-up steps timed so far (the first may include compiling the model, 15-30 s)
            # and no estimate: planning from them would end the run after a few steps. Keep the
            # provisional plan until a typical step is seen.
            return max(PROVISIONAL_STEPS, steps_done + 1)
        remaining = self.budget.amount - elapsed - reserve_seconds
        return steps_done + max(1 if steps_done == 0 else 0, math.floor(remaining / per_step))

    def off_plan(self, steps_done: int, total: int, elapsed: float, reserve: float) -> bool:
        """Whether a time budget's run, on its current plan, is projected to end more than
        DRIFT_TOLERANCE of the budget away from it (only once a typical step has been timed)."""
        if self.budget.kind != "seconds" or len(self.step_seconds) <= SKIP_FIRST_STEPS:
            return False
        per_step = self.seconds_per_step() or 0.0
        projected = elapsed + max(0, total - steps_done) * per_step + reserve
        return abs(projected - self.budget.amount) > DRIFT_TOLERANCE * self.budget.amount

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
