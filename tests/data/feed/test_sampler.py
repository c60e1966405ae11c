import numpy as np
import pytest

from budgetlm.data.feed.sampler import MixtureSampler, normalise_weights
from budgetlm.errors import UserError


def streams():
    return {"a": np.arange(0, 1001, dtype=np.uint16), "b": np.arange(2000, 2301, dtype=np.uint16)}


def test_windows_are_contiguous_and_shifted_targets():
    s = MixtureSampler(streams(), seq_len=10, seed=0)
    batch = s.next_batch(8)
    assert batch.shape == (8, 11) and batch.dtype == np.int64
    assert (np.diff(batch, axis=1) == 1).all()  # consecutive slices of the arange streams


def test_one_epoch_visits_every_window_once():
    s = MixtureSampler({"a": np.arange(101)}, seq_len=10, seed=3)
    starts = sorted(int(row[0]) for row in s.next_batch(10))
    assert starts == list(range(0, 100, 10))
    assert s.epochs() == {"a": 1.0}


def test_mixture_follows_weights_exactly_on_every_prefix():
    s = MixtureSampler(streams(), seq_len=10, weights={"a": 3, "b": 1}, seed=0)
    batch = s.next_batch(40)
    from_a = (batch[:, 0] < 2000).cumsum()
    n = np.arange(1, 41)
    assert np.all(np.abs(from_a - 0.75 * n) <= 1)
    assert s.served == {"a": 30, "b": 10}


def test_default_weights_are_token_shares():
    w = normalise_weights(None, {"a": 300, "b": 100})
    assert w == {"a": 0.75, "b": 0.25}


def test_resume_gives_the_same_sequences():
    full = MixtureSampler(streams(), seq_len=10, seed=7)
    expected = full.next_batch(200)  # several epochs of "b"
    first = MixtureSampler(streams(), seq_len=10, seed=7)
    part = first.next_batch(77)
    second = MixtureSampler(streams(), seq_len=10, seed=7)
    second.load_state_dict(first.state_dict())
    assert np.array_equal(np.concatenate([part, second.next_batch(123)]), expected)


def test_epochs_reshuffle_and_shift_boundaries():
    s = MixtureSampler({"a": np.arange(105)}, seq_len=10, seed=1)
    e0 = s.next_batch(10)[:, 0]
    e1 = s.next_batch(10)[:, 0]
    assert sorted(e0) != sorted(e1) or not np.array_equal(e0, e1)


def test_errors():
    with pytest.raises(UserError, match="did you mean 'a'"):
        MixtureSampler(streams(), seq_len=10, weights={"aa": 1, "b": 1})
    with pytest.raises(UserError, match="no weight for domain"):
        MixtureSampler(streams(), seq_len=10, weights={"a": 1})
    with pytest.raises(UserError, match="fewer than one sequence"):
        MixtureSampler({"a": np.arange(5)}, seq_len=10)
    s = MixtureSampler(streams(), seq_len=10)
    with pytest.raises(UserError, match="resume with the data"):
        s.load_state_dict({"served": {"a": 1}, "seed": 0, "seq_len": 10})


def domain_of(batch):
    return ["a" if row[0] < 2000 else "b" for row in batch]


def test_epoch_limit_takes_a_domain_out_and_shares_its_weight():
    # b has 30 windows; at weight 1/2 it would be served 60 times in 120 draws
    s = MixtureSampler(streams(), seq_len=10, weights={"a": 1, "b": 1}, max_epochs={"b": 1})
    drawn = domain_of(s.next_batch(120))
    assert drawn.count("b") == 30  # exactly one pass over b, never repeated
    assert drawn[60:] == ["a"] * 60  # after b is spent, a takes the whole mixture
    assert s.epochs()["b"] == 1.0
    assert s.current_weights() == {"a": 1.0, "b": 0.0}


def test_all_domains_exhausted_is_a_clear_error():
    s = MixtureSampler(streams(), seq_len=10, max_epochs={"a": 0.5, "b": 0.5})
    s.next_batch(65)  # 50 + 15 windows
    with pytest.raises(UserError, match=r"every domain reached its epoch limit .* after 65"):
        s.next_batch(1)


