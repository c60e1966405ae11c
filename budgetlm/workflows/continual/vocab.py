"""`continue --extend-vocab N`: learn new tokens from the new data (the parent's tokenizer
continued, data/store/vocab_extension.py), size the model's embedding and head for them, and
initialise their rows (model/vocab_resize.py) when the parent's weights are loaded."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor, nn

from budgetlm.config import RunConfig
from budgetlm.data.prepare.cache import default_cache_dir
from budgetlm.data.store.dataset import PreparedDataset
from budgetlm.data.store.tokenizer import TOKENIZER_FILE, Tokenizer
from budgetlm.data.store.vocab_extension import Extension, extend_vocabulary
from budgetlm.errors import UserError
from budgetlm.evaluate.bpb import bytes_per_token
from budgetlm.io import Log
from budgetlm.model.config import HF_BACKEND
from budgetlm.model.vocab_resize import INITS, focus_weights, grow_rows, grown_state
from budgetlm.train.new_rows import NewRowsRule

LEARN_TOKENS = 5_000_000
"""Tokens of the new training data (per domain, from the start) the new merges are learned on."""


@dataclass
class VocabularyPlan:
    """The extended tokenizer (saved where the data preparation can read it) and the rows the
    model needs."""

    extension: Extension
    tokenizer: Path
    old_rows: int
    rows: int
    init: str
    before: dict[str, float]
    warmup: float = 0.0
    lr_scale: float = 1.0
    """Bytes per token of each new domain's training text with the old tokenizer."""

    def fit_model(self, config: RunConfig) -> None:
        """Give the run's model config the grown vocabulary (both backends)."""
        config.model.vocab_size = self.rows
        if config.model.backend == HF_BACKEND:
            config.model.hf_config = {**(config.model.hf_config or {}), "vocab_size": self.rows}

    def transform(
        self, streams: list[np.ndarray], seed: int
    ) -> Callable[[dict[str, Tensor], dict[str, Tensor]], dict[str, Tensor]]:
        """What fits the parent's state dict to the grown model: old rows kept, new rows
        initialised by `init` (FOCUS's weights learned from `streams`, the new training data
        tokenized with the extended tokenizer)."""
        added = self.extension.added
        weights = focus_weights(streams, added, self.old_rows) if self.init == "focus" else None

        def transform(state: dict[str, Tensor], target: dict[str, Tensor]) -> dict[str, Tensor]:
            def grow(old: Tensor, rows: int) -> Tensor:
                return grow_rows(old, rows, added, self.init, weights, seed)

            return grown_state(state, target, self.old_rows, grow)

        return transform

    def step_rule(self, config: RunConfig) -> Callable[[nn.Module], NewRowsRule] | None:
        """The warm-up and new-row learning rate of continual.vocab_warmup and
        continual.new_rows_lr_scale, when either is set."""
        cont = config.continual
        if cont.vocab_warmup == 0 and cont.new_rows_lr_scale == 1:
            return None
        ids = list(self.extension.added)
        return lambda model: NewRowsRule(
            model, self.rows, ids, cont.vocab_warmup, cont.new_rows_lr_scale
        )

    def start_fields(self, after: dict[str, float | None]) -> dict[str, Any]:
        """What the start record says of the extension: tokens added, initialisation, and each
        new domain's bytes per token before and after (the compression gained)."""
        return {
            "vocab_extension": {
                "added": len(self.extension.added),
                "first_id": self.extension.first_id,
                "rows": self.rows,
                "init": self.init,
                "warmup": self.warmup,
                "new_rows_lr_scale": self.lr_scale,
                "bytes_per_token_before": self.before,
                "bytes_per_token_after": after,
            }
        }


