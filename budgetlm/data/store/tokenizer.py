"""The tokenizer: budgetlm's byte-level BPE (HF `tokenizers`), or a Hugging Face model's."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, trainers

from budgetlm.errors import UserError

EOS_TOKEN = "<|endoftext|>"
MIN_VOCAB_SIZE = 256 + 1 + 1  # every byte, EOS, and at least one merge
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"


def check_vocab_size(vocab_size: int) -> None:
    """UserError unless `vocab_size` leaves room for all 256 bytes, EOS and a merge."""
    if vocab_size < MIN_VOCAB_SIZE:
        raise UserError(
            f"vocab_size {vocab_size} is too small: a byte-level BPE needs 256 byte "
            f"tokens plus EOS; fix: set vocab_size to at least {MIN_VOCAB_SIZE} "
            "(e.g. 4096)"
        )


class Tokenizer:
    """A HF `tokenizers` tokenizer plus the ids that frame a document: EOS after it and, for
    tokenizers whose post-processor adds one (Llama, Mistral), BOS before it.

    budgetlm's own tokenizers are byte-level BPEs with EOS "<|endoftext|>" at id 0 and no BOS,
    so any text round-trips exactly. A Hugging Face model's tokenizer keeps its own EOS (named
    in its tokenizer_config.json) so continued pre-training sees documents framed as in the
    model's pre-training. Special-token strings inside a text are encoded as ordinary text;
    only the shard writer inserts the BOS/EOS ids.
    """

    def __init__(self, hf: HFTokenizer, eos_token: str = EOS_TOKEN) -> None:
        eos_id = hf.token_to_id(eos_token)
        if eos_id is None:
            raise ValueError(f"tokenizer has no {eos_token} token")
        hf.encode_special_tokens = True  # not saved in tokenizer.json, so set on every load
        self._hf = hf
        self._eos_token = eos_token
        self._eos_id = eos_id
        self._bos_id = _added_bos_id(hf)

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
        """Load a tokenizer.json file, or the one inside a directory (a budgetlm run or dataset,
        or a Hugging Face model directory); the EOS token is the `eos_token` of a
        tokenizer_config.json beside it, else "<|endoftext|>". UserError if missing or bad."""
        path = Path(path).expanduser()
        file = path / TOKENIZER_FILE if path.is_dir() else path
        if not file.is_file():
            raise UserError(
                f"tokenizer file '{file}' not found; fix: pass a tokenizer.json (or a "
                "prepared dataset, run or Hugging Face model folder holding one), or omit it "
                "to train one"
            )
        try:
            hf = HFTokenizer.from_file(str(file))
        except Exception as e:  # the Rust side raises a bare Exception on bad JSON
            raise UserError(
                f"tokenizer file '{file}' could not be read ({e}); fix: re-create "
                "it with `budgetlm prepare` or pass another file"
            ) from None
        eos_token = _configured_eos(file.parent) or _model_eos(file.parent, hf) or EOS_TOKEN
        if hf.token_to_id(eos_token) is None:
            raise UserError(
                f"tokenizer file '{file}' has no {eos_token} token to end documents with; fix: "
                "use a tokenizer made by `budgetlm prepare`, or put the name of its "
                f'end-of-text token as "eos_token" in {file.parent / TOKENIZER_CONFIG_FILE}'
            )
        return cls(hf, eos_token)

    def save(self, path: str | Path) -> None:
        """Write tokenizer.json atomically (temp file, then os.replace), and beside it a
        tokenizer_config.json naming the EOS token when it is not budgetlm's own."""
        path = Path(path)
        _write_atomic(path, self._hf.to_str())
        if self._eos_token != EOS_TOKEN:
            config = {"eos_token": self._eos_token}
            _write_atomic(path.with_name(TOKENIZER_CONFIG_FILE), json.dumps(config, indent=2))

    @property
    def fingerprint(self) -> str:
        """A hash of everything that decides the token ids of a dataset (vocabulary, merges,
        normalisation, EOS and BOS), equal for equal tokenizers however their files were
        formatted: the test that a dataset fits a model."""
        blob = json.dumps([self._hf.to_str(), self._eos_token, self._bos_id])
        return hashlib.sha256(blob.encode()).hexdigest()

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

    def to_json(self) -> str:
        """The tokenizer.json text (what `save` writes)."""
        return self._hf.to_str()

    def text_bytes(self, ids) -> int:
        """UTF-8 bytes of the text that `ids` stand for, special tokens (EOS, BOS) counted as
        none: the denominator of bits per byte."""
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)
        return len(self._hf.decode(ids, skip_special_tokens=True).encode("utf-8"))

    @property
    def vocab_size(self) -> int:
        """Number of token ids, EOS included."""
        return self._hf.get_vocab_size()

    @property
    def eos_id(self) -> int:
        """Id of the EOS token that separates documents."""
        return self._eos_id

    @property
    def eos_token(self) -> str:
        """The EOS token's text (e.g. "<|endoftext|>", Llama's "</s>")."""
        return self._eos_token

    def token(self, token_id: int) -> str | None:
        """The vocabulary entry of an id (None if out of range)."""
        return self._hf.id_to_token(token_id)

    @property
    def bos_id(self) -> int | None:
        """Id of the token the tokenizer puts before each text (Llama's <s>), or None."""
        return self._bos_id


def _added_bos_id(hf: HFTokenizer) -> int | None:
    """The id the tokenizer's post-processor puts in front of every text, if it adds exactly
    one (Llama 2/3, Mistral); None for tokenizers that add nothing (GPT-2, Qwen2, budgetlm's)."""
    plain = hf.encode("a", add_special_tokens=False).ids
    framed = hf.encode("a", add_special_tokens=True).ids
    if len(framed) == len(plain) + 1 and framed[1:] == plain:
        return framed[0]
    return None


def _configured_eos(folder: Path) -> str | None:
    """The `eos_token` of the tokenizer_config.json in `folder` (a string, or a dict with
    "content" as Hugging Face writes it), or None when there is none."""
    file = folder / TOKENIZER_CONFIG_FILE
    if not file.is_file():
        return None
    try:
        value = json.loads(file.read_text(encoding="utf-8")).get("eos_token")
    except (ValueError, UnicodeDecodeError, AttributeError) as e:
        raise UserError(f"{file} is not a readable JSON object ({e}); fix or delete it") from None
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) and value else None


def _model_eos(folder: Path, hf: HFTokenizer) -> str | None:
    """The token named by `eos_token_id` in a Hugging Face model's config.json (an id or a list
    of ids, the first being the end of text), for model folders without tokenizer_config.json."""
    file = folder / "config.json"
    if not file.is_file():
        return None
    try:
        value = json.loads(file.read_text(encoding="utf-8")).get("eos_token_id")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None
    if isinstance(value, list):
        value = value[0] if value else None
    return hf.id_to_token(value) if isinstance(value, int) else None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
