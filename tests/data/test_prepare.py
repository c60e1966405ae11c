"""prepare_dataset: layout, split, manifest counts, atomicity, tokenizer reuse, user errors."""

from __future__ import annotations

import importlib.util
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

from budgetlm.data import prepare as prepare_module
from budgetlm.data.documents import Document
from budgetlm.data.prepare import prepare_dataset, split_documents, unigram_entropy
from budgetlm.data.shards import TokenShard
from budgetlm.data.tokenizer import Tokenizer
from budgetlm.errors import UserError

VOCAB = 300


def make_corpus(root: Path) -> tuple[list[str], dict[str, set[str]]]:
    """Two folders (code, prose) plus a JSONL that joins the prose domain; returns the source
    specs and each domain's document texts."""
    code = {f"def f{i}(x):\n    return x * {i}\n" for i in range(12)}
    prose = {f"Story {i}: the fox ran {i} miles home.\n" for i in range(10)}
    extra = {f"Extra line {i} about foxes." for i in range(6)}
    for i, text in enumerate(sorted(code)):
        (root / "code").mkdir(parents=True, exist_ok=True)
        (root / "code" / f"f{i}.py").write_text(text, encoding="utf-8")
    for i, text in enumerate(sorted(prose)):
        (root / "prose").mkdir(parents=True, exist_ok=True)
        (root / "prose" / f"s{i}.txt").write_text(text, encoding="utf-8")
    lines = "".join(json.dumps({"text": t}) + "\n" for t in sorted(extra))
    (root / "extra.jsonl").write_text(lines, encoding="utf-8")
    specs = [str(root / "code"), str(root / "prose"), f"prose={root / 'extra.jsonl'}"]
    return specs, {"code": code, "prose": prose | extra}


def shard_texts(out: Path, split: str, domain: str, tok: Tokenizer) -> list[str]:
    shard = TokenShard(out / split / domain, np.dtype(np.uint16))
    docs = [shard.document(i) for i in range(shard.num_documents)]
    assert all(d[-1] == tok.eos_id and tok.eos_id not in d[:-1] for d in docs)
    return [tok.decode(d[:-1]) for d in docs]


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[list[str], dict[str, set[str]]]:
    return make_corpus(tmp_path / "corpus")


def test_layout_split_and_manifest(tmp_path: Path, corpus) -> None:
    specs, texts = corpus
    out = tmp_path / "out"
    manifest = prepare_dataset(specs, out, vocab_size=VOCAB, val_fraction=0.2, seed=3)
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json",
        "tokenizer.json",
        "train",
        "val",
    ]
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert sorted(p.name for p in (out / "train").iterdir()) == [
        "code.bin",
        "code.idx",
        "prose.bin",
        "prose.idx",
    ]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp dir

    tok = Tokenizer.load(out)
    assert manifest["tokenizer"] == {
        "file": "tokenizer.json",
        "vocab_size": tok.vocab_size,
        "eos_id": 0,
        "bos_id": None,
        "trained": True,
        "sha256": prepare_module.file_sha256(out / "tokenizer.json"),
    }
    assert (manifest["dtype"], manifest["val_fraction"], manifest["seed"]) == ("uint16", 0.2, 3)
    assert manifest["text_field"] == "text" and manifest["format"] == 1
    assert [(s["domain"], s["files"], s["documents"]) for s in manifest["sources"]] == [
        ("code", 12, 12),
        ("prose", 10, 10),
        ("prose", 1, 6),
    ]
    assert list(manifest["domains"]) == ["code", "prose"]
    for domain, expected in texts.items():
        train = shard_texts(out, "train", domain, tok)
        val = shard_texts(out, "val", domain, tok)
        assert train and val  # each domain has both splits
        assert set(train).isdisjoint(val)  # no document in both
        assert sorted(train + val) == sorted(expected)  # every document exactly once
        for split, docs in (("train", train), ("val", val)):
            entry = manifest["domains"][domain][split]
            shard = TokenShard(out / entry["path"], np.dtype(np.uint16))
            assert entry["documents"] == len(docs) == shard.num_documents
            assert entry["tokens"] == len(shard.tokens) == sum(len(tok.encode(d)) + 1 for d in docs)
            assert entry["bytes_text"] == sum(len(d.encode()) for d in docs)
        train_tokens = TokenShard(out / "train" / domain, np.dtype(np.uint16)).tokens
        assert manifest["domains"][domain]["unigram_entropy"] == pytest.approx(
            unigram_entropy(np.asarray(train_tokens), tok.vocab_size)
        )


