"""Stability-gap and forgetting measures of a continual pre-training run, computed from its
evaluation history ("Efficient Continual Pre-training by Mitigating the Stability Gap",
Guo et al., 2024; De Lange et al., "Continual evaluation for lifelong learning: identifying
the stability gap", 2023)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def loss_gap(points: Sequence[tuple[int, int, float]]) -> dict[str, Any]:
    """For (step, tokens, loss) points of one domain, starting at the run's start: how far the
    loss rose above its start value (depth), where it peaked, and the step/tokens at which it
    first came back to the start value after the peak (None if it never did)."""
    return _gap([(s, t, v) for s, t, v in points], sign=1.0)


def accuracy_gap(points: Sequence[tuple[int, int, float]]) -> dict[str, Any]:
    """The same for an accuracy: how far it dropped below its start value and when it recovered."""
    return _gap([(s, t, v) for s, t, v in points], sign=-1.0)


def _gap(points: list[tuple[int, int, float]], sign: float) -> dict[str, Any]:
    if not points:
        raise ValueError("no evaluation points")
    start = points[0][2]
    worsening = [sign * (v - start) for _, _, v in points]
    peak = max(range(len(points)), key=lambda i: worsening[i])
    depth = max(0.0, worsening[peak])
    recovered = None
    if depth > 0:
        after = [i for i in range(peak + 1, len(points)) if worsening[i] <= 0]
        recovered = after[0] if after else None
    return {
        "start": start,
        "final": points[-1][2],
        "depth": depth,
        "peak_step": points[peak][0] if depth > 0 else None,
        "recover_step": points[recovered][0] if recovered is not None else None,
        "recover_tokens": points[recovered][1] if recovered is not None else None,
        "recovered": depth == 0 or recovered is not None,
    }


def continual_summary(
    evals: Sequence[dict[str, Any]],
    new_domains: Sequence[str],
    old_domains: Sequence[str],
    reference: dict[str, float] | None = None,
    metric: str = "val_loss",
) -> dict[str, Any]:
    """Gap, recovery and forgetting from a run's eval records (metrics.jsonl 'eval' lines), in
    `metric` (val_loss, nats per token, or val_bpb, bits per byte):
    per new domain the loss gap; per old domain the forgetting, the final loss minus the
    `reference` loss (the parent's final model, which is what the user had; a recipe that starts
    from an earlier checkpoint starts higher) or, without one, minus the start loss; per
    downstream task the accuracy gap."""

    def series(key: str, name: str) -> list[tuple[int, int, float]]:
        return [(r["step"], r["tokens"], r[key][name]) for r in evals if name in r.get(key, {})]

    tasks = sorted({t for r in evals for t in r.get("accuracy", {})})
    return {
        "new": {d: loss_gap(series(metric, d)) for d in new_domains},
        "forgetting": {
            d: series(metric, d)[-1][2] - (reference or {}).get(d, series(metric, d)[0][2])
            for d in old_domains
        },
        "old": {d: loss_gap(series(metric, d)) for d in old_domains},
        "accuracy": {t: accuracy_gap(series("accuracy", t)) for t in tasks},
    }
