"""`budgetlm eval`: a run's newest checkpoint measured on held-out data (the data it trained
on, or other data tokenized with its tokenizer), builtin:arith exact match, and
lm-evaluation-harness tasks; the result goes to the run's eval.json."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

from budgetlm.config import RunConfig
from budgetlm.data.store.dataset import PreparedDataset
from budgetlm.data.store.tokenizer import TOKENIZER_FILE
from budgetlm.errors import UserError
from budgetlm.evaluate.arith import arith_evaluation
from budgetlm.evaluate.bpb import bits_per_byte, bytes_per_token
from budgetlm.evaluate.harness import HarnessScorer, resolve_tasks, run_tasks
from budgetlm.evaluate.heldout import heldout_loss
from budgetlm.io import Log, write_text_atomic
from budgetlm.job.decide import trainer_autocast
from budgetlm.machine.device import resolve_device
from budgetlm.model.build import build_model
from budgetlm.run.directory import load_run_config
from budgetlm.run.files import EVAL_FILE, METRICS_FILE
from budgetlm.train.checkpoint import latest_checkpoint, load_weights
from budgetlm.workflows.data import gone_dirs, open_by_domain, open_data, trained_on
from budgetlm.workflows.trained import load_tokenizer


def evaluate(
    run_dir: str | Path,
    tasks: list[str] | None = None,
    data: list[str] | None = None,
    prepared: str | Path | None = None,
    limit: int | None = None,
    tokens_per_domain: int | None = None,
    log: Log = print,
) -> dict[str, Any]:
    """Evaluate a run's newest checkpoint: held-out loss per domain (nats per token and bits per
    byte) on the validation split of
    the data it trained on (or of `data` sources / a `prepared` dataset, tokenized with its
    tokenizer), all of it or `tokens_per_domain` tokens; exact-match accuracy on builtin:arith
    when present; lm-evaluation-harness `tasks` (at most `limit` items each) on the model in
    memory. Writes the result to the run's eval.json and returns it."""
    run_dir = Path(run_dir)
    config = load_run_config(run_dir, "--run")
    if data and prepared:
        raise UserError("pass --data SOURCE... or --prepared DIR, not both")
    for name, value in (("--tokens-per-domain", tokens_per_domain), ("--limit", limit)):
        if value is not None and value < 1:
            raise UserError(f"{name} must be a positive number, got {value}")
    found = latest_checkpoint(run_dir, log)
    if found is None:
        raise UserError(f"run {run_dir} has no checkpoint yet; train it first")
    selection = resolve_tasks(tasks) if tasks else None  # fails before any data or model work
    tokenizer = load_tokenizer(run_dir)
    datasets = eval_datasets(run_dir, config, data, prepared, log)
    device = resolve_device(config.train.device)
    model = build_model(config.model.resolved())
    load_weights(found[0], model)
    model.to(device).eval()
    autocast = trainer_autocast(config, device)
    log(f"evaluating {run_dir} ({found[0].name}, {device}) on {', '.join(datasets)}")
    t0 = time.perf_counter()
    task_metrics = None
    if selection is not None:  # first: lm-eval's task loading is what fails in practice
        scorer = HarnessScorer(model, tokenizer, device, autocast, config.eval.batch_size)
        task_metrics = run_tasks(scorer, selection, limit, log)
    streams = {domain: dataset.tokens("val", domain) for domain, dataset in datasets.items()}
    losses, counts = heldout_loss(
        model,
        streams,
        config.model.seq_len,
        tokens_per_domain,
        config.eval.batch_size,
        device,
        autocast,
        log,
    )
    compression = {  # heldout_loss scores stream[1 : count + 1] of each domain
        d: bytes_per_token(tokenizer, streams[d][1 : counts[d] + 1]) for d in losses
    }
    result: dict[str, Any] = {
        "run": str(run_dir.resolve()),
        "checkpoint": found[0].name,
        "step": found[1]["step"],
        "data": {domain: str(dataset.path) for domain, dataset in datasets.items()},
        "val_loss": losses,
        "val_bpb": bits_per_byte(losses, compression),
        "bytes_per_token": compression,
        "val_tokens": counts,
    }
    arith = arith_evaluation(tokenizer, list({id(d): d for d in datasets.values()}.values()))
    if arith is not None:
        result.update(arith(device, autocast)(model))
    if task_metrics is not None:
        result["tasks"] = task_metrics
        result["limit"] = limit
    result["seconds"] = round(time.perf_counter() - t0, 3)
    write_text_atomic(run_dir / EVAL_FILE, json.dumps(result, indent=2) + "\n")
    return result


def eval_datasets(
    run_dir: Path, config: RunConfig, data: list[str] | None, prepared: str | Path | None, log: Log
) -> dict[str, PreparedDataset]:
    """The dataset of each domain to evaluate on: `data` sources prepared (and cached) with the
    run's tokenizer, a `prepared` directory tokenized with it, or else the data the run trained
    on (its metrics.jsonl start record)."""
    if data or prepared:
        eval_config = copy.deepcopy(config)
        eval_config.data.sources = list(data or [])
        eval_config.data.prepared = str(prepared) if prepared else None
        dataset = open_data(eval_config, run_dir / TOKENIZER_FILE, log)
        return {domain: dataset for domain in dataset.domains}
    used = trained_on(run_dir)
    if used is None:
        raise UserError(
            f"{run_dir / METRICS_FILE} records no training data to evaluate on; pass "
            "--data SOURCE... or --prepared DIR"
        )
    gone = gone_dirs(used)
    if gone:
        again = f"--data {' '.join(config.data.sources)}" if config.data.sources else ""
        raise UserError(
            f"the data run {run_dir} trained on is gone ({', '.join(gone)}); evaluate on "
            + (f"its sources with {again}, or on " if again else "")
            + "other data with --data SOURCE... or --prepared DIR"
        )
    return open_by_domain(used)
