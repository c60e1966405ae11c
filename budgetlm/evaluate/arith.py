"""Exact-match accuracy on the built-in arithmetic skills, for runs whose data includes
builtin:arith: the in-training evaluation of pretrain and continue, and `budgetlm eval`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from budgetlm.data.ingest.arith import SKILLS, arith_eval_set
from budgetlm.data.store.dataset import PreparedDataset
from budgetlm.data.store.tokenizer import Tokenizer
from budgetlm.evaluate.exact_match import exact_match, tokenize_items

ITEMS_PER_SKILL = 20

Evaluation = Callable[[torch.nn.Module], dict[str, Any]]
EvaluationBuilder = Callable[[torch.device, Callable], Evaluation]


def arith_evaluation(
    tokenizer: Tokenizer, datasets: list[PreparedDataset]
) -> EvaluationBuilder | None:
    """Exact-match accuracy per arithmetic skill when builtin:arith (or some of its skills, as
    builtin:arith/SKILL sources) is among the data: of the skills in the data. Returns a
    builder taking (device, autocast), or None when no dataset has arithmetic."""
    specs = [
        s["spec"] for d in datasets for s in d.manifest["sources"] if "builtin:arith" in s["spec"]
    ]
    if not specs:
        return None
    named = {spec.split("builtin:arith/", 1)[1] for spec in specs if "builtin:arith/" in spec}
    whole = any("builtin:arith/" not in spec for spec in specs)
    tasks = {
        f"arith/{skill}": tokenize_items(arith_eval_set(skill, ITEMS_PER_SKILL), tokenizer.encode)
        for skill in SKILLS
        if whole or skill in named
    }

    def build(device: torch.device, autocast: Callable) -> Evaluation:
        def evaluate(model: torch.nn.Module) -> dict[str, Any]:
            accuracy = {
                name: exact_match(model, items, device, autocast) for name, items in tasks.items()
            }
            accuracy["arith"] = sum(accuracy.values()) / len(accuracy)
            return {"accuracy": accuracy}

        return evaluate

    return build