def test_split_is_deterministic(tmp_path: Path, corpus) -> None:
    specs, _ = corpus
    a = prepare_dataset(specs, tmp_path / "a", vocab_size=VOCAB, val_fraction=0.3)
    b = prepare_dataset(specs, tmp_path / "b", vocab_size=VOCAB, val_fraction=0.3)
    assert a["domains"] == b["domains"]  # same split, tokens and hashes


def docs_of(n: int) -> list[Document]:
    return [Document(f"text {i}", "d", f"f{i}.txt") for i in range(n)]


def test_split_guarantees_both_sides() -> None:
    docs = docs_of(20)
    train, val = split_documents(docs, "d", seed=0, val_fraction=1e-9)
    assert (len(train), len(val)) == (19, 1)
    train, val = split_documents(docs, "d", seed=0, val_fraction=1 - 1e-9)
    assert (len(train), len(val)) == (1, 19)
    train, val = split_documents(docs[:2], "d", seed=0, val_fraction=0.5)
    assert (len(train), len(val)) == (1, 1)


def test_split_depends_on_seed_and_fraction() -> None:
    docs = docs_of(200)
    _, val = split_documents(docs, "d", seed=0, val_fraction=0.25)
    assert 25 < len(val) < 75  # ~50 expected for a uniform hash
    _, val_other_seed = split_documents(docs, "d", seed=1, val_fraction=0.25)
    assert [d.source for d in val] != [d.source for d in val_other_seed]


def test_domain_with_one_document(tmp_path: Path, corpus) -> None:
    specs, _ = corpus
    (tmp_path / "lonely.txt").write_text("only one document here", encoding="utf-8")
    with pytest.raises(UserError, match=r"domain 'lonely' \(from '.*lonely\.txt'\) has 1 document"):
        prepare_dataset([*specs, str(tmp_path / "lonely.txt")], tmp_path / "out", vocab_size=VOCAB)
    assert not (tmp_path / "out").exists()


def test_empty_corpus_names_sources(tmp_path: Path) -> None:
    (tmp_path / "blank").mkdir()
    (tmp_path / "blank" / "a.txt").write_text("  \n", encoding="utf-8")
    with pytest.raises(UserError, match=r"no documents found in '.*blank'"):
        prepare_dataset([str(tmp_path / "blank")], tmp_path / "out", vocab_size=VOCAB)


def test_existing_out_dir_refused(tmp_path: Path, corpus) -> None:
    specs, _ = corpus
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("precious", encoding="utf-8")
    with pytest.raises(UserError, match=r"output folder '.*out' already exists.*another --out"):
        prepare_dataset(specs, out, vocab_size=VOCAB)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_existing_empty_out_dir_accepted(tmp_path: Path, corpus) -> None:
    specs, _ = corpus
    (tmp_path / "out").mkdir()
    prepare_dataset(specs, tmp_path / "out", vocab_size=VOCAB)
    assert (tmp_path / "out" / "manifest.json").is_file()