def test_schedule_switches_weights_at_stage_boundaries():
    from budgetlm.data.feed.sampler import MixtureStage

    stages = [MixtureStage(0.5, {"a": 1, "b": 0}), MixtureStage(1.0, {"a": 1, "b": 3})]
    s = MixtureSampler(streams(), seq_len=10, schedule=stages)
    first = domain_of(s.next_batch(20, progress=0.0)) + domain_of(s.next_batch(20, progress=0.4))
    assert first == ["a"] * 40
    second = domain_of(s.next_batch(40, progress=0.5))
    assert second.count("b") == 30  # 3/4 of the stage, counted from the stage's start
    assert s.current_weights() == {"a": 0.25, "b": 0.75}


def test_resume_mid_schedule_and_after_exhaustion_is_exact():
    from budgetlm.data.feed.sampler import MixtureStage

    def make():
        stages = [MixtureStage(0.3, {"a": 1, "b": 1}), MixtureStage(1.0, {"a": 1, "b": 2})]
        return MixtureSampler(streams(), 10, seed=5, max_epochs={"b": 1.5}, schedule=stages)

    straight = make()
    expected = [straight.next_batch(7, progress=i / 20) for i in range(20)]
    first = make()
    got = [first.next_batch(7, progress=i / 20) for i in range(9)]
    resumed = make()
    resumed.load_state_dict(first.state_dict())
    got += [resumed.next_batch(7, progress=i / 20) for i in range(9, 20)]
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a, b)


def test_limit_and_schedule_errors():
    from budgetlm.data.feed.sampler import MixtureStage

    with pytest.raises(UserError, match=r"max_epochs names unknown domain 'c'"):
        MixtureSampler(streams(), 10, max_epochs={"c": 1})
    with pytest.raises(UserError, match=r"max_epochs for 'a' must be positive"):
        MixtureSampler(streams(), 10, max_epochs={"a": 0})
    with pytest.raises(UserError, match=r"schedule\[1\].until is 0.2: stages must end"):
        MixtureSampler(
            streams(), 10, schedule=[MixtureStage(0.5, {"a": 1, "b": 1}), MixtureStage(0.2, {})]
        )
    with pytest.raises(UserError, match=r"schedule ends at 0.5, not 1.0"):
        MixtureSampler(streams(), 10, schedule=[MixtureStage(0.5, {"a": 1, "b": 1})])
    with pytest.raises(UserError, match=r"no weight for domain\(s\) b"):
        MixtureSampler(streams(), 10, schedule=[MixtureStage(1.0, {"a": 1})])


def test_set_weights_mixes_by_the_new_weights_from_then_on():
    s = MixtureSampler(streams(), seq_len=10, weights={"a": 1, "b": 1}, seed=0)
    s.next_batch(10)
    assert s.served == {"a": 5, "b": 5}
    s.set_weights({"a": 3, "b": 1})
    assert s.weights == {"a": 0.75, "b": 0.25} and s.current_weights() == s.weights
    batch = s.next_batch(20)
    from_a = (batch[:, 0] < 2000).cumsum()
    n = np.arange(1, 21)
    assert np.all(np.abs(from_a - 0.75 * n) <= 1)  # every prefix since the change follows 3:1
    assert s.served == {"a": 20, "b": 10}
    with pytest.raises(UserError, match="unknown domain 'c'"):
        s.set_weights({"a": 1, "b": 1, "c": 1})


def test_weights_set_online_are_restored_on_resume():
    def run(sampler, start, stop):
        batches = []
        for i in range(start, stop):
            if i == 5:
                sampler.set_weights({"a": 1, "b": 4})
            batches.append(sampler.next_batch(6))
        return batches

    expected = run(MixtureSampler(streams(), 10, seed=2), 0, 12)
    first = MixtureSampler(streams(), 10, seed=2)
    got = run(first, 0, 8)
    resumed = MixtureSampler(streams(), 10, seed=2)
    resumed.load_state_dict(first.state_dict())
    assert resumed.weights == {"a": 0.2, "b": 0.8}
    got += run(resumed, 8, 12)
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a, b)


def test_set_weights_refuses_a_scheduled_sampler():
    from budgetlm.data.feed.sampler import MixtureStage

    s = MixtureSampler(streams(), 10, schedule=[MixtureStage(1.0, {"a": 1, "b": 1})])
    with pytest.raises(ValueError, match="weight schedule"):
        s.set_weights({"a": 1, "b": 1})
