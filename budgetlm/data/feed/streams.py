"""The token streams a run trains and evaluates on, assembled from one prepared dataset or from
new data plus replay of older data."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from budgetlm.data.feed.sampler import normalise_weights
from budgetlm.data.store.dataset import PreparedDataset
from budgetlm.errors import UserError


@dataclass
class TrainingData:
    """Train/validation streams per domain, their mixture weights, and where they came from."""

    train: dict[str, np.ndarray]
    val: dict[str, np.ndarray]
    weights: dict[str, float] | None
    datasets: dict[str, str]
    """Prepared dataset directory of each domain."""
    unigram_entropy: dict[str, float]
    new_domains: list[str] = field(default_factory=list)
    old_domains: list[str] = field(default_factory=list)

    @property
    def domains(self) -> list[str]:
        return list(self.train)


def from_dataset(dataset: PreparedDataset, weights: dict[str, float] | None) -> TrainingData:
    """All domains of one prepared dataset."""
    return TrainingData(
        train={d: dataset.tokens("train", d) for d in dataset.domains},
        val={d: dataset.tokens("val", d) for d in dataset.domains},
        weights=weights,
        datasets={d: str(dataset.path) for d in dataset.domains},
        unigram_entropy={d: v["unigram_entropy"] for d, v in dataset.manifest["domains"].items()},
        new_domains=list(dataset.domains),
    )


def with_replay(
    new: PreparedDataset,
    old: PreparedDataset | None,
    ratio: float,
    new_weights: dict[str, float] | None = None,
) -> TrainingData:
    """New-domain data mixed with a `ratio` share of replayed old-domain data (the new side split
    by `new_weights`, default by token share; the old side by token share); old domains are
    always evaluated, to measure forgetting ("Simple and Scalable Strategies to Continually
    Pre-train Large Language Models", Ibrahim et al., 2024)."""
    if not 0 <= ratio < 1:
        raise UserError(f"replay ratio {ratio} must be in [0, 1); e.g. --replay-ratio 0.25")
    new_tokens = new.token_counts("train")
    shares = normalise_weights(new_weights, new_tokens)
    data = from_dataset(new, shares if new_weights is not None else None)
    if old is None:
        return data
    clash = sorted(set(new.domains) & set(old.domains))
    if clash:
        raise UserError(
            f"domain(s) {', '.join(clash)} are in both the new data and the replayed data; name "
            f"the new source differently, e.g. --data new_{clash[0]}=PATH"
        )
    weights = {d: (1 - ratio) * shares[d] for d in new_tokens}
    old_tokens = old.token_counts("train")
    for d in old.domains:
        data.val[d] = old.tokens("val", d)
        data.datasets[d] = str(old.path)
        data.unigram_entropy[d] = old.manifest["domains"][d]["unigram_entropy"]
        if ratio > 0:
            data.train[d] = old.tokens("train", d)
            weights[d] = ratio * old_tokens[d] / sum(old_tokens.values())
    data.weights = weights
    data.old_domains = list(old.domains)
    return data
