"""Byte-level BPE: exact round-trips, EOS handling, save/load and user errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from budgetlm.data.store.tokenizer import EOS_TOKEN, MIN_VOCAB_SIZE, Tokenizer
from budgetlm.errors import UserError

TRAIN_TEXTS = [
    "def add(x, y):\n    return x + y\n",
    "The quick brown fox jumps over the lazy dog. " * 20,
    "for i in range(10):\n\tprint(i)  # loop\n",
]

ROUND_TRIP = [
    "def f(x):\n    return {'a': [x, x ** 2]}  # comment\r\n",
    "  leading spaces and trailing  \n\n\n",
    "héllo wörld — naïve café, 中文, русский, العربية",
    "emoji 😀👩‍👩‍👧 🇫🇷 and zero-width\u200bjoiner",
    "control \x00\x01\x7f bytes",
    f"a literal {EOS_TOKEN} inside text",
    "",
]


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return Tokenizer.train(TRAIN_TEXTS, vocab_size=300)


@pytest.mark.parametrize("text", ROUND_TRIP)
def test_round_trip_is_exact(tok: Tokenizer, text: str) -> None:
    assert tok.decode(tok.encode(text)) == text


def test_eos_is_id_zero_and_never_produced_by_text(tok: Tokenizer) -> None:
    assert tok.eos_id == 0
    assert tok.eos_id not in tok.encode(f"x{EOS_TOKEN}y")
    assert tok.decode([tok.eos_id]) == EOS_TOKEN


def test_vocab_size_bounded_and_merges_learned(tok: Tokenizer) -> None:
    assert 257 < tok.vocab_size <= 300
    assert len(tok.encode("the quick brown fox")) < len("the quick brown fox")


def test_encode_batch_matches_encode(tok: Tokenizer) -> None:
    assert tok.encode_batch(ROUND_TRIP) == [tok.encode(t) for t in ROUND_TRIP]


def test_decode_accepts_numpy_ids(tok: Tokenizer) -> None:
    import numpy as np

    ids = tok.encode("numpy ids")
    assert tok.decode(np.asarray(ids, dtype=np.uint16)) == "numpy ids"


def test_vocab_too_small_is_user_error() -> None:
    with pytest.raises(UserError, match=rf"vocab_size 257 is too small.*at least {MIN_VOCAB_SIZE}"):
        Tokenizer.train(TRAIN_TEXTS, vocab_size=257)
    assert Tokenizer.train(TRAIN_TEXTS, vocab_size=MIN_VOCAB_SIZE).vocab_size == MIN_VOCAB_SIZE


def test_save_load_file_and_directory(tok: Tokenizer, tmp_path: Path) -> None:
    tok.save(tmp_path / "tokenizer.json")
    assert [p.name for p in tmp_path.iterdir()] == ["tokenizer.json"]  # no temp file left
    for where in (tmp_path / "tokenizer.json", tmp_path):
        loaded = Tokenizer.load(where)
        assert (loaded.vocab_size, loaded.eos_id) == (tok.vocab_size, tok.eos_id)
        assert loaded.encode_batch(ROUND_TRIP) == tok.encode_batch(ROUND_TRIP)
        assert loaded.eos_id not in loaded.encode(EOS_TOKEN)  # setting survives a reload


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"tokenizer file '.*nope\.json' not found"):
        Tokenizer.load(tmp_path / "nope.json")
    with pytest.raises(UserError, match=r"'.*tokenizer\.json' not found"):
        Tokenizer.load(tmp_path)  # a directory without tokenizer.json


def test_load_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.json"
    path.write_text('{"version": "1.0", "model": ', encoding="utf-8")
    with pytest.raises(UserError, match=r"tokenizer\.json' could not be read"):
        Tokenizer.load(path)


def test_load_tokenizer_without_eos(tok: Tokenizer, tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.json"
    tok.save(path)
    path.write_text(path.read_text().replace(EOS_TOKEN, "<|other|>"), encoding="utf-8")
    with pytest.raises(UserError, match=r"has no <\|endoftext\|> token"):
        Tokenizer.load(path)


def test_hugging_face_tokenizer_keeps_its_eos_and_bos(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from tests.conftest import write_hf_model

    write_hf_model(tmp_path / "hf", "llama")
    tok = Tokenizer.load(tmp_path / "hf")
    assert (tok.eos_id, tok.bos_id) == (2, 1)  # </s> from tokenizer_config.json, <s> prepended
    (tmp_path / "hf" / "tokenizer_config.json").unlink()
    assert Tokenizer.load(tmp_path / "hf").eos_id == 2  # from config.json's eos_token_id
    (tmp_path / "copy").mkdir()
    tok.save(tmp_path / "copy" / "tokenizer.json")  # writes tokenizer_config.json beside it
    again = Tokenizer.load(tmp_path / "copy")
    assert (again.eos_id, again.bos_id, again.fingerprint) == (2, 1, tok.fingerprint)
    own = Tokenizer.train(TRAIN_TEXTS, vocab_size=300)
    assert own.fingerprint != tok.fingerprint and own.bos_id is None
