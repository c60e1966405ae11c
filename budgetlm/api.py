"""budgetlm's public functions; the CLI is a thin layer over these."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from budgetlm.budget.recipes import Recipe, get_recipe
from budgetlm.config import RunConfig, load_config
from budgetlm.data.cache import prepare_cached
from budgetlm.data.dataset import PreparedDataset
from budgetlm.data.mixture import TrainingData, from_dataset, with_replay
from budgetlm.data.prepare import prepare_dataset
from budgetlm.data.subset import lowest_scoring, subset_stream
from budgetlm.data.tokenizer import TOKENIZER_FILE, Tokenizer
from budgetlm.errors import UserError
from budgetlm.evaluate.exact_match import exact_match, tokenize_items
from budgetlm.evaluate.scoring import document_losses
from budgetlm.model.decoder import Decoder
from budgetlm.model.generate import generate as sample_tokens
from budgetlm.report.summary import read_metrics
from budgetlm.runner import (
    RunResult,
    find_resume_dir,
    resolve_device,
    run_training,
    trainer_autocast,
)
from budgetlm.train.checkpoint import (
    STATE_FILE,
    latest_checkpoint,
    list_checkpoints,
    load_optimizer,
    load_weights,
)

Log = Callable[[str], None]
CONTINUAL_EARLY_EVALS = [0.005, 0.01, 0.02, 0.03, 0.05, 0.075]
"""Extra evaluations early in a continual run, where the stability gap opens and closes."""
ARITH_ITEMS_PER_SKILL = 20


def prepare(
    sources: list[str],
    out: str | Path,
    vocab_size: int = 4096,
    val_fraction: float = 0.05,
    text_field: str = "text",
    seed: int = 0,
    tokenizer: str | Path | None = None,
    log: Log = print,
) -> dict:
    """Turn text sources into a prepared dataset directory; returns its manifest."""
    return prepare_dataset(
        sources,
        out,
        vocab_size=vocab_size,
        val_fraction=val_fraction,
        text_field=text_field,
        seed=seed,
        tokenizer=tokenizer,
        log=log,
    )


def pretrain(config: RunConfig | None = None, resume: bool = False, log: Log = print) -> RunResult:
    """Pre-train a model from scratch within the configured budget (or resume a killed run),
    then write samples and print a summary."""
    config = copy.deepcopy(config) if config else RunConfig()
    run_dir = None
    if resume:
        run_dir, config = _resume(config, log)
        if config.continual.from_run:
            return continue_pretraining(config, resume=True, log=log)
    elif config.continual.from_run:
        raise UserError("continual.from_run is set: use `budgetlm continue` for continued training")
    t0 = time.perf_counter()
    dataset = _open_data(config, tokenizer=None, log=log)
    data = from_dataset(dataset, config.data.weights)
    return run_training(
        config,
        data,
        dataset.path / TOKENIZER_FILE,
        run_dir,
        log,
        data_seconds=time.perf_counter() - t0,
        extra_evaluation=_arith_evaluation(dataset.tokenizer, [dataset]),
    )


def continue_pretraining(config: RunConfig, resume: bool = False, log: Log = print) -> RunResult:
    """Train an existing run's model further on new data with a continual pre-training recipe
    (replay, LR re-warming, or continuing a pre-decay checkpoint), measuring the stability gap
    on the new domains and forgetting on the old ones."""
    config = copy.deepcopy(config)
    run_dir = None
    if resume:
        run_dir, config = _resume(config, log)
    cont = config.continual
    if not cont.from_run:
        raise UserError("continue needs --from RUN_DIR: the budgetlm run whose model to train on")
    parent = Path(cont.from_run)
    parent_config = load_config(_run_config_path(parent, "--from"))
    recipe = get_recipe(cont.recipe)
    tokenizer_path = parent / TOKENIZER_FILE
    t0 = time.perf_counter()
    new = _open_data(config, tokenizer=tokenizer_path, log=log)
    old = _replay_data(parent, parent_config, cont.replay, tokenizer_path, log)
    ratio = recipe.replay_ratio if cont.replay_ratio is None else cont.replay_ratio
    if old is None and ratio > 0:
        log(
            f"the data {parent} was trained on is not available for replay: continuing without "
            "replay. The closest remedy is to pass similar data with --replay SOURCES "
            "(forgetting cannot be measured without it either)"
        )
        ratio = 0.0
    data = with_replay(new, old, ratio)
    _apply_recipe(config, parent_config, recipe)
    checkpoint = _parent_checkpoint(parent, recipe)
    fraction = recipe.subset_fraction if cont.subset_fraction is None else cont.subset_fraction
    if fraction < 1:
        _keep_best_documents(data, new, config, checkpoint, fraction, log)
    log(
        f"continuing {parent} from {checkpoint.name} with recipe '{cont.recipe}': "
        f"{recipe.description}; replay ratio {ratio:g}"
    )

    def init(model: Decoder, optimizer: torch.optim.Optimizer) -> None:
        load_weights(checkpoint, model)
        load_optimizer(checkpoint, optimizer)

    datasets = [new] + ([old] if old is not None else [])
    return run_training(
        config,
        data,
        tokenizer_path,
        run_dir,
        log,
        data_seconds=time.perf_counter() - t0,
        init=init,
        extra_evaluation=_arith_evaluation(new.tokenizer, datasets),
        start_fields={
            "parent": str(parent),
            "parent_checkpoint": checkpoint.name,
            "recipe": cont.recipe,
            "replay_ratio": ratio,
            "parent_final_val_loss": _final_val_loss(parent),
        },
    )


def load_model(run_dir: str | Path, device: str = "cpu") -> Decoder:
    """The trained model of a run (its newest valid checkpoint), in eval mode."""
    run_dir = Path(run_dir)
    config = load_config(_run_config_path(run_dir))
    found = latest_checkpoint(run_dir)
    if found is None:
        raise UserError(f"run {run_dir} has no checkpoint yet; train it first")
    model = Decoder(config.model.resolved())
    load_weights(found[0], model)
    return model.to(device).eval()


def load_tokenizer(run_dir: str | Path) -> Tokenizer:
    """The tokenizer a run was trained with."""
    return Tokenizer.load(Path(run_dir) / TOKENIZER_FILE)


def generate(
    run_dir: str | Path,
    prompt: str,
    max_new_tokens: int = 200,
    temperature: float = 0.8,
    top_k: int | None = 50,
    seed: int = 0,
) -> str:
    """Continue `prompt` with a trained run's model; returns the new text only."""
    model = load_model(run_dir)
    tokenizer = load_tokenizer(run_dir)
    ids = tokenizer.encode(prompt)
    if tokenizer.bos_id is not None:
        ids = [tokenizer.bos_id, *ids]
    ids = ids or [tokenizer.eos_id]
    generator = torch.Generator().manual_seed(seed)
    new = sample_tokens(model, ids, max_new_tokens, temperature, top_k, tokenizer.eos_id, generator)
    return tokenizer.decode(new)


