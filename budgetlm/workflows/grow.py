"""The starting weights of a pre-training run grown from a smaller trained run: its final model's
blocks stacked depthwise (G_stack, Du et al., "Stacking Your Transformers: A Closer Look at Model
Growth for Efficient LLM Pre-Training", 2024; model/growth.py). The optimizer and the schedule
start fresh, as in that paper."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from budgetlm.config import RunConfig
from budgetlm.data.store.tokenizer import TOKENIZER_FILE
from budgetlm.errors import UserError
from budgetlm.model.config import NATIVE_BACKEND, ModelConfig
from budgetlm.model.decoder import Decoder
from budgetlm.model.growth import growth_factor, stack_layers
from budgetlm.run.directory import load_run_config
from budgetlm.run.records import finished_record
from budgetlm.train.averaging import final_checkpoint
from budgetlm.train.checkpoint import load_weights


@dataclass
class GrowthSource:
    """The trained smaller run a model grows from, and the deeper shape it grows into."""

    path: Path
    config: RunConfig
    checkpoint: Path
    target: ModelConfig
    """The grown model's resolved shape (the small run's vocabulary)."""
    factor: int
    tokens: int | None
    """Tokens the small run trained on (None when it recorded no end, e.g. an averaged run)."""
    flops: float | None

    @property
    def tokenizer(self) -> Path:
        """The small run's tokenizer: the grown run's data must be tokenized with it."""
        return self.path / TOKENIZER_FILE

    def init(self, model: Decoder, optimizer: torch.optim.Optimizer) -> None:
        """Load the stacked weights into the freshly built deeper model (optimizer untouched)."""
        small = Decoder(self.config.model)
        load_weights(self.checkpoint, small)
        model.load_state_dict(stack_layers(small.state_dict(), small.config, model.config))

    def start_fields(self) -> dict[str, Any]:
        """What the grown run's start record says about where it grew from."""
        return {
            "grown_from": str(self.path.resolve()),
            "grown_from_checkpoint": self.checkpoint.name,
            "growth_factor": self.factor,
            "grown_from_layers": self.config.model.n_layers,
            "grown_from_tokens": self.tokens,
            "grown_from_flops": self.flops,
        }


def open_growth_source(run: str | Path, target: ModelConfig) -> GrowthSource:
    """The finished run `run` (growth.from_run) checked to stack into `target`: same widths,
    a multiple (2x or more) of its depth. Fails before any data or model work."""
    path = Path(run)
    config = load_run_config(path, "--grow-from")
    if config.model.backend != NATIVE_BACKEND:
        raise UserError(
            f"--grow-from {run}: growth stacks budgetlm's native decoder blocks; {run} trained a "
            f"{config.model.size} model with transformers"
        )
    checkpoint, _ = final_checkpoint(path)
    small = config.model.resolved()
    resolved = target.resolved(vocab_size=small.vocab_size)
    try:
        factor = growth_factor(small, resolved)
    except UserError as e:
        raise UserError(f"--grow-from {run}: {e}") from None
    end = finished_record(path)
    return GrowthSource(
        path=path,
        config=config,
        checkpoint=checkpoint,
        target=resolved,
        factor=factor,
        tokens=end["tokens"] if end else None,
        flops=end["flops"] if end else None,
    )
