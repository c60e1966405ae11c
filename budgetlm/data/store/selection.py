"""A selected dataset: a prepared dataset whose train shards hold only the chosen documents of
another (validation shards copied unchanged), plus the per-document scores the choice came
from, so that a different keep fraction can be applied later without scoring again.

Layout of a selection folder (itself a prepared dataset that every reader accepts):
    manifest.json, tokenizer.json, train/DOMAIN.{bin,idx}, val/DOMAIN.{bin,idx}
    scores/DOMAIN.npy     one float64 score per train document of the source (lower = better;
                          NaN = unscorable, never kept)
    scores/scores.json    how the scores were made: source dataset and its train shard hashes,
                          method, target domains, reference runs
Rewriting a selection in place marks its manifest incomplete first, so readers refuse it until
the new shards and the complete manifest are in place (the same contract as `prepare`).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from budgetlm.data.store.dataset import PreparedDataset
from budgetlm.data.store.manifest import MANIFEST_FILE, unigram_entropy
from budgetlm.data.store.shards import ShardWriter, shard_files
from budgetlm.data.store.subset import lowest_scoring
from budgetlm.data.store.tokenizer import TOKENIZER_FILE
from budgetlm.errors import UserError
from budgetlm.io import Log

SCORES_DIR = "scores"
SCORES_FILE = "scores.json"


def source_fingerprint(dataset: PreparedDataset) -> dict[str, str]:
    """The sha256 of each domain's train shard, as the manifest records it: scores belong to
    exactly these documents."""
    return {d: dataset.manifest["domains"][d]["train"]["sha256"] for d in dataset.domains}


def save_scores(folder: Path, record: dict[str, Any], scores: Mapping[str, np.ndarray]) -> None:
    """Write one .npy of scores per domain, then the record naming them (atomically, last: a
    crash before it leaves no record, so the scores are made again)."""
    root = folder / SCORES_DIR
    root.mkdir(parents=True, exist_ok=True)
    (root / SCORES_FILE).unlink(missing_ok=True)
    for domain, values in scores.items():
        tmp = root / f".{domain}.npy.tmp-{os.getpid()}"
        with tmp.open("wb") as f:
            np.save(f, np.asarray(values, dtype=np.float64))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, root / f"{domain}.npy")
    record = {**record, "domains": {d: len(v) for d, v in scores.items()}}
    _write_json(root / SCORES_FILE, record)


def load_scores(folder: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """The record and per-domain scores saved in a selection folder, or None when it has none."""
    file = folder / SCORES_DIR / SCORES_FILE
    if not file.is_file():
        return None
    try:
        record = json.loads(file.read_text(encoding="utf-8"))
        scores = {d: np.load(folder / SCORES_DIR / f"{d}.npy") for d in record["domains"]}
    except (ValueError, KeyError, OSError) as e:
        raise UserError(
            f"the scores in '{folder / SCORES_DIR}' are unreadable ({e}); delete that folder and "
            "select again from the prepared dataset with --prepared"
        ) from None
    for domain, count in record["domains"].items():
        if len(scores[domain]) != count:
            raise UserError(
                f"'{folder / SCORES_DIR / domain}.npy' holds {len(scores[domain])} scores, "
                f"{SCORES_FILE} says {count}; delete '{folder / SCORES_DIR}' and select again"
            )
    return record, scores


def choose_documents(
    scores: Mapping[str, np.ndarray], keep: float, domains: list[str]
) -> dict[str, np.ndarray | None]:
    """Per domain: the indices of its `keep` share of documents with the lowest finite scores
    (at least one) for the `domains` to filter; None (all documents) for the others."""
    if not 0 < keep <= 1:
        raise UserError(f"--keep {keep} must be in (0, 1]: the share of documents to keep")
    return {d: lowest_scoring(s, keep) if d in domains else None for d, s in scores.items()}


def write_selection(
    source: PreparedDataset,
    chosen: Mapping[str, np.ndarray | None],
    out: Path,
    selection: dict[str, Any],
    log: Log,
) -> dict[str, Any]:
    """Write `source` with only the `chosen` train documents of each domain (None: all of them)
    into `out` as a complete prepared dataset; returns its manifest. `selection` is recorded in
    the manifest under "selection"."""
    out.mkdir(parents=True, exist_ok=True)
    if (out / MANIFEST_FILE).is_file():  # readers refuse the old selection while it is replaced
        old = json.loads((out / MANIFEST_FILE).read_text(encoding="utf-8"))
        _write_json(out / MANIFEST_FILE, {**old, "complete": False})
    manifest = json.loads(json.dumps(source.manifest))  # a deep copy
    for key in ("dedup_files", "commits"):  # prepare's state: not carried into a subset
        manifest.pop(key, None)
    shutil.copyfile(source.path / TOKENIZER_FILE, out / TOKENIZER_FILE)
    summary = {}
    for domain in source.domains:
        entry = manifest["domains"][domain]
        shard = source.shard("train", domain)
        documents = chosen.get(domain)
        if documents is None:
            documents = np.arange(shard.num_documents)
        if len(documents) == 0:
            raise UserError(f"no train documents of domain '{domain}' would be kept")
        writer = ShardWriter(out / entry["train"]["path"], source.dtype)
        with writer:
            for i in documents:
                tokens = np.asarray(shard.document(int(i)))
                writer.add_document(tokens[:-1], int(tokens[-1]))
            info = writer.close()
        entry["train"].update(
            tokens=info.tokens, documents=info.documents, sha256=info.sha256, bytes_text=None
        )
        _copy_shard(source.path / entry["val"]["path"], out / entry["val"]["path"])
        tokens = np.memmap(shard_files(out / entry["train"]["path"])[0], source.dtype, mode="r")
        entry["unigram_entropy"] = unigram_entropy(tokens, source.tokenizer.vocab_size)
        summary[domain] = {
            "documents": [info.documents, shard.num_documents],
            "tokens": [info.tokens, len(shard.tokens)],
            "filtered": chosen.get(domain) is not None,
        }
        log(
            f"{domain}: kept {info.documents:,} of {shard.num_documents:,} train documents "
            f"({info.tokens:,} of {len(shard.tokens):,} tokens)"
            + ("" if summary[domain]["filtered"] else ", not filtered")
        )
    manifest["selection"] = {**selection, "kept": summary}
    manifest["complete"] = True
    manifest["updated"] = datetime.now(UTC).isoformat(timespec="seconds")
    _write_json(out / MANIFEST_FILE, manifest)
    return manifest


def check_output(out: Path, source: Path) -> None:
    """UserError unless `out` is new, empty, or an earlier selection (which is replaced), and is
    not the source dataset itself."""
    if out.resolve() == source.resolve():
        raise UserError(
            f"--out '{out}' is the dataset being selected from; write the selection elsewhere"
        )
    if out.is_file():
        raise UserError(f"--out '{out}' is a file; choose a folder")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not (out / SCORES_DIR).is_dir():
        raise UserError(
            f"--out '{out}' already exists and holds no selection made by `budgetlm select`; "
            "choose another --out or delete it"
        )


def _copy_shard(src: Path, dst: Path) -> None:
    """Copy a shard's two files (under temporary names, then renamed)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    for a, b in zip(shard_files(src), shard_files(dst), strict=True):
        tmp = b.with_name(f".{b.name}.tmp-{os.getpid()}")
        shutil.copyfile(a, tmp)
        os.replace(tmp, b)


def _write_json(path: Path, value: Any) -> None:
    """Replace a JSON file atomically (temp file, fsync, rename)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(json.dumps(value, indent=2) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


__all__ = [
    "SCORES_DIR",
    "SCORES_FILE",
    "check_output",
    "choose_documents",
    "load_scores",
    "save_scores",
    "source_fingerprint",
    "write_selection",
]
