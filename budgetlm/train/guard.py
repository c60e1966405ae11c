"""Loss-spike and NaN guard: detect a non-finite or spiking training loss, so the trainer can
roll back to the last good state and skip the batches that caused it.

The remedy is the one the PaLM report describes for its loss spikes ("PaLM: Scaling Language
Modeling with Pathways", Chowdhery et al. 2022, section 5.1): restart from a checkpoint taken
before the spike and skip the data batches seen just before it. The losses are checked when
they are logged anyway (every `train.log_every` steps), so the guard adds no host
synchronisation per step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class GuardConfig:
    """When a loss counts as bad, and how the trainer recovers from it."""

    enabled: bool = True
    """Roll back on a bad loss; when off, a non-finite loss stops the run with an error."""
    spike_factor: float = 2.0
    """A loss above this multiple of its running mean is a spike (0: only NaN/inf count). A
    doubled loss is far outside the noise of a healthy run, while a change of domain in a
    curriculum or a continual run moves the loss by less."""
    warmup_checks: int = 3
    """Checks (log intervals) before spikes are judged, while the running mean settles."""
    snapshot_every: int = 50
    """Steps between in-memory snapshots of the last good state (taken after a passing check)."""
    max_rollbacks: int = 5
    """Give up (with an error that says to lower the LR) after this many rollbacks."""
    mean_decay: float = 0.9
    """Weight of the old running mean at each check (an exponential moving average)."""


class LossGuard:
    """Judges windows of per-step training losses against a running mean of good ones."""

    def __init__(self, config: GuardConfig) -> None:
        self.config = config
        self.mean: float | None = None
        self.checks = 0

    def first_bad(self, losses: Sequence[float]) -> tuple[int, str] | None:
        """(index, reason) of the first bad loss in the window, or None when all are good (and
        then they update the running mean)."""
        c = self.config
        for i, loss in enumerate(losses):
            if not math.isfinite(loss):
                return i, f"loss is {loss}"
            judged = self.mean is not None and self.checks >= c.warmup_checks
            if judged and c.spike_factor > 0 and loss > c.spike_factor * self.mean:
                return i, f"loss {loss:.3f} is over {c.spike_factor:g}x its running mean"
        if losses:
            window = sum(losses) / len(losses)
            self.mean = (
                window
                if self.mean is None
                else (c.mean_decay * self.mean + (1 - c.mean_decay) * window)
            )
            self.checks += 1
        return None

    def state_dict(self) -> dict:
        return {"mean": self.mean, "checks": self.checks}

    def load_state_dict(self, state: dict) -> None:
        self.mean, self.checks = state.get("mean"), int(state.get("checks", 0))
