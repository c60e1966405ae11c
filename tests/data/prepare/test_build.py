"""prepare_dataset: layout, split, manifest counts, cleaning, resume after a crash, adding
sources, tokenizer reuse, user errors."""

from __future__ import annotations

import importlib.util
import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

from budgetlm.data.clean.filters import normalize
from budgetlm.data.config import CleaningConfig
from budgetlm.data.ingest.documents import Document
from budgetlm.data.prepare import build as prepare_module
from budgetlm.data.prepare.build import prepare_dataset, split_key
from budgetlm.data.store.dataset import PreparedDataset
from budgetlm.data.store.manifest import unigram_entropy
from budgetlm.data.store.shards import TokenShard
from budgetlm.data.store.tokenizer import Tokenizer
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
    texts = {"code": code, "prose": prose | extra}
    return specs, {d: {normalize(t) for t in ts} for d, ts in texts.items()}


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
        "dedup",
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
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []  # no temp file

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
    assert manifest["text_field"] == "text" and manifest["format"] == 2
    assert manifest["complete"] is True
    assert [(s["domain"], s["files"], s["documents"], s["kept"]) for s in manifest["sources"]] == [
        ("code", 12, 12, 12),
        ("prose", 10, 10, 10),
        ("prose", 1, 6, 6),
    ]
    assert all(s["done"] for s in manifest["sources"])
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


