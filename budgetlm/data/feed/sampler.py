"""Mixture sampler: fixed-length training sequences drawn from several domains' token streams
by weight, one pass over each domain per epoch, with per-domain epoch limits, a weight
schedule over training (curricula), and a state that makes resumption exact."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from budgetlm.errors import UserError, closest


@dataclass
class MixtureStage:
    """One stage of a weight schedule: these weights until `until` (a fraction of training)."""

    until: float
    """End of the stage as a fraction of the run's steps, in (0, 1]; the last stage runs to 1."""
    weights: dict[str, float]
    """Mixture weight per domain during the stage (normalised to sum to one)."""


class DataExhausted(UserError):
    """Every domain with weight reached its epoch limit before the budget was spent."""


class MixtureSampler:
    """Yields [n, seq_len + 1] windows of EOS-packed token streams (inputs + shifted targets).

    Each domain is cut into non-overlapping windows, visited in a seeded random order once per
    epoch (with a new random offset each epoch, so window boundaries move). Domains are
    interleaved deterministically so that every prefix of the sample sequence (since the
    current schedule stage began) matches the weights as closely as possible. A domain that
    reaches its `max_epochs` leaves the mixture and the others share its weight. The state is
    the count served per domain and where the current stage began, so a resumed run sees
    exactly the sequences it would have seen; batches are global, so data-parallel ranks
    taking their rows of each (train/distributed.py) see the same sequences whatever their number.
    """

    def __init__(
        self,
        streams: Mapping[str, np.ndarray],
        seq_len: int,
        weights: Mapping[str, float] | None = None,
        seed: int = 0,
        max_epochs: Mapping[str, float] | None = None,
        schedule: Sequence[MixtureStage] | None = None,
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
        counts = {d: len(s) for d, s in self.streams.items()}
        self.weights = normalise_weights(weights, counts)
        self.stages = _check_schedule(schedule, counts)
        self.windows = {d: (len(self.streams[d]) - 1) // seq_len for d in self.domains}
        self.limits = _check_limits(max_epochs, self.windows)
        self.served = {d: 0 for d in self.domains}
        self.stage = 0
        self.stage_start = dict(self.served)
        self._orders: dict[tuple[str, int], tuple[int, np.ndarray]] = {}

    def next_batch(self, n: int, progress: float = 0.0) -> np.ndarray:
        """The next n sequences, int64, shape [n, seq_len + 1]; `progress` (the fraction of
        training done) selects the schedule stage."""
        self._enter_stage(progress)
        out = np.empty((n, self.seq_len + 1), dtype=np.int64)
        for i in range(n):
            d = self._next_domain()
            out[i] = self._window(d, self.served[d])
            self.served[d] += 1
        return out

    def current_weights(self) -> dict[str, float]:
        """The weights in force now: the stage's, shared out among domains not exhausted."""
        weights = self.stages[self.stage].weights if self.stages else self.weights
        active = {d: w for d, w in weights.items() if w > 0 and not self._exhausted(d)}
        total = sum(active.values())
        return {d: active.get(d, 0.0) / total if total else 0.0 for d in self.domains}

    def set_weights(self, weights: Mapping[str, float]) -> None:
        """Mix by these weights from now on (an online curriculum, e.g. Skill-it): the
        interleaving restarts from the current sample counts, as at a new schedule stage. The
        weights are part of the state, so a resumed run continues with them."""
        if self.stages:
            raise ValueError("set_weights on a sampler that follows a weight schedule")
        self.weights = normalise_weights(weights, {d: len(s) for d, s in self.streams.items()})
        self.stage_start = dict(self.served)

    def epochs(self) -> dict[str, float]:
        """Passes made over each domain so far (1.0 = every window seen once)."""
        return {d: self.served[d] / self.windows[d] for d in self.domains}

    def state_dict(self) -> dict:
        return {
            "served": dict(self.served),
            "seed": self.seed,
            "seq_len": self.seq_len,
            "stage": self.stage,
            "stage_start": dict(self.stage_start),
            "weights": dict(self.weights),
        }

    def load_state_dict(self, state: dict) -> None:
        if set(state["served"]) != set(self.domains) or state["seq_len"] != self.seq_len:
            raise UserError(
                "the checkpoint's data sampler was built for domains "
                f"{sorted(state['served'])} and seq_len {state['seq_len']}, but this run has "
                f"{self.domains} and {self.seq_len}; resume with the data the run started with"
            )
        self.served = {d: int(c) for d, c in state["served"].items()}
        self.seed = int(state["seed"])
        self.stage = int(state.get("stage", 0))
        self.stage_start = {d: int(c) for d, c in state.get("stage_start", {}).items()} or {
            d: 0 for d in self.domains
        }
        if "weights" in state:  # checkpoints written before set_weights existed lack them
            self.weights = {d: float(w) for d, w in state["weights"].items()}

    def _enter_stage(self, progress: float) -> None:
        if not self.stages:
            return
        stage = next((i for i, s in enumerate(self.stages) if progress < s.until), -1)
        stage = len(self.stages) - 1 if stage < 0 else stage
        if stage > self.stage:  # stages only advance (a replanned budget never rewinds one)
            self.stage, self.stage_start = stage, dict(self.served)

    def _exhausted(self, domain: str) -> bool:
        limit = self.limits.get(domain)
        return limit is not None and self.served[domain] >= limit

    def _next_domain(self) -> str:
        """The active domain furthest below its target share (since the stage began) after one
        more sample."""
        weights = self.current_weights()
        active = [d for d in self.domains if weights[d] > 0]
        if not active:
            raise DataExhausted(
                f"every domain reached its epoch limit (data.max_epochs) after "
                f"{sum(self.served.values()):,} sequences: raise the limits, add data, or use a "
                "smaller budget"
            )
        start = self.stage_start
        total = sum(self.served[d] - start[d] for d in self.domains) + 1
        return max(active, key=lambda d: weights[d] * total - (self.served[d] - start[d]))

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


def _check_limits(
    max_epochs: Mapping[str, float] | None, windows: Mapping[str, int]
) -> dict[str, int]:
    """Epoch limits as sequence counts per domain (UserError on unknown domains or values <= 0)."""
    limits = {}
    for d, epochs in (max_epochs or {}).items():
        if d not in windows:
            raise UserError(
                f"data.max_epochs names unknown domain '{d}'{closest(d, windows)}; domains in the "
                f"data: {', '.join(sorted(windows))}"
            )
        if not epochs > 0:
            raise UserError(f"data.max_epochs for '{d}' must be positive, got {epochs}")
        limits[d] = max(1, int(epochs * windows[d]))
    return limits


def _check_schedule(
    schedule: Sequence[MixtureStage] | None, token_counts: Mapping[str, int]
) -> list[MixtureStage]:
    """The stages with normalised weights, checked to end in increasing order at 1.0."""
    if not schedule:
        return []
    stages, previous = [], 0.0
    for i, stage in enumerate(schedule):
        if not previous < stage.until <= 1.0:
            raise UserError(
                f"data.schedule[{i}].until is {stage.until}: stages must end in increasing order "
                "within (0, 1], e.g. until 0.5 then until 1.0"
            )
        stages.append(MixtureStage(stage.until, normalise_weights(stage.weights, token_counts)))
        previous = stage.until
    if previous != 1.0:
        raise UserError(
            f"data.schedule ends at {previous}, not 1.0: the last stage must run to the end"
        )
    return stages


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
