"""The race and ablation benchmarks' own logic: the nanoGPT schedule, when a curve first
reaches a loss, the ablation verdict, and a baseline trained for a moment on the CPU."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import ablate  # noqa: E402
import race  # noqa: E402


def test_nanogpt_schedule_warms_up_linearly_then_decays_to_a_tenth() -> None:
    steps, lr = 1000, 1e-3  # warm-up is 2% of the steps: 20
    assert race.nanogpt_lr(0, steps, lr) == pytest.approx(lr / 20)
    assert race.nanogpt_lr(19, steps, lr) == pytest.approx(lr)
    assert race.nanogpt_lr(20, steps, lr) == pytest.approx(lr)
    assert race.nanogpt_lr(steps, steps, lr) == pytest.approx(lr / 10)
    decay = [race.nanogpt_lr(i, steps, lr) for i in range(20, steps + 1)]
    assert all(a >= b for a, b in zip(decay, decay[1:], strict=False))


def test_first_reach_is_the_first_eval_at_or_below_the_target() -> None:
    curve = [(1.0, 100, 5.0), (2.0, 200, 4.0), (3.0, 300, 3.5), (4.0, 400, 3.9)]
    assert race.first_reach(curve, 4.0) == (2.0, 200)
    assert race.first_reach(curve, 3.6) == (3.0, 300)
    assert race.first_reach(curve, 3.0) is None


def row(losses: list[float]) -> dict:
    runs = [{"loss": x, "bpb": x / 2, "tokens": 1000, "steps_s": 10.0} for x in losses]
    return ablate.summarise(runs)


def test_a_candidate_wins_only_beyond_the_standard_error_of_the_difference() -> None:
    base = row([4.00, 4.10, 4.05])
    assert base["loss"] == pytest.approx(4.05) and base["tokens_per_s"] == 100
    assert ablate.verdict(row([3.80, 3.85, 3.90]), base) == "wins"
    assert ablate.verdict(row([4.30, 4.35, 4.40]), base) == "loses"
    assert ablate.verdict(row([4.00, 4.12, 4.02]), base) == "tie"
    assert ablate.verdict(row([3.0]), row([4.0])) == "tie (1 seed)"
    assert math.isnan(row([3.0])["std"])


def test_every_candidate_is_a_flag_the_cli_accepts() -> None:
    from budgetlm.config import load_config, parse_override

    for flags in ablate.CANDIDATES.values():
        pairs = [f"{flags[i].removeprefix('--')}={flags[i + 1]}" for i in range(0, len(flags), 2)]
        load_config(None, [parse_override(x) for x in pairs])  # raises on a bad key or value


def test_the_nanogpt_baseline_trains_on_the_cpu_and_is_scored(tiny_prepared) -> None:
    pytest.importorskip("transformers")
    from budgetlm.config import load_config
    from budgetlm.data.feed.streams import from_dataset
    from budgetlm.data.store.dataset import PreparedDataset
    from tests.conftest import TINY_MODEL

    values = {**TINY_MODEL, "train.batch_size": 4, "train.precision": "fp32",
              "train.device": "cpu", "eval.tokens_per_domain": 64}  # fmt: skip
    config = load_config(None, list(values.items()))
    dataset = PreparedDataset(tiny_prepared)
    config.model = config.model.resolved(dataset.tokenizer.vocab_size)
    data = from_dataset(dataset, config.data.weights)
    assert race.device_for(config).type == "cpu"
    result = race.run_nanogpt(config, data, 3e-3, seed=0, seconds=2.0)
    assert result["steps"] >= 10 and result["tokens"] == result["steps"] * 4 * 32
    scored = race.score(config, data, result, {d: 4.0 for d in data.val})
    assert math.isfinite(scored["loss"]) and scored["bpb"] == pytest.approx(
        scored["loss"] / math.log(2) / 4.0, rel=1e-6
    )