def test_split_guarantees_both_sides(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    for i in range(20):
        (folder / f"f{i}.txt").write_text(f"text number {i}\n", encoding="utf-8")
    few_val = prepare_dataset([str(folder)], tmp_path / "a", vocab_size=VOCAB, val_fraction=1e-9)
    counts = few_val["domains"]["d"]
    assert (counts["train"]["documents"], counts["val"]["documents"]) == (19, 1)
    few_train = prepare_dataset(
        [str(folder)], tmp_path / "b", vocab_size=VOCAB, val_fraction=1 - 1e-9
    )
    counts = few_train["domains"]["d"]
    assert (counts["train"]["documents"], counts["val"]["documents"]) == (1, 19)
    PreparedDataset(tmp_path / "b")  # the moved document left consistent shards


def test_split_depends_on_seed_and_fraction() -> None:
    docs = docs_of(200)
    val = [d for d in docs if split_key(0, "d", d) < 0.25]
    assert 25 < len(val) < 75  # ~50 expected for a uniform hash
    val_other_seed = [d for d in docs if split_key(1, "d", d) < 0.25]
    assert [d.source for d in val] != [d.source for d in val_other_seed]


def test_domain_with_one_document(tmp_path: Path, corpus) -> None:
    specs, _ = corpus
    (tmp_path / "lonely.txt").write_text("only one document here", encoding="utf-8")
    with pytest.raises(UserError, match=r"domain 'lonely' \(from '.*lonely\.txt'\) has 1 document"):
        prepare_dataset([*specs, str(tmp_path / "lonely.txt")], tmp_path / "out", vocab_size=VOCAB)
    with pytest.raises(UserError, match=r"not completely prepared .* run the same"):
        PreparedDataset(tmp_path / "out")


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
    with pytest.raises(UserError, match=r"folder '.*out' already exists.*no prepared dataset"):
        prepare_dataset(specs, out, vocab_size=VOCAB)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_existing_empty_out_dir_accepted(tmp_path: Path, corpus) -> None:
    specs, _ = corpus
    (tmp_path / "out").mkdir()
    prepare_dataset(specs, tmp_path / "out", vocab_size=VOCAB)
    assert (tmp_path / "out" / "manifest.json").is_file()


def test_crash_midway_resumes_to_the_same_dataset(tmp_path: Path, corpus, monkeypatch) -> None:
    specs, _ = corpus
    straight = prepare_dataset(specs, tmp_path / "straight", vocab_size=VOCAB)
    monkeypatch.setattr(prepare_module, "BATCH_CHARS", 60)  # a batch of about two documents
    monkeypatch.setattr(prepare_module, "COMMIT_CHARS", 150)  # a commit every few batches
    real_add = prepare_module.ShardAppender.add_document
    calls = []

    def crashing_add(self, ids, eos_id):
        calls.append(1)
        real_add(self, ids, eos_id)
        if len(calls) == 7:  # mid-source, with uncommitted documents already on disk
            raise KeyboardInterrupt

    monkeypatch.setattr(prepare_module.ShardAppender, "add_document", crashing_add)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset(specs, out, vocab_size=VOCAB)
    partial = json.loads((out / "manifest.json").read_text())
    assert partial["complete"] is False and 0 < partial["sources"][0]["read"] < 12
    with pytest.raises(UserError, match="not completely prepared"):
        PreparedDataset(out)
    monkeypatch.setattr(prepare_module.ShardAppender, "add_document", real_add)
    logs: list[str] = []
    resumed = prepare_dataset(specs, out, vocab_size=VOCAB, log=logs.append)
    assert any("resuming" in line for line in logs)
    assert resumed["domains"] == straight["domains"]  # same tokens, counts and hashes
    assert [s["cleaning"] for s in resumed["sources"]] == [
        s["cleaning"] for s in straight["sources"]
    ]
    PreparedDataset(out).verify()


def test_adding_a_source_keeps_the_others(tmp_path: Path, corpus) -> None:
    specs, _ = corpus
    out = tmp_path / "out"
    first = prepare_dataset(specs[:1], out, vocab_size=VOCAB)
    code_bin = (out / "train" / "code.bin").read_bytes()
    logs: list[str] = []
    both = prepare_dataset(specs, out, vocab_size=VOCAB, log=logs.append)
    assert not any(specs[0] in line and "read" in line for line in logs)  # code not re-read
    assert (out / "train" / "code.bin").read_bytes() == code_bin
    assert both["domains"]["code"] == first["domains"]["code"]
    assert both["tokenizer"] == first["tokenizer"]  # the first preparation's tokenizer
    assert list(both["domains"]) == ["code", "prose"]
    assert both["domains"]["prose"]["train"]["documents"] > 0
    assert PreparedDataset(out).domains == ["code", "prose"]
    again: list[str] = []
    prepare_dataset(specs, out, vocab_size=VOCAB, log=again.append)
    assert any("already holds every source" in line for line in again)
    with pytest.raises(UserError, match=r"prepared with val_fraction=0.05, not 0.3"):
        prepare_dataset(specs, out, vocab_size=VOCAB, val_fraction=0.3)


def test_cleaning_is_applied_and_reported(tmp_path: Path) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    import random

    rng = random.Random(0)
    vocabulary = [
        "the",
        "cat",
        "and",
        "dog",
        "went",
        "to",
        "park",
        "with",
        "a",
        "ball",
        "of",
        "red",
        "yarn",
        "that",
        "day",
        "sun",
    ]
    good = [" ".join(rng.choice(vocabulary) for _ in range(80)) + ".\n" for _ in range(6)]
    for i, text in enumerate(good):
        (folder / f"good{i}.txt").write_text(text, encoding="utf-8")
    (folder / "copy.txt").write_text(good[0].replace("\n", "\r\n"), encoding="utf-8")
    (folder / "junk.txt").write_text("lorem ipsum dolor sit amet " * 20, encoding="utf-8")
    manifest = prepare_dataset(
        [str(folder)],
        tmp_path / "out",
        vocab_size=VOCAB,
        cleaning=CleaningConfig(quality="prose"),
    )
    source = manifest["sources"][0]
    assert (source["documents"], source["kept"]) == (8, 6)
    rules = source["cleaning"]["rules"]
    assert rules["exact_duplicate"]["documents"] == 1  # equal once \r\n is normalised
    assert sum(r["documents"] for r in rules.values()) == 2
    kept = manifest["domains"]["d"]
    assert kept["train"]["documents"] + kept["val"]["documents"] == 6
    raw = prepare_dataset(
        [str(folder)],
        tmp_path / "raw",
        vocab_size=VOCAB,
        cleaning=CleaningConfig(normalize=None, exact_dedup=False),
    )
    assert raw["sources"][0]["kept"] == 8 and raw["sources"][0]["cleaning"]["rules"] == {}


def test_worker_processes_give_the_same_dataset(tmp_path: Path, corpus, monkeypatch) -> None:
    specs, _ = corpus
    monkeypatch.setattr(prepare_module, "BATCH_CHARS", 200)  # several batches in flight
    one = prepare_dataset(specs, tmp_path / "one", vocab_size=VOCAB, workers=1)
    two = prepare_dataset(specs, tmp_path / "two", vocab_size=VOCAB, workers=2)
    assert one["domains"] == two["domains"]


def test_bad_options_fail_before_reading(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing")
    with pytest.raises(UserError, match="val_fraction 0.0 must be between 0 and 1"):
        prepare_dataset([missing], tmp_path / "out", val_fraction=0.0)
    with pytest.raises(UserError, match="vocab_size 100 is too small"):
        prepare_dataset([missing], tmp_path / "out", vocab_size=100)
    with pytest.raises(UserError, match=r"tokenizer file '.*nope\.json' not found"):
        prepare_dataset([missing], tmp_path / "out", tokenizer=tmp_path / "nope.json")


def spy_on_tokenizer_training(monkeypatch) -> list[str]:
    """The texts Tokenizer.train receives, recorded while it still trains normally."""
    seen: list[str] = []
    real_train = Tokenizer.train.__func__

    def spy(cls, texts, vocab_size):
        texts = list(texts)
        seen.extend(texts)
        return real_train(cls, texts, vocab_size)

    monkeypatch.setattr(Tokenizer, "train", classmethod(spy))
    return seen


def test_tokenizer_sees_only_train_documents(tmp_path: Path, corpus, monkeypatch) -> None:
    specs, _ = corpus
    seen = spy_on_tokenizer_training(monkeypatch)
    out = tmp_path / "out"
    manifest = prepare_dataset(specs, out, vocab_size=VOCAB, val_fraction=0.3)
    tok = Tokenizer.load(out)
    train = [t for d in manifest["domains"] for t in shard_texts(out, "train", d, tok)]
    assert sorted(seen) == sorted(train)


def test_tokenizer_sample_is_bounded(tmp_path: Path, corpus, monkeypatch) -> None:
    specs, _ = corpus
    seen = spy_on_tokenizer_training(monkeypatch)
    monkeypatch.setattr(prepare_module, "TOKENIZER_SAMPLE_CHARS", 3 * 40)
    prepare_dataset(specs, tmp_path / "out", vocab_size=VOCAB)
    assert 3 <= len(seen) <= 3 * 3  # each of the 3 sources stops once it gave its 40 chars


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


@pytest.mark.skipif(
    importlib.util.find_spec("budgetlm.data.ingest.builtin") is None,
    reason="builtin.py not written yet",
)
def test_builtin_prose(tmp_path: Path) -> None:
    start = time.perf_counter()
    manifest = prepare_dataset(["builtin:prose"], tmp_path / "out", vocab_size=512)
    print(f"prepared builtin:prose in {time.perf_counter() - start:.1f}s")
    entry = manifest["domains"]["prose"]
    assert entry["train"]["documents"] > 0 and entry["val"]["documents"] > 0
    assert 0 < entry["unigram_entropy"] < math.log(512)  # below the uniform distribution's


def test_quality_presets_per_domain(tmp_path: Path, corpus) -> None:
    specs, _ = corpus
    per_domain = CleaningConfig(quality={"prose": "prose"})  # code is kept whole
    out = tmp_path / "out"
    with pytest.raises(UserError, match=r"domain 'prose' .* has 0 document\(s\) after cleaning"):
        prepare_dataset(specs, out, vocab_size=VOCAB, cleaning=per_domain)
    manifest = json.loads((out / "manifest.json").read_text())
    rules = [s["cleaning"]["rules"] for s in manifest["sources"]]
    assert rules[0] == {}  # code: no rule applied
    assert rules[1]["min_words"]["documents"] == 10  # every prose story is under 50 words
    with pytest.raises(UserError, match=r"quality preset given for domain 'prosy'.*'prose'"):
        prepare_dataset(
            specs,
            tmp_path / "x",
            vocab_size=VOCAB,
            cleaning=CleaningConfig(quality={"prosy": "prose"}),
        )
