"""Atomic checkpoints: weights in safetensors, optimizer state loaded with weights_only=True,
training state in JSON; each file's sha256 is recorded so corrupt checkpoints are skipped."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, load_model, save_model

from budgetlm.errors import UserError

MODEL_FILE = "model.safetensors"
OPTIM_FILE = "optim.pt"
STATE_FILE = "state.json"


class CorruptCheckpoint(Exception):
    """A checkpoint whose files are missing or do not match their recorded hashes."""


def checkpoint_root(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | dict[str, Any] | None,
    state: dict[str, Any],
) -> Path:
    """Write checkpoints/step_NNNNNN in a temporary directory, then rename it into place.
    `optimizer` is an optimizer or its state dict (as gathered from a sharded run)."""
    root = checkpoint_root(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:06d}"
    tmp = root / f".tmp-step_{step:06d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_model(model, str(tmp / MODEL_FILE))
    files = [MODEL_FILE]
    if optimizer is not None:
        torch.save(
            {
                "optimizer": optimizer if isinstance(optimizer, dict) else optimizer.state_dict(),
                "torch_rng": torch.get_rng_state(),
            },
            tmp / OPTIM_FILE,
        )
        files.append(OPTIM_FILE)
    record = dict(state, step=step, files={name: _sha256(tmp / name) for name in files})
    (tmp / STATE_FILE).write_text(json.dumps(record, indent=1), encoding="utf-8")
    _fsync_dir(tmp)
    if final.exists():
        old = root / f".old-step_{step:06d}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old)
    else:
        os.replace(tmp, final)
    _fsync_dir(root)
    return final


def list_checkpoints(run_dir: str | Path) -> list[Path]:
    """Complete checkpoint directories, oldest first (temporary ones are ignored)."""
    root = checkpoint_root(run_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.glob("step_*") if p.is_dir() and (p / STATE_FILE).is_file()]
    return sorted(found, key=lambda p: p.name)


def read_state(path: str | Path) -> dict[str, Any]:
    """The training state of a checkpoint, checking that its files match their hashes."""
    path = Path(path)
    try:
        state = json.loads((path / STATE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CorruptCheckpoint(f"{path / STATE_FILE}: {e}") from None
    for name, digest in state.get("files", {}).items():
        if not (path / name).is_file() or _sha256(path / name) != digest:
            raise CorruptCheckpoint(f"{path / name} is missing or does not match its sha256")
    return state


def latest_checkpoint(run_dir: str | Path, log=print) -> tuple[Path, dict[str, Any]] | None:
    """The newest checkpoint that passes its hash check; corrupt ones are reported and skipped."""
    for path in reversed(list_checkpoints(run_dir)):
        try:
            return path, read_state(path)
        except CorruptCheckpoint as e:
            log(f"skipping corrupt checkpoint {path.name}: {e}")
    return None


def load_weights(
    path: str | Path,
    model: torch.nn.Module,
    transform: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]] | None = None,
) -> None:
    """Load a checkpoint's weights into `model`, with a clear error on an architecture mismatch;
    `transform(state, target)` may fit the state to the model first (more vocabulary rows)."""
    file = Path(path) / MODEL_FILE if Path(path).is_dir() else Path(path)
    try:
        if transform is None:
            load_model(model, str(file), strict=True)
        else:
            target = model.state_dict()
            state = transform(load_file(str(file)), target)
            if getattr(getattr(model, "config", None), "tie_embeddings", False):
                shared = state.get("tok_emb.weight", state.get("lm_head.weight"))
                state["tok_emb.weight"] = state["lm_head.weight"] = shared
            model.load_state_dict(state, strict=True)
    except (RuntimeError, SafetensorError) as e:
        first = str(e).strip().splitlines()[0][:300]
        raise UserError(
            f"checkpoint {file} does not fit this model ({first}); it was written by a model of "
            "another shape: use the model config it was trained with (its run's config.yaml)"
        ) from None


def read_optimizer_state(path: str | Path) -> dict[str, Any]:
    """A checkpoint's optimizer state dict and RNG state ({"optimizer", "torch_rng"}), read with
    torch.load(weights_only=True): tensors and plain containers only, no pickled code."""
    return torch.load(Path(path) / OPTIM_FILE, map_location="cpu", weights_only=True)


def load_optimizer(
    path: str | Path,
    optimizer: torch.optim.Optimizer,
    load: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Restore optimizer and RNG state; `load` replaces `optimizer.load_state_dict` (a sharded
    model loads the full state into its shards)."""
    blob = read_optimizer_state(path)
    try:
        (load or optimizer.load_state_dict)(blob["optimizer"])
    except (ValueError, KeyError, RuntimeError) as e:
        raise UserError(
            f"the optimizer state in {path} does not fit this run's optimizer "
            f"({str(e).splitlines()[0][:200]}); it was saved by another train.optimizer "
            "(adamw or muon) or model: use the settings in that run's config.yaml"
        ) from None
    torch.set_rng_state(blob["torch_rng"])


def prune_checkpoints(run_dir: str | Path, keep_last: int) -> None:
    """Delete periodic checkpoints beyond the newest `keep_last`; tagged ones always stay."""
    periodic = [p for p in list_checkpoints(run_dir) if not _tags(p)]
    for path in periodic[: max(0, len(periodic) - keep_last)]:
        shutil.rmtree(path)


def _tags(path: Path) -> list[str]:
    try:
        return json.loads((path / STATE_FILE).read_text(encoding="utf-8")).get("tags", [])
    except (OSError, ValueError):
        return []


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    for child in path.iterdir() if path.is_dir() else []:
        if child.is_file():
            with open(child, "rb") as f:
                os.fsync(f.fileno())
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
