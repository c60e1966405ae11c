"""`budgetlm average`: a new run directory whose model is the uniform average of the last k
checkpoints of one run (LAWA; Sanyal et al., "Early Weight Averaging meets High Learning Rates
for LLM Pre-training", 2023) or of several runs' final models (a uniform model soup, Wortsman
et al., "Model soups", 2022; see train/averaging.py). The directory has the files `eval`,
`generate`, `export` and `load_model` read: config.yaml, tokenizer.json, metrics.jsonl and one
checkpoint tagged 'final' (weights only: continuing it starts fresh optimizer moments)."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from typing import Any

import torch

from budgetlm.config import RunConfig, save_config
from budgetlm.data.store.tokenizer import TOKENIZER_FILE, Tokenizer
from budgetlm.errors import UserError
from budgetlm.evaluate.loss import validation_loss
from budgetlm.io import Log
from budgetlm.model.build import build_model
from budgetlm.model.decoder import Decoder
from budgetlm.run.directory import load_run_config, require_run_dir
from budgetlm.run.files import CONFIG_FILE, METRICS_FILE
from budgetlm.run.records import MetricsLog, final_val_loss, start_record
from budgetlm.train.averaging import (
    RunningMean,
    average_checkpoints,
    final_checkpoint,
    last_checkpoints,
)
from budgetlm.train.checkpoint import load_weights, save_checkpoint
from budgetlm.train.precision import autocast
from budgetlm.workflows.data import gone_dirs, open_by_domain, trained_on

DECAYED = 0.5
"""An LR factor below this share of the largest averaged one marks a checkpoint as decayed."""


def average(
    out: str | Path,
    run: str | Path | None = None,
    last: int | None = None,
    runs: list[str | Path] | None = None,
    log: Log = print,
) -> dict[str, Any]:
    """Write `out`, a run directory whose model is the uniform average of `run`'s last `last`
    checkpoints (all when None; LAWA), or of the final models of `runs` (a model soup).
    Returns the record of what was averaged."""
    if (run is None) == (not runs):
        raise UserError("pass --run RUN [--last K] to average checkpoints, or --runs RUN_A RUN_B")
    if runs:
        if last is not None:
            raise UserError("--last applies to --run RUN; a soup averages each run's final model")
        return soup(list(runs), out, log)
    return average_last(run, out, last, log)


def average_last(run: str | Path, out: str | Path, last: int | None, log: Log = print) -> dict:
    """Write `out`, a run whose model is the mean of `run`'s newest `last` checkpoints (all of
    them when None); returns the "average" record it logs."""
    run_dir, out = require_run_dir(run, "--run"), _new_out(out, [run])
    config = load_run_config(run_dir, "--run")
    chosen = last_checkpoints(run_dir, last, log)
    sources = [_source(run_dir, path, state) for path, state in chosen]
    for s in sources:
        log(f"averaging {s['checkpoint']} (step {s['step']:,}, LR x{s['lr_factor']:.2f})")
    factors = [s["lr_factor"] for s in sources]
    if factors[-1] < DECAYED * max(factors):
        log(
            f"warning: the newest checkpoint was trained at LR x{factors[-1]:.2f} and older ones "
            f"at up to x{max(factors):.2f}: averaging a decayed model with less decayed ones "
            "usually makes it worse (BENCHMARKS.md); averaging helps runs with a constant LR "
            "(train.schedule constant)"
        )
    model, config = _averaged([path for path, _ in chosen], config, log)
    record = {"method": "last", "count": len(sources), "sources": sources}
    evaluation = _evaluate(model, config, run_dir, log)
    _write_run(out, config, run_dir, model, chosen[-1][1], record, evaluation)
    log(f"the average of {len(sources)} checkpoints of {run_dir} written to {out}")
    _compare(evaluation, {f"{run_dir} at step {sources[-1]['step']:,}": run_dir}, log)
    return record


def soup(runs: list[str | Path], out: str | Path, log: Log = print) -> dict:
    """Write `out`, a run whose model is the mean of the final models of `runs` (same shape
    and tokenizer); returns the "average" record it logs."""
    dirs = [require_run_dir(r, "--runs") for r in runs]
    if len({d.resolve() for d in dirs}) != len(dirs) or len(dirs) < 2:
        raise UserError(
            f"a soup needs two or more different runs, got {' '.join(map(str, runs))}; "
            "pass --runs RUN_A RUN_B ..."
        )
    out = _new_out(out, runs)
    configs = [load_run_config(d, "--runs") for d in dirs]
    _check_same_shape(dirs, configs)
    _check_same_tokenizer(dirs)
    finals = [final_checkpoint(d) for d in dirs]
    sources = [_source(d, path, state) for d, (path, state) in zip(dirs, finals, strict=True)]
    parents = {_parent(d) for d in dirs}
    if len(parents) != 1 or None in parents:
        log(
            "warning: these runs do not continue one common checkpoint (budgetlm continue "
            "--from the same run): a soup of independently trained models is usually worse than "
            "each of them (Wortsman et al. 2022); compare them with `budgetlm eval`"
        )
    model, config = _averaged([path for path, _ in finals], configs[0], log)
    record = {"method": "soup", "count": len(sources), "sources": sources}
    evaluation = _evaluate(model, config, dirs[0], log)
    newest = max((state for _, state in finals), key=lambda state: state["step"])
    _write_run(out, config, dirs[0], model, newest, record, evaluation)
    log(f"the soup of {len(sources)} runs written to {out}")
    _compare(evaluation, {str(d): d for d in dirs}, log)
    return record


def _averaged(paths: list[Path], config: RunConfig, log: Log) -> tuple[torch.nn.Module, RunConfig]:
    """The uniform average of the checkpoints' models, and the config of the run it makes.
    LoRA runs are averaged as their merged weights (base + B·A each): averaging A and B apart
    would not average the updates. The result is then a fully trained model (adapter none)."""
    model_config = config.model.resolved()
    if model_config.adapter != "lora":
        model = build_model(model_config)
        average_checkpoints(paths, model)
        return model, config
    from budgetlm.model.lora import merged

    log("LoRA checkpoints: averaging their merged weights; the average is a full model")
    plain = dataclasses.replace(model_config, adapter="none")
    mean = RunningMean()
    for path in paths:
        adapted = build_model(model_config)
        load_weights(path, adapted)
        mean.add({f"hf.{k}": v for k, v in merged(adapted.hf).state_dict().items()})
    model = build_model(plain)
    model.load_state_dict(mean.result())
    return model, dataclasses.replace(config, model=plain)


def _source(run_dir: Path, path: Path, state: dict) -> dict[str, Any]:
    return {
        "run": str(run_dir.resolve()),
        "checkpoint": path.name,
        "step": state["step"],
        "tokens": state.get("train", {}).get("tokens"),
        "lr_factor": state.get("lr_factor", 1.0),
    }


def _new_out(out: str | Path, sources: list[str | Path]) -> Path:
    """The output run directory, which must not exist yet (nothing a user has is overwritten)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"--out {out} already exists; choose a new run directory")
    if any(out.resolve() == Path(s).resolve() for s in sources):
        raise UserError(f"--out {out} is one of the runs averaged; choose a new run directory")
    return out


