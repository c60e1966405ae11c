"""PreparedDataset: reading a prepared directory back and refusing broken ones."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from budgetlm.data.prepare.build import prepare_dataset
from budgetlm.data.store.dataset import PreparedDataset
from budgetlm.errors import UserError


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("dataset")
    for domain, template in (("code", "x{i} = {i} * 2\n"), ("prose", "Day {i} was sunny.\n")):
        (root / domain).mkdir()
        for i in range(8):
            (root / domain / f"{i}.txt").write_text(template.format(i=i), encoding="utf-8")
    prepare_dataset([str(root / "code"), str(root / "prose")], root / "out", vocab_size=300)
    return root / "out"


@pytest.fixture
def copy(prepared: Path, tmp_path: Path) -> Path:
    """A private copy a test may damage."""
    return Path(shutil.copytree(prepared, tmp_path / "ds"))


def test_open_and_read(prepared: Path) -> None:
    ds = PreparedDataset(prepared)
    manifest = json.loads((prepared / "manifest.json").read_text())
    assert ds.manifest == manifest and ds.path == prepared
    assert ds.domains == ["code", "prose"]
    assert ds.dtype == np.uint16
    assert ds.tokenizer.vocab_size == manifest["tokenizer"]["vocab_size"]
    for split in ("train", "val"):
        counts = ds.token_counts(split)
        assert counts == {d: manifest["domains"][d][split]["tokens"] for d in ds.domains}
        for domain in ds.domains:
            tokens = ds.tokens(split, domain)
            assert len(tokens) == counts[domain] and tokens[-1] == ds.tokenizer.eos_id
            assert (
                ds.shard(split, domain).num_documents
                == manifest["domains"][domain][split]["documents"]
            )
    first = ds.shard("train", "prose").document(0)
    assert ds.tokenizer.decode(first[:-1]).startswith("Day ")
    ds.verify()


def test_unknown_split_and_domain(prepared: Path) -> None:
    ds = PreparedDataset(prepared)
    with pytest.raises(UserError, match=r"unknown split 'vall' \(did you mean 'val'\?\)"):
        ds.shard("vall", "code")
    with pytest.raises(UserError, match=r"no domain 'cod' \(did you mean 'code'\?\).*code, prose"):
        ds.tokens("train", "cod")


def test_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"'.*missing' does not exist.*budgetlm prepare"):
        PreparedDataset(tmp_path / "missing")
    with pytest.raises(
        UserError, match=r"is not a prepared dataset \(no manifest\.json\).*prepare"
    ):
        PreparedDataset(tmp_path)


def test_bad_manifest(copy: Path) -> None:
    manifest_path = copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "format": 99}))
    with pytest.raises(UserError, match="has format 99"):
        PreparedDataset(copy)
    manifest_path.write_text("{not json")
    with pytest.raises(UserError, match=r"manifest\.json' is not valid JSON"):
        PreparedDataset(copy)


def test_missing_shard(copy: Path) -> None:
    (copy / "val" / "prose.bin").unlink()
    with pytest.raises(UserError, match=r"val/prose\.bin' is missing"):
        PreparedDataset(copy)


def test_truncated_shard(copy: Path) -> None:
    bin_path = copy / "train" / "code.bin"
    bin_path.write_bytes(bin_path.read_bytes()[:-2])
    with pytest.raises(UserError, match=r"train/code\.bin' holds .* \(truncated\?\)"):
        PreparedDataset(copy)


def test_shard_disagreeing_with_manifest(copy: Path) -> None:
    manifest_path = copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["domains"]["code"]["val"]["tokens"] += 1
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(UserError, match=r"val/code' holds .* but manifest\.json says"):
        PreparedDataset(copy)


def test_verify_detects_modified_tokens(copy: Path) -> None:
    bin_path = copy / "train" / "prose.bin"
    data = bytearray(bin_path.read_bytes())
    data[0] ^= 1
    bin_path.write_bytes(bytes(data))
    ds = PreparedDataset(copy)  # sizes still agree, so opening succeeds
    with pytest.raises(UserError, match=r"train/prose\.bin' does not match the sha256"):
        ds.verify()
