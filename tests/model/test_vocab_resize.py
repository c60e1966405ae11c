"""Growing embedding rows for new tokens: old rows kept, new rows by mean, FOCUS or noise."""

import numpy as np
import pytest
import torch

from budgetlm.model.vocab_resize import _sparsemax, focus_weights, grow_rows, grown_state


def test_grow_rows_keeps_old_rows_and_initialises_the_added_ones():
    old = torch.randn(10, 4)
    added = {8: [1, 2], 10: [3, 4, 5], 11: [0, 0]}  # id 8 reuses a padding row
    mean = grow_rows(old, 12, added, "mean")
    assert mean.shape == (12, 4)
    torch.testing.assert_close(mean[:8], old[:8])
    torch.testing.assert_close(mean[9], old[9])
    torch.testing.assert_close(mean[8], old[[1, 2]].mean(0))
    torch.testing.assert_close(mean[10], old[[3, 4, 5]].mean(0))
    noise = grow_rows(torch.randn(1000, 8) * 3, 1100, {1000 + i: [i] for i in range(100)}, "random")
    assert 2.5 < noise[1000:].std() < 3.5  # at the scale of the old rows
    weights = {10: ([6, 7], [0.25, 0.75])}
    focus = grow_rows(old, 12, added, "focus", weights)
    torch.testing.assert_close(focus[10], 0.25 * old[6] + 0.75 * old[7])
    torch.testing.assert_close(focus[8], old[[1, 2]].mean(0))  # no weights: the mean
    bias = grow_rows(torch.arange(10.0), 12, added, "mean")
    assert bias[10] == pytest.approx(4.0)


def test_grown_state_grows_only_tensors_of_the_vocabulary():
    state = {"emb": torch.zeros(10, 4), "head": torch.ones(10, 4), "norm": torch.ones(10)}
    target = {"emb": torch.empty(12, 4), "head": torch.empty(12, 4), "norm": torch.empty(10)}
    out = grown_state(state, target, 10, lambda t, rows: torch.cat([t, t[:2]]))
    assert out["emb"].shape == (12, 4) and out["head"].shape == (12, 4)
    assert out["norm"] is state["norm"]


def test_sparsemax_projects_onto_the_simplex_with_zeros():
    w = _sparsemax(torch.tensor([3.0, 1.0, 0.2, -1.0]))
    assert w.sum() == pytest.approx(1.0) and (w >= 0).all()
    assert w[0] == pytest.approx(1.0) and (w[1:] == 0).all()
    flat = _sparsemax(torch.tensor([0.5, 0.5]))
    torch.testing.assert_close(flat, torch.tensor([0.5, 0.5]))


def test_focus_weights_favour_tokens_used_in_the_same_contexts():
    rng = np.random.default_rng(0)
    # token 20 (new) and token 3 (old) occur in the same contexts; token 5 elsewhere
    a = np.stack([rng.integers(6, 10, 4000), np.full(4000, 3), rng.integers(6, 10, 4000)], 1)
    b = np.stack([rng.integers(6, 10, 4000), np.full(4000, 20), rng.integers(6, 10, 4000)], 1)
    c = np.stack([rng.integers(10, 14, 4000), np.full(4000, 5), rng.integers(10, 14, 4000)], 1)
    stream = np.concatenate([a, b, c]).ravel()
    rng.shuffle(stream.reshape(-1, 3))
    weights = focus_weights([stream], {20: [5]}, old_rows=20, dim=8, window=1)
    ids, w = weights[20]
    assert sum(w) == pytest.approx(1.0) and all(x > 0 for x in w)
    assert dict(zip(ids, w, strict=True)).get(3, 0) > dict(zip(ids, w, strict=True)).get(5, 0)
