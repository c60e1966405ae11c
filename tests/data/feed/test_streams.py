import pytest

from budgetlm.api import prepare
from budgetlm.data.feed.streams import with_replay
from budgetlm.data.store.dataset import PreparedDataset
from budgetlm.errors import UserError


@pytest.fixture(scope="module")
def old_dataset(tiny_prepared, tmp_path_factory):
    """One more domain, tokenized with tiny_prepared's tokenizer, to replay."""
    root = tmp_path_factory.mktemp("old")
    (root / "notes").mkdir()
    for i in range(6):
        (root / "notes" / f"n{i}.txt").write_text(f"note {i}: the cat sat on the mat. " * 40)
    out = root / "prepared"
    prepare(
        [f"notes={root / 'notes'}"],
        out,
        val_fraction=0.2,
        tokenizer=tiny_prepared / "tokenizer.json",
        log=lambda _: None,
    )
    return PreparedDataset(out)


def test_new_weights_split_the_new_share(tiny_prepared, old_dataset):
    new = PreparedDataset(tiny_prepared)
    data = with_replay(new, old_dataset, 0.25, {"code": 0.2, "prose": 0.8})
    assert data.weights == pytest.approx({"code": 0.15, "prose": 0.6, "notes": 0.25})


def test_default_split_is_by_token_share(tiny_prepared, old_dataset):
    new = PreparedDataset(tiny_prepared)
    counts = new.token_counts("train")
    data = with_replay(new, old_dataset, 0.5)
    total = sum(counts.values())
    assert data.weights["code"] == pytest.approx(0.5 * counts["code"] / total)


def test_new_weights_without_replay(tiny_prepared):
    data = with_replay(PreparedDataset(tiny_prepared), None, 0.0, {"code": 1.0, "prose": 3.0})
    assert data.weights == {"code": 0.25, "prose": 0.75}


def test_new_weights_for_an_unknown_domain(tiny_prepared):
    with pytest.raises(UserError, match="unknown domain 'web'"):
        with_replay(PreparedDataset(tiny_prepared), None, 0.0, {"web": 1.0, "code": 0.0})
