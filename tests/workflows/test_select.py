import json
import random
import shutil
import string

import numpy as np
import pytest

from budgetlm import api
from budgetlm.cli import main
from budgetlm.data.store.dataset import PreparedDataset
from budgetlm.data.store.shards import ShardWriter
from budgetlm.errors import UserError
from budgetlm.workflows.select import select_data
from tests.conftest import WORDS

QUIET = {"log": lambda _: None}
PROXY = {"proxy_budget": "30steps", "proxy_seq_len": 32, **QUIET}


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """A dataset whose 'clean' domain is word-salad prose and whose 'pool' is half such prose,
    half random characters (the junk)."""
    rng = random.Random(0)
    root = tmp_path_factory.mktemp("mixed")
    for name in ("clean", "pool"):
        (root / name).mkdir()
    for i in range(16):
        (root / "clean" / f"c{i}.txt").write_text(" ".join(rng.choices(WORDS, k=200)) + ".\n")
    for i in range(40):
        if i % 2:
            text = " ".join(rng.choices(WORDS, k=200)) + ".\n"
        else:
            text = "".join(rng.choices(string.ascii_letters + string.digits + "#%&", k=600))
        (root / "pool" / f"p{i}.txt").write_text(text)
    out = root / "prepared"
    api.prepare(
        [f"clean={root / 'clean'}", f"pool={root / 'pool'}"],
        out,
        vocab_size=300,
        val_fraction=0.2,
        **QUIET,
    )
    return out


def _junk_a_half_selection_must_keep(source):
    """Junk documents that keeping half the pool cannot avoid: the train/validation split
    (which depends on the documents' paths) may leave fewer clean documents than half."""
    junk = _is_junk(source, "pool")
    return max(0, round(0.5 * len(junk)) - int((~junk).sum()))


def _is_junk(dataset, domain):
    shard = dataset.shard("train", domain)
    texts = [dataset.tokenizer.decode(shard.document(i)[:-1]) for i in range(shard.num_documents)]
    return np.array([" the " not in f" {t} " and " cat " not in f" {t} " for t in texts])


@pytest.fixture(scope="module")
def loss_selection(mixed, tmp_path_factory):
    out = tmp_path_factory.mktemp("sel") / "loss"
    select_data(out, 0.5, prepared=mixed, target="clean", method="loss", **PROXY)
    return out


def test_loss_of_a_clean_reference_ranks_junk_below_clean_text(mixed, loss_selection):
    junk = _is_junk(PreparedDataset(mixed), "pool")
    assert 0 < junk.sum() < len(junk)
    scores = np.load(loss_selection / "scores" / "pool.npy")
    assert scores[~junk].max() < scores[junk].min()
    record = json.loads((loss_selection / "scores" / "scores.json").read_text())
    assert record["scoring"]["method"] == "loss"
    assert record["references"]["reference"]["run"].endswith("references/target")


def test_keep_fraction_keeps_that_count_of_the_filtered_domains(mixed, loss_selection):
    source, selected = PreparedDataset(mixed), PreparedDataset(loss_selection)
    n = source.shard("train", "pool").num_documents
    assert selected.shard("train", "pool").num_documents == round(0.5 * n)
    # about half the pool was junk: all of it went, as far as keeping half allows
    assert _is_junk(selected, "pool").sum() == _junk_a_half_selection_must_keep(source)
    clean = source.shard("train", "clean").num_documents
    assert selected.shard("train", "clean").num_documents == clean  # the target is kept whole
    assert selected.manifest["selection"]["filtered_domains"] == ["pool"]


def test_reselection_does_not_score_again(mixed, loss_selection, tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("scored again")

    monkeypatch.setattr("budgetlm.workflows.select.document_losses", fail)
    n = PreparedDataset(mixed).shard("train", "pool").num_documents
    select_data(tmp_path / "again", 0.25, scores=loss_selection, **QUIET)
    assert PreparedDataset(tmp_path / "again").shard("train", "pool").num_documents == round(
        0.25 * n
    )
    select_data(tmp_path / "again2", 1.0, scores=tmp_path / "again", **QUIET)  # scores travel
    copy = tmp_path / "inplace"
    shutil.copytree(loss_selection, copy)
    select_data(copy, 0.75, prepared=mixed, target="clean", method="loss", **PROXY)
    assert PreparedDataset(copy).shard("train", "pool").num_documents == round(0.75 * n)


def test_loss_diff_selects_and_the_selection_trains(mixed, tiny_config, tmp_path):
    out = tmp_path / "diff"
    record = select_data(out, 0.5, prepared=mixed, target="clean", **PROXY)
    assert record["method"] == "loss-diff" and set(record["references"]) == {
        "reference",
        "general",
    }
    kept_junk = _is_junk(PreparedDataset(out), "pool").sum()
    assert kept_junk == _junk_a_half_selection_must_keep(PreparedDataset(mixed))
    result = api.pretrain(tiny_config(**{"data.prepared": str(out)}), **QUIET)
    assert result.steps == 12 and np.isfinite(list(result.val_loss.values())).all()


def test_given_reference_runs_are_used_and_checked(mixed, loss_selection, tiny_prepared, tmp_path):
    reference = loss_selection / "references" / "target"
    out = tmp_path / "given"
    record = select_data(
        out, 0.5, prepared=mixed, target="clean", method="loss", reference=reference, **QUIET
    )
    assert record["references"]["reference"]["run"] == str(reference.resolve())
    assert not (out / "references").exists()  # nothing trained
    with pytest.raises(UserError, match="another tokenizer"):
        select_data(
            tmp_path / "x", 0.5, prepared=tiny_prepared, target="prose", reference=reference
        )


def test_bad_input(mixed, tmp_path):
    def select(**kwargs):
        values = {"prepared": mixed, "target": "clean", **PROXY, **kwargs}
        select_data(tmp_path / "bad", values.pop("keep", 0.5), **values)

    for keep in (0, 1.5, -1):
        with pytest.raises(UserError, match=r"\(0, 1\]"):
            select(keep=keep)
    with pytest.raises(UserError, match="did you mean 'clean'"):
        select(target="claen")
    with pytest.raises(UserError, match="unknown selection method"):
        select(method="perplexity")
    with pytest.raises(UserError, match="--general"):
        select(method="loss", general=tmp_path)
    with pytest.raises(UserError, match="--domains"):
        select(domains=["nope"])
    with pytest.raises(UserError, match="--scores"):
        select_data(tmp_path / "bad", 0.5, scores=tmp_path)
    assert not (tmp_path / "bad").exists()  # every check comes before any work


def test_a_target_without_validation_documents_is_refused(mixed, tmp_path):
    copy = tmp_path / "noval"
    shutil.copytree(mixed, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    entry = manifest["domains"]["clean"]["val"]
    ShardWriter(copy / entry["path"], np.dtype(manifest["dtype"])).close()
    entry.update(tokens=0, documents=0)
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="no validation documents"):
        select_data(tmp_path / "out", 0.5, prepared=copy, target="clean", **PROXY)


def test_cli_reports_bad_input_in_one_line(mixed, tmp_path, capsys):
    argv = ["select", "--prepared", str(mixed), "--target", "clean", "--out", str(tmp_path)]
    assert main([*argv, "--keep", "0"]) == 2
    assert "--keep 0.0 must be in (0, 1]" in capsys.readouterr().err