def test_failure_midway_leaves_nothing(tmp_path: Path, corpus, monkeypatch) -> None:
    specs, _ = corpus
    real_close = prepare_module.ShardWriter.close
    calls = []

    def failing_close(self):
        calls.append(self.prefix)
        if len(calls) == 3:  # after code's train and val shards are already on disk
            raise OSError("disk full")
        return real_close(self)

    monkeypatch.setattr(prepare_module.ShardWriter, "close", failing_close)
    out = tmp_path / "data" / "out"
    with pytest.raises(OSError, match="disk full"):
        prepare_dataset(specs, out, vocab_size=VOCAB)
    assert len(calls) == 3
    assert list((tmp_path / "data").iterdir()) == []  # neither out nor .out.tmp-<pid>


def test_bad_options_fail_before_reading(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    with pytest.raises(UserError, match="val_fraction 0.0 must be between 0 and 1"):
        prepare_dataset([missing], tmp_path / "out", val_fraction=0.0)
    with pytest.raises(UserError, match="vocab_size 100 is too small"):
        prepare_dataset([missing], tmp_path / "out", vocab_size=100)
    with pytest.raises(UserError, match=r"tokenizer file '.*nope\.json' not found"):
        prepare_dataset([missing], tmp_path / "out", tokenizer=tmp_path / "nope.json")


def test_tokenizer_sees_only_train_documents(tmp_path: Path, corpus, monkeypatch) -> None:
    specs, _ = corpus
    seen: list[str] = []
    real_train = Tokenizer.train.__func__

    def spy(cls, texts, vocab_size):
        texts = list(texts)
        seen.extend(texts)
        return real_train(cls, texts, vocab_size)

    monkeypatch.setattr(Tokenizer, "train", classmethod(spy))
    out = tmp_path / "out"
    manifest = prepare_dataset(specs, out, vocab_size=VOCAB, val_fraction=0.3)
    tok = Tokenizer.load(out)
    train = [t for d in manifest["domains"] for t in shard_texts(out, "train", d, tok)]
    assert sorted(seen) == sorted(train)


def test_reuse_tokenizer(tmp_path: Path, corpus) -> None:
    specs, _ = corpus
    first = prepare_dataset(specs, tmp_path / "a", vocab_size=VOCAB)
    second = prepare_dataset(specs[:1], tmp_path / "b", vocab_size=999, tokenizer=tmp_path / "a")
    assert second["tokenizer"]["trained"] is False
    assert second["tokenizer"]["vocab_size"] == first["tokenizer"]["vocab_size"]
    assert second["tokenizer"]["sha256"] == first["tokenizer"]["sha256"]
    assert second["domains"]["code"] == first["domains"]["code"]


def test_unigram_entropy_by_hand() -> None:
    assert unigram_entropy(np.array([3, 3, 5, 5], dtype=np.uint16), 8) == pytest.approx(math.log(2))
    # p = (3/4, 1/4): H = -(3/4 ln 3/4 + 1/4 ln 1/4)
    expected = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    assert unigram_entropy(np.array([1, 1, 1, 0], dtype=np.uint16), 4) == pytest.approx(expected)
    assert unigram_entropy(np.array([7] * 10, dtype=np.uint16), 8) == 0.0
    assert unigram_entropy(np.array([], dtype=np.uint16), 8) == 0.0


def test_unigram_entropy_chunked(monkeypatch) -> None:
    monkeypatch.setattr(prepare_module, "BINCOUNT_CHUNK", 3)
    tokens = np.arange(8, dtype=np.uint16)  # uniform over 8 ids
    assert unigram_entropy(tokens, 8) == pytest.approx(math.log(8))


@pytest.mark.skipif(
    importlib.util.find_spec("budgetlm.data.builtin") is None, reason="builtin.py not written yet"
)
def test_builtin_prose(tmp_path: Path) -> None:
    start = time.perf_counter()
    manifest = prepare_dataset(["builtin:prose"], tmp_path / "out", vocab_size=512)
    print(f"prepared builtin:prose in {time.perf_counter() - start:.1f}s")
    entry = manifest["domains"]["prose"]
    assert entry["train"]["documents"] > 0 and entry["val"]["documents"] > 0
    assert 0 < entry["unigram_entropy"] < math.log(512)  # below the uniform distribution's
