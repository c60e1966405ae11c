import numpy as np
import pytest

from budgetlm.data.sampler import MixtureSampler, normalise_weights
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
