"""Configuration of evaluation and of the samples written at the end of a run."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class EvalConfig:
    """Held-out loss per domain, measured at regular shares of the budget."""

    count: int = 10
    """Evaluations spread over the budget (plus one at the start and one at the end)."""
    tokens_per_domain: int = 32768
    """Validation tokens per domain scored at each evaluation."""
    batch_size: int = 16


@dataclass
class SampleConfig:
    """Text generated from a few prompts at the end of a run (samples.txt)."""

    prompts_per_domain: int = 2
    max_new_tokens: int = 120
    temperature: float = 0.8
    top_k: int = 50
    seed: int = 0
