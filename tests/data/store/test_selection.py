import json

import numpy as np
import pytest

from budgetlm.data.store.dataset import PreparedDataset
from budgetlm.data.store.selection import (
    check_output,
    choose_documents,
    load_scores,
    save_scores,
    write_selection,
)
from budgetlm.data.store.shards import shard_files
from budgetlm.errors import UserError


def test_choose_keeps_the_lowest_share_of_filtered_domains_only():
    scores = {"a": np.array([3.0, 1.0, 2.0, 0.5, np.nan]), "b": np.array([1.0, 2.0])}
    chosen = choose_documents(scores, 0.5, ["a"])
    assert list(chosen["a"]) == [1, 3]  # 2 of the 4 finite scores, in document order
    assert chosen["b"] is None
    for keep in (0, -0.1, 1.01):
        with pytest.raises(UserError, match="keep"):
            choose_documents(scores, keep, ["a"])


def test_scores_round_trip(tmp_path):
    values = {"a": np.array([0.5, np.nan, 2.0])}
    save_scores(tmp_path, {"method": "loss"}, values)
    record, loaded = load_scores(tmp_path)
    assert record == {"method": "loss", "domains": {"a": 3}}
    assert np.array_equal(loaded["a"], values["a"], equal_nan=True)
    assert load_scores(tmp_path / "elsewhere") is None


def test_written_selection_is_a_complete_dataset_with_val_unchanged(tiny_prepared, tmp_path):
    source = PreparedDataset(tiny_prepared)
    n = source.shard("train", "prose").num_documents
    out = tmp_path / "sel"
    write_selection(source, {"prose": np.array([0, 2]), "code": None}, out, {"x": 1}, print)
    selected = PreparedDataset(out)
    selected.verify()  # hashes in the manifest match the written shards
    prose = selected.shard("train", "prose")
    assert prose.num_documents == 2
    assert np.array_equal(prose.document(1), source.shard("train", "prose").document(2))
    assert selected.manifest["selection"]["kept"]["prose"]["documents"] == [2, n]
    assert np.array_equal(selected.tokens("train", "code"), source.tokens("train", "code"))
    for domain in source.domains:
        for a, b in zip(
            shard_files(source.shard("val", domain).prefix),
            shard_files(selected.shard("val", domain).prefix),
            strict=True,
        ):
            assert a.read_bytes() == b.read_bytes()


def test_rewriting_in_place_marks_the_old_selection_incomplete_first(tiny_prepared, tmp_path):
    source = PreparedDataset(tiny_prepared)
    out = tmp_path / "sel"
    write_selection(source, {"prose": np.array([0])}, out, {}, print)
    seen = []

    def log(message):  # called after each domain is written: the manifest must be incomplete
        seen.append(json.loads((out / "manifest.json").read_text())["complete"])

    write_selection(source, {"prose": np.array([1, 2])}, out, {}, log)
    assert seen and not any(seen)
    assert PreparedDataset(out).shard("train", "prose").num_documents == 2


def test_output_must_be_new_or_an_earlier_selection(tiny_prepared, tmp_path):
    check_output(tmp_path / "new", tiny_prepared)
    with pytest.raises(UserError, match="being selected from"):
        check_output(tiny_prepared, tiny_prepared)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="holds no selection"):
        check_output(tmp_path / "other", tiny_prepared)