def _resume(config: RunConfig, log: Log) -> tuple[Path, RunConfig]:
    run_dir = find_resume_dir(config)
    log(f"resuming {run_dir}")
    return run_dir, load_config(run_dir / "config.yaml")


def _open_data(config: RunConfig, tokenizer: Path | None, log: Log) -> PreparedDataset:
    """The prepared dataset of config.data (prepared and cached from its sources if needed),
    tokenized with `tokenizer` when given."""
    data = config.data
    if data.prepared:
        dataset = PreparedDataset(data.prepared)
        if (
            tokenizer is not None
            and dataset.tokenizer.fingerprint != Tokenizer.load(tokenizer).fingerprint
        ):
            raise UserError(
                f"the prepared dataset {data.prepared} was tokenized with another tokenizer than "
                f"the model's ({tokenizer}); prepare it with `budgetlm prepare --tokenizer "
                f"{tokenizer} ...` or pass the raw sources with --data"
            )
        return dataset
    if not data.sources:
        raise UserError("no training data: pass --data SOURCE... or --prepared DIR")
    path = prepare_cached(
        data.sources,
        data.vocab_size,
        data.val_fraction,
        data.text_field,
        data.seed,
        data.cache_dir,
        log,
        tokenizer=tokenizer,
    )
    return PreparedDataset(path)


def _replay_data(
    parent: Path, parent_config: RunConfig, replay: list[str] | None, tokenizer: Path, log: Log
) -> PreparedDataset | None:
    """The data to replay: the given sources, else exactly the data the parent trained on
    (its prepared directory, or its sources re-prepared); None when that is gone."""
    if replay:
        replay_config = copy.deepcopy(parent_config)
        replay_config.data.sources, replay_config.data.prepared = replay, None
        return _open_data(replay_config, tokenizer, log)
    start = _start_record(parent)
    used = start.get("data", {}) if start else {}
    dirs = sorted(set(used.values())) if isinstance(used, dict) else [used]
    if len(dirs) == 1 and (Path(dirs[0]) / "manifest.json").is_file():
        return PreparedDataset(dirs[0])
    try:
        return _open_data(parent_config, tokenizer, log)
    except UserError as e:
        log(f"cannot re-read the original data: {e}")
        return None