def _check_same_shape(dirs: list[Path], configs: list[RunConfig]) -> None:
    """Every run's model has the first's shape (all fields but the preset name)."""
    first = dataclasses.asdict(configs[0].model.resolved())
    for d, config in zip(dirs[1:], configs[1:], strict=True):
        other = dataclasses.asdict(config.model.resolved())
        differ = [k for k in first if k != "size" and first[k] != other[k]]
        if differ:
            shown = ", ".join(f"{k} {first[k]} vs {other[k]}" for k in differ)
            raise UserError(
                f"cannot average {dirs[0]} and {d}: their models differ ({shown}); a soup needs "
                "runs of one shape, e.g. continued from the same run with `budgetlm continue`"
            )


def _check_same_tokenizer(dirs: list[Path]) -> None:
    prints = [Tokenizer.load(d / TOKENIZER_FILE).fingerprint for d in dirs]
    for d, fingerprint in zip(dirs[1:], prints[1:], strict=True):
        if fingerprint != prints[0]:
            raise UserError(
                f"cannot average {dirs[0]} and {d}: they were trained with different tokenizers; "
                "a soup needs runs of one tokenizer (prepare their data with `--tokenizer`)"
            )


def _parent(run_dir: Path) -> tuple | None:
    """The checkpoint a run started from (continued or grown), None for a run from scratch."""
    start = start_record(run_dir) or {}
    for key in ("parent", "grown_from"):
        if start.get(key):
            return str(Path(start[key]).resolve()), start.get(f"{key}_checkpoint")
    return None


def _evaluate(model: Decoder, config: RunConfig, source: Path, log: Log) -> dict | None:
    """Held-out loss per domain of the averaged model, measured as the source run's training
    evaluations were (same tokens, precision and function), so the numbers compare; None when
    the data the run trained on is gone."""
    used = trained_on(source)
    if used is None:
        return None
    gone = gone_dirs(used)
    if gone:
        log(f"not evaluated: the data {source} trained on is gone ({', '.join(gone)})")
        return None
    streams = {domain: ds.tokens("val", domain) for domain, ds in open_by_domain(used).items()}
    device = torch.device("cpu")
    losses = validation_loss(
        model,
        streams,
        config.model.seq_len,
        config.eval.tokens_per_domain,
        config.eval.batch_size,
        device,
        lambda: autocast(device, config.train.precision),
    )
    return {"val_loss": losses}


def _compare(evaluation: dict | None, runs: dict[str, Path], log: Log) -> None:
    """Log the averaged model's held-out loss beside each source run's final evaluation."""
    if evaluation is None:
        return
    shown = ", ".join(f"{d} {v:.4f}" for d, v in evaluation["val_loss"].items())
    log(f"held-out loss of the average: {shown}")
    for name, run_dir in runs.items():
        final_loss = final_val_loss(run_dir)
        if final_loss:
            final = ", ".join(f"{d} {v:.4f}" for d, v in final_loss.items())
            log(f"  {name} (its last evaluation): {final}")


def _write_run(
    out: Path,
    config: RunConfig,
    source: Path,
    model: Decoder,
    newest: dict,
    record: dict,
    evaluation: dict | None,
) -> None:
    """Write the averaged run into a temporary directory, then rename it to `out`; its one
    checkpoint carries the step and training counters of the newest checkpoint averaged."""
    step = newest["step"]
    config = dataclasses.replace(config, name=out.name, out_dir=str(out.parent))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        save_config(config, tmp / CONFIG_FILE)
        shutil.copyfile(source / TOKENIZER_FILE, tmp / TOKENIZER_FILE)
        start = {k: v for k, v in (start_record(source) or {}).items() if k not in ("type", "time")}
        metrics = MetricsLog(tmp / METRICS_FILE)
        metrics.write("start", **start, averaged_from=record["sources"])
        metrics.write("average", **record)
        if evaluation is not None:  # as the training loop logs it, so reports can show it
            tokens = newest.get("train", {}).get("tokens")
            metrics.write("eval", step=step, tokens=tokens, **evaluation)
        metrics.close()
        state = {"tags": ["final"], "train": newest.get("train", {}), "average": record}
        save_checkpoint(tmp, step, model, None, state)
        if out.exists():
            out.rmdir()  # an empty directory, checked by _new_out
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
