"""Create, find and open run directories: the one place that knows what makes a folder a run."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from budgetlm.config import RESUME_SETTINGS, RunConfig, load_config
from budgetlm.errors import UserError
from budgetlm.io import Log
from budgetlm.run.files import CONFIG_FILE


def is_run_dir(path: str | Path) -> bool:
    """Whether `path` is a budgetlm run directory (it holds the run's config.yaml)."""
    return (Path(path) / CONFIG_FILE).is_file()


def require_run_dir(path: str | Path, flag: str) -> Path:
    """`path` as a Path, or a UserError naming `flag` when it is not a run directory."""
    path = Path(path)
    if not is_run_dir(path):
        raise UserError(
            f"{flag} {path} is not a budgetlm run directory (no {CONFIG_FILE}); pass a directory "
            "written by `budgetlm pretrain` or `budgetlm continue`"
        )
    return path


def load_run_config(
    run_dir: str | Path, flag: str, overrides: Sequence[tuple[str, Any]] = ()
) -> RunConfig:
    """The saved config of the run at `run_dir` (checked with `require_run_dir`), with
    `overrides` applied as dotted keys."""
    return load_config(require_run_dir(run_dir, flag) / CONFIG_FILE, list(overrides))


def run_dir_of(config: RunConfig) -> Path:
    """Where the run of `config` lives: out_dir/name."""
    return Path(config.out_dir) / str(config.name)


def new_run_dir(config: RunConfig) -> Path:
    """out_dir/name for a new run (name defaults to size and start time); never an existing run."""
    if config.name is None:
        config.name = f"{config.model.size}-{datetime.now():%Y%m%d-%H%M%S}"
    run_dir = run_dir_of(config)
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UserError(
            f"run directory {run_dir} already exists; pass --resume to continue it, or choose "
            "another --out"
        )
    return run_dir


def find_resume_dir(config: RunConfig) -> Path:
    """The run to resume: out_dir/name when named, else the newest run under out_dir."""
    out = Path(config.out_dir)
    if config.name is not None:
        run_dir = out / config.name
    elif is_run_dir(out):
        run_dir = out
    else:
        runs = [p.parent for p in out.glob(f"*/{CONFIG_FILE}")] if out.is_dir() else []
        if not runs:
            raise UserError(f"--resume: no run found under {out}; pass --out RUN_DIR")
        run_dir = max(runs, key=lambda p: (p / CONFIG_FILE).stat().st_mtime)
    if not is_run_dir(run_dir):
        raise UserError(
            f"--resume: {run_dir} is not a budgetlm run (no {CONFIG_FILE}); check --out"
        )
    return run_dir


def open_resume(
    config: RunConfig, log: Log, settings: Sequence[tuple[str, Any]] = ()
) -> tuple[Path, RunConfig]:
    """The run directory to resume and its saved config, with `settings` applied (only keys of
    RESUME_SETTINGS: they change how steps run, not what they compute)."""
    unknown = [key for key, _ in settings if key not in RESUME_SETTINGS]
    if unknown:
        raise UserError(
            f"--resume cannot change {', '.join(unknown)}: a resumed run keeps its saved "
            f"{CONFIG_FILE} except {', '.join(RESUME_SETTINGS)}"
        )
    run_dir = find_resume_dir(config)
    log(f"resuming {run_dir}" + "".join(f"; {key} = {value}" for key, value in settings))
    return run_dir, load_config(run_dir / CONFIG_FILE, list(settings))
