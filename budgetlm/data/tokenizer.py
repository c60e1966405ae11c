"""Byte-level BPE tokenizer (HF `tokenizers`) with a single special token, EOS."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from budgetlm.errors import UserError

EOS_TOKEN = "<|endoftext|>"
MIN_VOCAB_SIZE = 256 + 1 + 1  # every byte, EOS, and at least one merge
TOKENIZER_FILE = "tokenizer.json"


def check_vocab_size(vocab_size: int) -> None:
    """UserError unless `vocab_size` leaves room for all 256 bytes, EOS and a merge."""
    if vocab_size < MIN_VOCAB_SIZE:
        raise UserError(
            f"vocab_size {vocab_size} is too small: a byte-level BPE needs 256 byte "
            f"tokens plus EOS; fix: set vocab_size to at least {MIN_VOCAB_SIZE} "
            "(e.g. 4096)"
        )


class Tokenizer:
    """Byte-level BPE (HF `tokenizers`) with one special token, EOS, at id 0.

    Byte-level means any text round-trips exactly. A literal "<|endoftext|>" inside a text is
    encoded as ordinary bytes; only the shard writer inserts the EOS id between documents.
    """

    def __init__(self, hf: HFTokenizer) -> None:
        eos_id = hf.token_to_id(EOS_TOKEN)
        if eos_id is None:
            raise ValueError(f"tokenizer has no {EOS_TOKEN} token")
        hf.encode_special_tokens = True  # not saved in tokenizer.json, so set on every load
        self._hf = hf
        self._eos_id = eos_id

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int) -> Tokenizer:
        """Train a byte-level BPE of at most `vocab_size` tokens (fewer if the text runs out
        of pairs to merge)."""
        check_vocab_size(vocab_size)
        hf = HFTokenizer(models.BPE())
        hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        hf.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=[EOS_TOKEN],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        hf.train_from_iterator(texts, trainer)
        return cls(hf)

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """Load a tokenizer.json file, or the one inside a directory (UserError if missing/bad)."""
        path = Path(path).expanduser()
        file = path / TOKENIZER_FILE if path.is_dir() else path
        if not file.is_file():
            raise UserError(
                f"tokenizer file '{file}' not found; fix: pass a tokenizer.json (or "
                "a prepared dataset folder holding one), or omit it to train one"
            )
        try:
            hf = HFTokenizer.from_file(str(file))
        except Exception as e:  # the Rust side raises a bare Exception on bad JSON
            raise UserError(
                f"tokenizer file '{file}' could not be read ({e}); fix: re-create "
                "it with `budgetlm prepare` or pass another file"
            ) from None
        if hf.token_to_id(EOS_TOKEN) is None:
            raise UserError(
                f"tokenizer file '{file}' has no {EOS_TOKEN} token; fix: use a "
                "tokenizer made by `budgetlm prepare`"
            )
        return cls(hf)

    def save(self, path: str | Path) -> None:
        """Write tokenizer.json atomically (temp file, then os.replace)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        try:
            tmp.write_text(self._hf.to_str(), encoding="utf-8")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (no EOS added)."""
        return self._hf.encode(text, add_special_tokens=False).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        """Token ids of many texts, encoded in parallel on all cores by the Rust library."""
        encode = getattr(self._hf, "encode_batch_fast", self._hf.encode_batch)  # fast skips offsets
        return [e.ids for e in encode(texts, add_special_tokens=False)]

    def decode(self, ids: list[int]) -> str:
        """Text of `ids`; EOS ids decode to the literal EOS string."""
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)  # numpy arrays from shards
        return self._hf.decode(ids, skip_special_tokens=False)

    @property
    def vocab_size(self) -> int:
        """Number of token ids, EOS included."""
        return self._hf.get_vocab_size()

    @property
    def eos_id(self) -> int:
        """Id of the EOS token that separates documents."""
        return self._eos_id