def check_extension_settings(config: RunConfig) -> None:
    """Refuse --extend-vocab settings that cannot work, before any data is read."""
    cont = config.continual
    if cont.vocab_init not in INITS:
        raise UserError(
            f"continual.vocab_init must be one of {', '.join(INITS)}, got '{cont.vocab_init}'"
        )
    if config.data.prepared:
        raise UserError(
            "--extend-vocab learns its tokens from raw text, and --prepared data is already "
            "tokenized with the old vocabulary; pass the new data with --data SOURCE..."
        )
    if config.model.adapter == "lora" and not config.model.lora_train_embeddings:
        raise UserError(
            "--extend-vocab with --adapter lora needs the new rows to train: add "
            "--model.lora_train_embeddings true"
        )
    if not 0 <= cont.vocab_warmup < 1:
        raise UserError(f"continual.vocab_warmup must be in [0, 1), got {cont.vocab_warmup}")
    if not cont.new_rows_lr_scale > 0:
        raise UserError(
            f"continual.new_rows_lr_scale must be positive, got {cont.new_rows_lr_scale}"
        )


def plan_vocabulary(
    config: RunConfig, parent_tokenizer: Path, old_rows: int, new: PreparedDataset, log: Log
) -> VocabularyPlan:
    """Learn up to continual.extend_vocab tokens from `new` (the new data, tokenized with the
    parent's tokenizer) and save the extended tokenizer in the data cache."""
    cont = config.continual
    old = Tokenizer.load(parent_tokenizer)
    extension = extend_vocabulary(old, _documents(new, old), cont.extend_vocab)
    if len(extension.added) < cont.extend_vocab:
        raise UserError(
            f"--extend-vocab {cont.extend_vocab:,} is more than the new data supports: it has "
            f"only {len(extension.added):,} pairs of tokens seen at least twice to merge; fix: "
            + (
                f"--extend-vocab {len(extension.added):,} or less, or more new data"
                if extension.added
                else "continue without --extend-vocab, or with more new data"
            )
        )
    folder = Path(config.data.cache_dir or default_cache_dir()) / "tokenizers"
    folder = folder / extension.tokenizer.fingerprint[:16]
    folder.mkdir(parents=True, exist_ok=True)
    extension.tokenizer.save(folder / TOKENIZER_FILE)
    rows = max(old_rows, extension.first_id + len(extension.added))
    before = train_bytes_per_token(new, old)
    log(
        f"vocabulary: {len(extension.added):,} new tokens learned from the new data, ids "
        f"{extension.first_id:,}-"
        f"{extension.first_id + len(extension.added) - 1:,}; embeddings and head grow from "
        f"{old_rows:,} to {rows:,} rows, new rows start as '{cont.vocab_init}'. Old text "
        "tokenizes as before except where a new token joins tokens of one word"
    )
    return VocabularyPlan(
        extension, folder / TOKENIZER_FILE, old_rows, rows, cont.vocab_init, before,
        cont.vocab_warmup, cont.new_rows_lr_scale,
    )  # fmt: skip


def train_bytes_per_token(dataset: PreparedDataset, tokenizer: Tokenizer) -> dict[str, float]:
    """Bytes per token of each domain's training text (its first LEARN_TOKENS tokens)."""
    return {
        d: bytes_per_token(tokenizer, np.asarray(dataset.tokens("train", d)[:LEARN_TOKENS])) or 0.0
        for d in dataset.domains
    }


def _documents(dataset: PreparedDataset, tokenizer: Tokenizer) -> Iterator[str]:
    """The text of the training documents of every domain (the first LEARN_TOKENS tokens of
    each), decoded from their tokens: the text the tokenizer saw, after cleaning."""
    for domain in dataset.domains:
        stream = np.asarray(dataset.tokens("train", domain)[:LEARN_TOKENS])
        ends = np.flatnonzero(stream == tokenizer.eos_id)
        start = 0
        for end in [*ends.tolist(), len(stream)]:
            ids = stream[start:end]
            start = end + 1
            if tokenizer.bos_id is not None and len(ids) and ids[0] == tokenizer.bos_id:
                ids = ids[1:]
            if len(ids):
                yield tokenizer.decode(ids)
