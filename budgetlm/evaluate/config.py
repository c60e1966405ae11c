"""Configuration of evaluation and of the samples written at the end of a run."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EvalConfig:
    """Held-out loss per domain, measured at regular shares of the budget."""

    count: int = 10
    """Evaluations spread evenly over the budget, the last at the end (plus one at the start)."""
    early: list[float] = field(default_factory=list)
    """Extra evaluations at these shares of the budget, e.g. [0.01, 0.02, 0.05] to resolve the
    stability gap at the start of continual pre-training."""
    tokens_per_domain: int = 32768
    """Validation tokens per domain scored at each evaluation."""
    batch_size: int = 16
    max_share: float = 0.10
    """Largest share of a time budget that evaluation may take: tokens_per_domain shrinks to fit
    it, measured before training (1 keeps tokens_per_domain as set)."""

    def fractions(self) -> list[float]:
        """Shares of the budget after which to evaluate, before the final evaluation."""
        even = [k / self.count for k in range(1, self.count)]
        return sorted({round(f, 6) for f in even + list(self.early) if 0 < f < 1})


@dataclass
class SampleConfig:
    """Text generated from a few prompts at the end of a run (samples.txt)."""

    prompts_per_domain: int = 2
    max_new_tokens: int = 120
    temperature: float = 0.8
    top_k: int = 50
    seed: int = 0
