"""Mixture sampler: fixed-length training sequences drawn from several domains' token streams
by weight, one pass over each domain per epoch, with a state that makes resumption exact."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from budgetlm.errors import UserError, closest


class MixtureSampler:
    """Yields [n, seq_len + 1] windows of EOS-packed token streams (inputs + shifted targets).

    Each domain is cut into non-overlapping windows, visited in a seeded random order once per
    epoch (with a new random offset each epoch, so window boundaries move). Domains are
    interleaved deterministically so that every prefix of the sample sequence matches the
    weights as closely as possible. The state is just the count served per domain, so a resumed
    run sees exactly the sequences it would have seen.
    """

    def __init__(
        self,
        streams: Mapping[str, np.ndarray],
        seq_len: int,
        weights: Mapping[str, float] | None = None,
        seed: int = 0,
    ) -> None:
        self.domains = sorted(streams)
        self.streams = dict(streams)
        self.seq_len = seq_len
        self.seed = seed
        for d in self.domains:
            if len(self.streams[d]) < seq_len + 1:
                raise UserError(
                    f"domain '{d}' has {len(self.streams[d])} training tokens, fewer than one "
                    f"sequence of {seq_len + 1}; add data to it or lower model.seq_len"
                )
        self.weights = normalise_weights(weights, {d: len(s) for d, s in self.streams.items()})
        self.windows = {d: (len(self.streams[d]) - 1) // seq_len for d in self.domains}
        self.served = {d: 0 for d in self.domains}
        self._orders: dict[tuple[str, int], tuple[int, np.ndarray]] = {}

    def next_batch(self, n: int) -> np.ndarray:
        """The next n sequences, int64, shape [n, seq_len + 1]."""
        out = np.empty((n, self.seq_len + 1), dtype=np.int64)
        for i in range(n):
            d = self._next_domain()
            out[i] = self._window(d, self.served[d])
            self.served[d] += 1
        return out

    def epochs(self) -> dict[str, float]:
        """Passes made over each domain so far (1.0 = every window seen once)."""
        return {d: self.served[d] / self.windows[d] for d in self.domains}

    def state_dict(self) -> dict:
        return {"served": dict(self.served), "seed": self.seed, "seq_len": self.seq_len}

    def load_state_dict(self, state: dict) -> None:
        if set(state["served"]) != set(self.domains) or state["seq_len"] != self.seq_len:
            raise UserError(
                "the checkpoint's data sampler was built for domains "
                f"{sorted(state['served'])} and seq_len {state['seq_len']}, but this run has "
                f"{self.domains} and {self.seq_len}; resume with the data the run started with"
            )
        self.served = {d: int(c) for d, c in state["served"].items()}
        self.seed = int(state["seed"])

    def _next_domain(self) -> str:
        """The domain furthest below its target share after one more sample."""
        total = sum(self.served.values()) + 1
        return max(self.domains, key=lambda d: self.weights[d] * total - self.served[d])

    def _window(self, domain: str, index: int) -> np.ndarray:
        epoch, k = divmod(index, self.windows[domain])
        offset, order = self._order(domain, epoch)
        start = offset + int(order[k]) * self.seq_len
        return self.streams[domain][start : start + self.seq_len + 1]

    def _order(self, domain: str, epoch: int) -> tuple[int, np.ndarray]:
        key = (domain, epoch)
        if key not in self._orders:
            self._orders = {k: v for k, v in self._orders.items() if k[0] != domain}
            rng = np.random.default_rng([self.seed, self.domains.index(domain), epoch])
            slack = len(self.streams[domain]) - 1 - self.windows[domain] * self.seq_len
            offset = int(rng.integers(0, slack + 1)) if epoch > 0 else 0
            self._orders[key] = (offset, rng.permutation(self.windows[domain]))
        return self._orders[key]


def normalise_weights(
    weights: Mapping[str, float] | None, token_counts: Mapping[str, int]
) -> dict[str, float]:
    """Mixture weights summing to one; default: each domain's share of tokens."""
    if weights is None:
        weights = dict(token_counts)
    for d in weights:
        if d not in token_counts:
            raise UserError(
                f"mixture weight for unknown domain '{d}'{closest(d, token_counts)}; "
                f"domains in the data: {', '.join(sorted(token_counts))}"
            )
    missing = [d for d in token_counts if d not in weights]
    if missing:
        raise UserError(
            f"mixture weights give no weight for domain(s) {', '.join(missing)}; "
            "give every domain a weight (0 to leave one out)"
        )
    if any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
        raise UserError(f"mixture weights must be non-negative with a positive sum, got {weights}")
    total = float(sum(weights.values()))
    return {d: float(weights[d]) / total for d in sorted(token_counts)}
