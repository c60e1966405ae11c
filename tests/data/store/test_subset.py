import numpy as np
import pytest

from budgetlm.data.store.shards import ShardWriter, TokenShard
from budgetlm.data.store.subset import lowest_scoring, subset_stream
from budgetlm.errors import UserError


def test_lowest_scoring_keeps_the_best_fraction_in_document_order():
    scores = np.array([0.5, np.nan, 0.1, 0.9, 0.3])
    assert list(lowest_scoring(scores, 0.5)) == [2, 4]  # 2 of the 4 finite scores
    assert list(lowest_scoring(scores, 1.0)) == [0, 2, 3, 4]
    with pytest.raises(UserError):
        lowest_scoring(scores, 0)


def test_subset_stream_concatenates_documents_with_eos(tmp_path):
    writer = ShardWriter(tmp_path / "s", np.dtype("<u2"))
    for doc in ([1, 2], [3], [4, 5, 6]):
        writer.add_document(doc, eos_id=0)
    writer.close()
    shard = TokenShard(tmp_path / "s", np.dtype("<u2"))
    assert list(subset_stream(shard, np.array([0, 2]))) == [1, 2, 0, 4, 5, 6, 0]
