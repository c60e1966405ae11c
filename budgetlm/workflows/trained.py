"""A finished (or running) run's trained model and tokenizer, for the commands that use them:
generate, export, and Python callers."""

from __future__ import annotations

from pathlib import Path

from budgetlm.data.store.tokenizer import TOKENIZER_FILE, Tokenizer
from budgetlm.errors import UserError
from budgetlm.model.build import build_model
from budgetlm.model.decoder import Decoder
from budgetlm.run.directory import load_run_config
from budgetlm.train.checkpoint import latest_checkpoint, load_weights


def load_model(run_dir: str | Path, device: str = "cpu") -> Decoder:
    """The trained model of a run (its newest valid checkpoint), in eval mode."""
    run_dir = Path(run_dir)
    config = load_run_config(run_dir, "--run")
    found = latest_checkpoint(run_dir)
    if found is None:
        raise UserError(f"run {run_dir} has no checkpoint yet; train it first")
    model = build_model(config.model.resolved())
    load_weights(found[0], model)
    return model.to(device).eval()


def load_tokenizer(run_dir: str | Path) -> Tokenizer:
    """The tokenizer a run was trained with."""
    return Tokenizer.load(Path(run_dir) / TOKENIZER_FILE)