def _apply_recipe(config: RunConfig, parent: RunConfig, recipe: Recipe) -> None:
    """The continual run keeps the parent's model and peak LR and takes the recipe's schedule."""
    config.model = parent.model
    config.train.lr = config.continual.lr if config.continual.lr is not None else parent.train.lr
    config.train.schedule = recipe.schedule
    config.train.warmup_fraction = recipe.warmup_fraction
    config.train.decay_fraction = recipe.decay_fraction
    if not config.eval.early:
        config.eval.early = list(CONTINUAL_EARLY_EVALS)


def _keep_best_documents(
    data: TrainingData,
    new: PreparedDataset,
    config: RunConfig,
    checkpoint: Path,
    fraction: float,
    log: Log,
) -> None:
    """Replace each new domain's training stream by its `fraction` of documents with the lowest
    loss under the model being continued (quality filtering with the model as reference)."""
    model = Decoder(config.model.resolved())
    load_weights(checkpoint, model)
    device = resolve_device(config.train.device)
    model.to(device)
    for domain in data.new_domains:
        shard = new.shard("train", domain)
        scores = document_losses(
            model, shard, config.model.seq_len, device, trainer_autocast(config, device)
        )
        chosen = lowest_scoring(scores, fraction)
        data.train[domain] = subset_stream(shard, chosen)
        log(
            f"{domain}: training on {len(chosen):,} of {shard.num_documents:,} documents "
            f"({len(data.train[domain]):,} of {len(shard.tokens):,} tokens), lowest loss first"
        )


def _parent_checkpoint(parent: Path, recipe: Recipe) -> Path:
    """The parent's checkpoint the recipe starts from ('final' or 'pre_decay')."""
    for path in reversed(list_checkpoints(parent)):
        tags = json.loads((path / STATE_FILE).read_text(encoding="utf-8")).get("tags", [])
        if recipe.checkpoint in tags:
            return path
    if recipe.checkpoint == "pre_decay":
        raise UserError(
            f"run {parent} has no pre-decay checkpoint, which recipe '{recipe.name}' continues "
            "from; use --recipe rewarm or --recipe replay (they start from the final model)"
        )
    raise UserError(f"run {parent} has no final checkpoint; finish it first (`--resume`)")


def _arith_evaluation(tokenizer: Tokenizer, datasets: list[PreparedDataset]):
    """Exact-match accuracy per arithmetic skill when builtin:arith is among the data."""
    if not any("builtin:arith" in s["spec"] for d in datasets for s in d.manifest["sources"]):
        return None
    from budgetlm.data.arith import SKILLS, arith_eval_set

    tasks = {
        f"arith/{skill}": tokenize_items(
            arith_eval_set(skill, ARITH_ITEMS_PER_SKILL), tokenizer.encode
        )
        for skill in SKILLS
    }

    def build(device: torch.device, autocast: Callable) -> Callable[[torch.nn.Module], dict]:
        def evaluate(model: torch.nn.Module) -> dict[str, Any]:
            accuracy = {
                name: exact_match(model, items, device, autocast) for name, items in tasks.items()
            }
            accuracy["arith"] = sum(accuracy.values()) / len(accuracy)
            return {"accuracy": accuracy}

        return evaluate

    return build


def _final_val_loss(run_dir: Path) -> dict[str, float]:
    """The validation losses of a run's final model (its last evaluation)."""
    evals = [r for r in read_metrics(run_dir) if r["type"] == "eval"]
    return evals[-1]["val_loss"] if evals else {}


def _start_record(run_dir: Path) -> dict | None:
    if not (run_dir / "metrics.jsonl").is_file():
        return None
    return next((r for r in read_metrics(run_dir) if r["type"] == "start"), None)


def _run_config_path(run_dir: Path, flag: str = "--run") -> Path:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise UserError(f"{run_dir} is not a budgetlm run directory (no config.yaml); check {flag}")
    return path


__all__ = [
    "RunResult",
    "prepare",
    "pretrain",
    "continue_pretraining",
    "generate",
    "load_model",
    "load_tokenizer",
]
