"""Open a prepared dataset directory (made by `prepare_dataset`) for reading."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from budgetlm.data.store.manifest import MANIFEST_FILE, MANIFEST_FORMAT, SPLITS, file_sha256
from budgetlm.data.store.shards import TokenShard
from budgetlm.data.store.tokenizer import TOKENIZER_FILE, Tokenizer
from budgetlm.errors import UserError, closest

PREPARE_HINT = "fix: run `budgetlm prepare --data SOURCE... --out {path}`"
SHARD_KEYS = {"path", "tokens", "documents", "sha256"}
REPREPARE_HINT = "fix: prepare the dataset again with `budgetlm prepare`"


class PreparedDataset:
    """A prepared dataset directory opened for reading.

    Opening checks every shard against the manifest (present, not truncated, same counts), so
    a broken dataset fails here rather than mid-training; `verify()` also checks hashes.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.manifest = _load_manifest(self.path)
        self.tokenizer = Tokenizer.load(self.path / TOKENIZER_FILE)
        self.dtype = np.dtype(self.manifest["dtype"])
        self.domains = list(self.manifest["domains"])
        self._shards = {
            (split, domain): self._open_shard(split, domain)
            for domain in self.domains
            for split in SPLITS
        }

    def shard(self, split: str, domain: str) -> TokenShard:
        """The shard of one split ("train"/"val") and domain."""
        if split not in SPLITS:
            raise UserError(
                f"unknown split '{split}'{closest(split, SPLITS)}; fix: use one of "
                f"{', '.join(SPLITS)}"
            )
        if domain not in self.domains:
            raise UserError(
                f"dataset '{self.path}' has no domain '{domain}'"
                f"{closest(domain, self.domains)}; fix: use one of "
                f"{', '.join(self.domains)}"
            )
        return self._shards[split, domain]

    def tokens(self, split: str, domain: str) -> np.ndarray:
        """The flat memmapped token stream of one split and domain (documents EOS-separated)."""
        return self.shard(split, domain).tokens

    def token_counts(self, split: str) -> dict[str, int]:
        """Tokens per domain in one split, EOS separators included."""
        return {domain: len(self.shard(split, domain).tokens) for domain in self.domains}

    def verify(self) -> None:
        """Check every shard's and the tokenizer's sha256 against the manifest (reads all data)."""
        for (split, domain), shard in self._shards.items():
            expected = self.manifest["domains"][domain][split]["sha256"]
            _check_hash(shard.prefix.with_name(shard.prefix.name + ".bin"), expected)
        _check_hash(self.path / TOKENIZER_FILE, self.manifest["tokenizer"]["sha256"])

    def _open_shard(self, split: str, domain: str) -> TokenShard:
        entry = self.manifest["domains"][domain].get(split)
        if not isinstance(entry, dict) or not entry.keys() >= SHARD_KEYS:
            raise UserError(
                f"'{self.path / MANIFEST_FILE}' lacks the {split} shard entry of "
                f"domain '{domain}'; {REPREPARE_HINT}"
            )
        shard = TokenShard(self.path / entry["path"], self.dtype)
        if (len(shard.tokens), shard.num_documents) != (entry["tokens"], entry["documents"]):
            raise UserError(
                f"shard '{self.path / entry['path']}' holds {len(shard.tokens)} tokens "
                f"in {shard.num_documents} documents but {MANIFEST_FILE} says "
                f"{entry['tokens']} in {entry['documents']}; {REPREPARE_HINT}"
            )
        return shard


def _load_manifest(path: Path) -> dict[str, Any]:
    """Read and sanity-check manifest.json (UserError naming the problem and the fix)."""
    hint = PREPARE_HINT.format(path=path)
    if not path.is_dir():
        raise UserError(f"dataset folder '{path}' does not exist; {hint}")
    file = path / MANIFEST_FILE
    if not file.is_file():
        raise UserError(f"'{path}' is not a prepared dataset (no {MANIFEST_FILE}); {hint}")
    try:
        manifest = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"'{file}' is not valid JSON ({e}); {REPREPARE_HINT}") from None
    if not isinstance(manifest, dict):
        raise UserError(f"'{file}' is not a manifest (not a JSON object); {REPREPARE_HINT}")
    if manifest.get("format") != MANIFEST_FORMAT:
        raise UserError(
            f"'{file}' has format {manifest.get('format')!r}, this budgetlm reads "
            f"format {MANIFEST_FORMAT}; {REPREPARE_HINT}"
        )
    if not manifest.get("complete"):
        raise UserError(
            f"'{path}' is not completely prepared (its preparation was interrupted, or is "
            "still running); fix: run the same `budgetlm prepare` command again to finish it"
        )
    for key in ("dtype", "domains", "tokenizer"):
        if key not in manifest:
            raise UserError(f"'{file}' lacks the key '{key}'; {REPREPARE_HINT}")
    return manifest


def _check_hash(path: Path, expected: str) -> None:
    if file_sha256(path) != expected:
        raise UserError(
            f"'{path}' does not match the sha256 in {MANIFEST_FILE} (modified or "
            f"corrupt); {REPREPARE_HINT}"
        )
