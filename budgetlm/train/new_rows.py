"""Training rules for the rows a vocabulary extension added (workflows/continual/vocab.py): an
embeddings-only warm-up, and a learning-rate multiplier for the new rows. The warm-up lets new
rows settle before the rest of the network adapts to them. A separate learning rate lets them
move faster than the pretrained rows. Both are common fixes for grown vocabularies; see Mundra
et al., 2024, "An Empirical Comparison of Vocabulary Expansion and Initialization Approaches
for Language Models". The Trainer calls them around each optimizer step."""

from __future__ import annotations

import torch
from torch import nn

from budgetlm.errors import UserError


class NewRowsRule:
    """Before each optimizer step in the first `warmup` share of the steps, drop the gradients
    of every trainable weight but the vocabulary's (the embedding and head: the weights with
    `rows` rows), so only those move; after each step, scale the update of the `new_ids` rows
    by `lr_scale` (for AdamW that is the same as scaling their learning rate). The vocabulary's
    weights are those of embeddings of `rows` entries and of the output head (a linear layer of
    `rows` outputs named lm_head, as in budgetlm's decoder and transformers' models)."""

    def __init__(
        self, model: nn.Module, rows: int, new_ids: list[int], warmup: float, lr_scale: float
    ) -> None:
        trainable = [p for p in model.parameters() if p.requires_grad]
        vocabulary = {
            id(p)
            for name, module in model.named_modules()
            if (isinstance(module, nn.Embedding) and module.num_embeddings == rows)
            or (
                isinstance(module, nn.Linear)
                and module.out_features == rows
                and "lm_head" in name.split(".")
            )
            for p in module.parameters(recurse=False)
        }
        self.vocabulary = [p for p in trainable if id(p) in vocabulary]
        self.others = [p for p in trainable if id(p) not in vocabulary]
        if not self.vocabulary:
            raise ValueError(f"no trainable weight has {rows} rows")
        if lr_scale != 1 and any(type(p).__name__ == "DTensor" for p in self.vocabulary):
            raise UserError(
                "continual.new_rows_lr_scale needs whole embedding rows, which train.parallel "
                "fsdp shards; use train.parallel ddp, or leave the scale at 1"
            )
        self.new_ids = torch.tensor(sorted(new_ids), dtype=torch.long)
        self.warmup, self.lr_scale = warmup, lr_scale
        self._before: list[torch.Tensor] = []

    def before_step(self, step: int, total_steps: int) -> None:
        """Called with the 0-based step about to be taken, after its gradients are summed."""
        if step < round(self.warmup * total_steps):
            for p in self.others:
                p.grad = None  # AdamW and Muon skip a weight without a gradient
        if self.lr_scale != 1:
            self._before = [p.detach()[self.new_ids].clone() for p in self.vocabulary]

    @torch.no_grad()
    def after_step(self) -> None:
        """Called right after the optimizer step."""
        if not self._before:
            return
        for p, before in zip(self.vocabulary, self._before, strict=True):
            p[self.new_ids] = before + self.lr_scale * (p[self.new_ids] - before)
        self._before = []
