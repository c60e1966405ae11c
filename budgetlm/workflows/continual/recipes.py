"""Continual pre-training recipes: which checkpoint to start from, how to schedule the learning
rate, and how much of the original data to replay. Each is a remedy for the stability gap and
for forgetting from the literature; `default` is the one the measurements in BENCHMARKS.md chose."""

from __future__ import annotations

from dataclasses import dataclass

from budgetlm.errors import UserError, closest


@dataclass(frozen=True)
class Recipe:
    """How to continue pre-training a model on new data."""

    name: str
    checkpoint: str
    """'final' (fully decayed) or 'pre_decay' (end of the stable phase of a WSD run)."""
    schedule: str
    warmup_fraction: float
    decay_fraction: float
    replay_ratio: float
    description: str
    subset_fraction: float = 1.0
    """Share of the new domain's documents trained on, lowest loss under the model first."""


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in [
        Recipe(
            "naive",
            "final",
            "cosine",
            0.0,
            1.0,
            0.0,
            "from the final model, jump back to the peak LR and cosine-decay on the new data "
            "only: what re-running a pre-training script on new data does",
        ),
        Recipe(
            "rewarm",
            "final",
            "cosine",
            0.02,
            1.0,
            0.0,
            "from the final model, re-warm the LR over 2% of the steps, then cosine re-decay "
            '("Continual Pre-Training of Large Language Models: How to (re)warm your model?", '
            "Gupta et al., 2023)",
        ),
        Recipe(
            "replay",
            "final",
            "cosine",
            0.02,
            1.0,
            0.25,
            "re-warm and re-decay with 25% of each batch replayed from the original data "
            '("Simple and Scalable Strategies to Continually Pre-train Large Language Models", '
            "Ibrahim et al., 2024)",
        ),
        Recipe(
            "hq-subset",
            "final",
            "cosine",
            0.02,
            1.0,
            0.25,
            "re-warm, re-decay and 25% replay, training several epochs on the quarter of the new "
            "domain's documents the model finds most predictable instead of one pass over all of "
            'it ("Efficient Continual Pre-training by Mitigating the Stability Gap", Guo et al., '
            "2024; loss-based quality filtering as in CCNet, Wenzek et al., 2020)",
            subset_fraction=0.25,
        ),
        Recipe(
            "infinite",
            "pre_decay",
            "wsd",
            0.0,
            0.2,
            0.0,
            "from the pre-decay (stable-phase) checkpoint, keep the constant LR and decay at the "
            'end, no re-warm ("Beyond Cosine Decay: On the effectiveness of Infinite Learning '
            'Rate Schedule for Continual Pre-training", Singh et al., 2025)',
        ),
        Recipe(
            "infinite-replay",
            "pre_decay",
            "wsd",
            0.0,
            0.2,
            0.25,
            "the infinite-schedule continuation with 25% replay of the original data",
        ),
    ]
}
RECIPES["default"] = RECIPES["replay"]
"""Chosen by `benchmarks/continual.py` (BENCHMARKS.md, 3 seeds): in both measured pairs the only
recipe that cut forgetting by more than half against naive continuation (prose -> code: 81%, at
an equal new-domain loss; code -> prose: no forgetting at all, at +0.107 nats on the new domain).
Continuing the pre-decay checkpoint ('infinite') forgot more in both pairs."""


def get_recipe(name: str) -> Recipe:
    """The recipe named by `--recipe`."""
    if name not in RECIPES:
        raise UserError(
            f"unknown recipe '{name}'{closest(name, RECIPES)}; choose one of {', '.join(RECIPES)}"
        )
    return RECIPES[name]
