"""The old data a continual run replays beside the new (to forget less, and to measure
forgetting): the sources the user names, else the data the parent run trained on."""

from __future__ import annotations

import copy
from pathlib import Path

from budgetlm.config import RunConfig
from budgetlm.data.store.dataset import PreparedDataset
from budgetlm.errors import UserError
from budgetlm.io import Log
from budgetlm.workflows.continual.parent import Parent
from budgetlm.workflows.data import is_prepared_dir, open_data, trained_on


def replay_data(
    parent: Parent,
    config: RunConfig,
    replay: list[str] | None,
    log: Log,
    tokenizer: Path | None = None,
) -> PreparedDataset | None:
    """The data to replay, tokenized with `tokenizer` (default: the parent's): the given
    sources, else exactly the data the parent run trained on (its prepared directory, or its
    sources re-prepared); None when that is gone or unknown (a Hugging Face model's
    pre-training data)."""
    tokenizer = tokenizer or parent.tokenizer
    if replay:
        replay_config = copy.deepcopy(parent.config or config)
        replay_config.data.sources, replay_config.data.prepared = replay, None
        return open_data(replay_config, tokenizer, log)
    if parent.config is None:
        return None
    dirs = sorted(set((trained_on(parent.path) or {}).values()))
    if len(dirs) == 1 and is_prepared_dir(dirs[0]) and tokenizer == parent.tokenizer:
        return PreparedDataset(dirs[0])
    if tokenizer != parent.tokenizer and not parent.config.data.sources:
        log(
            f"{parent.source} trained on a prepared dataset, which is tokenized with the old "
            "vocabulary: not replayed. Pass its raw sources with --replay SOURCES to replay them"
        )
        return None
    try:
        return open_data(parent.config, tokenizer, log)
    except UserError as e:
        log(f"cannot re-read the original data: {e}")
        return None
