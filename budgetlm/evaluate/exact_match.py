"""Downstream exact-match accuracy: greedy decoding of short answers (e.g. `builtin:arith`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import torch


@torch.no_grad()
def exact_match(
    model: torch.nn.Module,
    items: Sequence[tuple[list[int], list[int]]],
    device: torch.device,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> float:
    """Share of (prompt ids, answer ids) items whose greedy continuation is exactly the answer.

    Items with equal prompt and answer lengths are decoded together, one token per forward pass.
    """
    if not items:
        raise ValueError("exact_match needs at least one item")
    was_training = model.training
    model.eval()
    groups: dict[tuple[int, int], list[tuple[list[int], list[int]]]] = {}
    for prompt, answer in items:
        groups.setdefault((len(prompt), len(answer)), []).append((prompt, answer))
    correct = 0
    for (_, answer_len), group in groups.items():
        tokens = torch.tensor([p for p, _ in group], device=device)
        answers = torch.tensor([a for _, a in group], device=device)
        for _ in range(answer_len):
            with autocast():
                logits = model(tokens)
            tokens = torch.cat([tokens, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
        correct += int((tokens[:, -answer_len:] == answers).all(dim=1).sum())
    model.train(was_training)
    return correct / len(items)


def tokenize_items(
    pairs: Sequence[tuple[str, str]], encode: Callable[[str], list[int]], end: str = "\n"
) -> list[tuple[list[int], list[int]]]:
    """(prompt, answer) strings into (prompt ids, answer ids), with the answer ids taken from
    the tokenization of prompt + answer + end so that merges across the boundary are kept;
    the answer must be followed by `end` (e.g. the newline) to count as complete."""
    items = []
    for prompt, answer in pairs:
        prompt_ids = encode(prompt)
        full = encode(prompt + answer + end)
        if full[: len(prompt_ids)] != prompt_ids:
            raise ValueError(f"prompt {prompt!r} tokenizes differently when followed by its answer")
        items.append((prompt_ids, full[len(prompt_ids) :]))
    return items
