"""What a continual run starts from: a budgetlm run, or a Hugging Face model folder (or hub id).

Both answer the same questions for `api.continue_pretraining`: the model's shape, its
tokenizer, its peak learning rate, which weights a recipe starts from, how to load them, the
data it was trained on (for replay) and its final losses (the reference for forgetting).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from budgetlm.config import RunConfig, load_config
from budgetlm.data.store.tokenizer import TOKENIZER_FILE
from budgetlm.errors import UserError
from budgetlm.model.config import HF_BACKEND, NATIVE_BACKEND, ModelConfig
from budgetlm.model.hf_backend import hf_backend_config, load_pretrained, read_architecture
from budgetlm.model.hf_import import (
    hf_model_config,
    is_hf_model_dir,
    load_hf_weights,
    read_hf_config,
    resolve_hf_source,
)
from budgetlm.run.directory import is_run_dir
from budgetlm.run.files import CONFIG_FILE
from budgetlm.run.records import final_val_loss
from budgetlm.train.checkpoint import (
    OPTIM_FILE,
    STATE_FILE,
    list_checkpoints,
    load_optimizer,
    load_weights,
)
from budgetlm.workflows.continual.recipes import Recipe

HF_DEFAULT_LR = 3e-4
"""Peak LR for continuing a Hugging Face model, whose pre-training LR is not recorded: the
usual peak of 100M-1B-parameter pre-training runs (Pythia, OLMo), which is what re-warming
targets in Ibrahim et al., "Simple and Scalable Strategies to Continually Pre-train LLMs"."""


StateTransform = Callable[[dict[str, Tensor], dict[str, Tensor]], dict[str, Tensor]]
"""Fits a parent's state dict to the model being trained (given its state dict)."""


@dataclass
class Parent:
    """The model a continual run trains further, and what is known about how it was made."""

    source: str
    """What the user passed to --from."""
    path: Path
    """The run directory or the Hugging Face model folder."""
    model: ModelConfig
    tokenizer: Path
    """tokenizer.json to tokenize the new data with (its folder may add tokenizer_config.json)."""
    lr: float | None
    """The parent's peak learning rate; None when unknown (Hugging Face models)."""
    config: RunConfig | None = None
    """The parent run's config; None for a Hugging Face model."""
    final_val_loss: dict[str, float] = field(default_factory=dict)
    """Held-out loss per domain of the parent's final model; {} when unknown."""
    final_val_bpb: dict[str, float] = field(default_factory=dict)
    """The same in bits per byte; {} when unknown (runs from before bits per byte)."""

    @property
    def is_run(self) -> bool:
        return self.config is not None

    def start_point(self, recipe: Recipe) -> str:
        """The name of the weights the recipe starts from: a checkpoint of the run ('final' or
        'pre_decay' tagged), or 'hf' for a Hugging Face model (which has only its final weights)."""
        if not self.is_run:
            if recipe.checkpoint == "pre_decay":
                raise UserError(
                    f"recipe '{recipe.name}' continues from a pre-decay checkpoint, which a "
                    "Hugging Face model does not have; use --recipe replay or --recipe rewarm"
                )
            return "hf"
        return _tagged_checkpoint(self.path, recipe).name

    def weight_loader(
        self, recipe: Recipe, transform: StateTransform | None = None
    ) -> Callable[[nn.Module], None]:
        """A function that loads the recipe's starting weights into the built model;
        `transform(state, target)` fits them to it first (a grown vocabulary)."""
        if not self.is_run and self.model.backend == HF_BACKEND:
            return lambda model: load_pretrained(model, self.path, transform)
        if not self.is_run:
            if transform is not None:
                raise UserError(
                    "--extend-vocab needs the transformers backend for a Hugging Face model; "
                    "drop --continual.backend native"
                )
            return lambda model: load_hf_weights(self.path, model)
        checkpoint = _tagged_checkpoint(self.path, recipe)
        return lambda model: load_weights(checkpoint, model, transform)

    def restore_optimizer(self, recipe: Recipe, optimizer: torch.optim.Optimizer) -> None:
        """Continue the optimizer's moments when the parent saved them (budgetlm runs); a
        Hugging Face model or an averaged run (`budgetlm average`) starts with fresh moments."""
        if self.is_run and (_tagged_checkpoint(self.path, recipe) / OPTIM_FILE).is_file():
            load_optimizer(_tagged_checkpoint(self.path, recipe), optimizer)


def open_parent(
    source: str,
    seq_len: int | None = None,
    backend: str = HF_BACKEND,
    trust_remote_code: bool = False,
) -> Parent:
    """The run directory or Hugging Face model named by --from (downloading a hub id only
    when `source` is one and no such folder exists). `seq_len` sets the training context of a
    Hugging Face model (a budgetlm run keeps its own); `backend` says whether it trains as
    transformers' model ('hf') or imported into the native decoder ('native')."""
    path = resolve_hf_source(source)
    if not path.is_dir():
        raise UserError(f"--from {source}: no such directory; pass a run or a model folder")
    if is_run_dir(path):
        config = load_config(path / CONFIG_FILE)
        return Parent(
            source=source,
            path=path,
            model=config.model,
            tokenizer=path / TOKENIZER_FILE,
            lr=config.train.lr,
            config=config,
            final_val_loss=final_val_loss(path) or {},
            final_val_bpb=final_val_loss(path, "val_bpb") or {},
        )
    if not is_hf_model_dir(path):
        raise UserError(
            f"--from {source}: not a budgetlm run directory (no config.yaml) nor a Hugging Face "
            "model folder (no config.json); pass a run made by `budgetlm pretrain` or a folder "
            "written by save_pretrained"
        )
    if backend == NATIVE_BACKEND:
        model = hf_model_config(read_hf_config(path), seq_len)
    elif backend == HF_BACKEND:
        model = hf_backend_config(
            read_architecture(path, trust_remote_code), str(path), seq_len, trust_remote_code
        )
    else:
        raise UserError(
            f"continual.backend must be '{HF_BACKEND}' or '{NATIVE_BACKEND}', got {backend!r}"
        )
    if not (path / TOKENIZER_FILE).is_file():
        raise UserError(
            f"--from {source}: the Hugging Face model has no {TOKENIZER_FILE} (a fast "
            "tokenizer), and the new data must be tokenized with the model's own vocabulary; "
            "fix: AutoTokenizer.from_pretrained(...).save_pretrained(folder) writes one"
        )
    return Parent(source=source, path=path, model=model, tokenizer=path / TOKENIZER_FILE, lr=None)


def _tagged_checkpoint(run_dir: Path, recipe: Recipe) -> Path:
    """The run's newest checkpoint tagged as the recipe's start ('final' or 'pre_decay')."""
    for path in reversed(list_checkpoints(run_dir)):
        tags = json.loads((path / STATE_FILE).read_text(encoding="utf-8")).get("tags", [])
        if recipe.checkpoint in tags:
            return path
    if recipe.checkpoint == "pre_decay":
        raise UserError(
            f"run {run_dir} has no pre-decay checkpoint, which recipe '{recipe.name}' continues "
            "from; use --recipe rewarm or --recipe replay (they start from the final model)"
        )
    raise UserError(f"run {run_dir} has no final checkpoint; finish it first (`--resume`)")
