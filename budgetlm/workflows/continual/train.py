"""`budgetlm continue`: train an existing model further on new data with a continual
pre-training recipe (recipes.py), replaying old data (replay.py) from the parent (parent.py),
and hand one training job to job/run.py, which measures the stability gap and forgetting."""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch

from budgetlm.budget.spec import parse_budget
from budgetlm.config import RunConfig
from budgetlm.data.feed.streams import TrainingData, with_replay
from budgetlm.data.store.dataset import PreparedDataset
from budgetlm.data.store.subset import lowest_scoring, subset_stream
from budgetlm.errors import UserError
from budgetlm.evaluate.arith import arith_evaluation
from budgetlm.evaluate.scoring import document_losses
from budgetlm.io import Log
from budgetlm.job.decide import trainer_autocast
from budgetlm.job.run import RunResult, run_training
from budgetlm.machine.device import resolve_device
from budgetlm.model.build import LanguageModel, build_model
from budgetlm.model.config import ADAPTER_FIELDS
from budgetlm.run.directory import open_resume
from budgetlm.workflows.continual.parent import HF_DEFAULT_LR, Parent, open_parent
from budgetlm.workflows.continual.recipes import Recipe, get_recipe
from budgetlm.workflows.continual.replay import replay_data
from budgetlm.workflows.continual.vocab import (
    check_extension_settings,
    plan_vocabulary,
    train_bytes_per_token,
)
from budgetlm.workflows.data import open_data

CONTINUAL_EARLY_EVALS = [0.005, 0.01, 0.02, 0.03, 0.05, 0.075]
"""Extra evaluations early in a continual run, where the stability gap opens and closes."""


def continue_pretraining(
    config: RunConfig,
    resume: bool = False,
    log: Log = print,
    settings: Sequence[tuple[str, Any]] = (),
    started_at: float | None = None,
) -> RunResult:
    """Train an existing model (a budgetlm run or a Hugging Face Llama/Mistral/Qwen2 folder)
    further on new data with a continual pre-training recipe (replay, LR re-warming, or
    continuing a pre-decay checkpoint), measuring the stability gap on the new domains and
    forgetting on the old ones."""
    started_at = time.perf_counter() if started_at is None else started_at
    config = copy.deepcopy(config)
    parse_budget(config.budget)  # a bad budget fails before any data work
    run_dir = None
    if resume:
        run_dir, config = open_resume(config, log, settings)
    cont = config.continual
    if config.growth.from_run:
        raise UserError(
            "growth.from_run (--grow-from) starts a `budgetlm pretrain` run; `continue` trains "
            "the model of --from as it is"
        )
    if not cont.from_run:
        raise UserError(
            "continue needs --from RUN_DIR|HF_DIR: the budgetlm run or Hugging Face model to "
            "train further"
        )
    parent = open_parent(cont.from_run, cont.seq_len, cont.backend, cont.trust_remote_code)
    recipe = get_recipe(cont.recipe)
    start = parent.start_point(recipe)  # fails early when the recipe cannot start from it
    if cont.extend_vocab:
        check_extension_settings(config)
    t0 = time.perf_counter()
    new = open_data(config, tokenizer=parent.tokenizer, log=log)
    vocab = None
    if cont.extend_vocab:
        vocab = plan_vocabulary(config, parent.tokenizer, parent.model.vocab_size, new, log)
        new = open_data(config, tokenizer=vocab.tokenizer, log=log)  # re-tokenized
    tokenizer = vocab.tokenizer if vocab else parent.tokenizer
    old = replay_data(parent, config, cont.replay, log, tokenizer)
    ratio = recipe.replay_ratio if cont.replay_ratio is None else cont.replay_ratio
    if old is None and ratio > 0:
        log(
            f"the data {parent.source} was trained on is not available for replay: continuing "
            "without replay. The closest remedy is to pass similar data with --replay SOURCES "
            "(forgetting cannot be measured without it either)"
        )
        ratio = 0.0
    data = with_replay(new, old, ratio, config.data.weights)
    apply_recipe(config, parent, recipe, log)
    transform = None
    if vocab is not None:
        vocab.fit_model(config)
        streams = [new.tokens("train", d) for d in new.domains]
        transform = vocab.transform(streams, config.train.seed)
    load = parent.weight_loader(recipe, transform)
    fraction = recipe.subset_fraction if cont.subset_fraction is None else cont.subset_fraction
    if fraction < 1:
        keep_best_documents(data, new, config, load, fraction, log)
    log(
        f"continuing {parent.source} from {start} with recipe '{cont.recipe}': "
        f"{recipe.description}; replay ratio {ratio:g}; peak LR {config.train.lr:g}"
    )

    def init(model: LanguageModel, optimizer: torch.optim.Optimizer) -> None:
        load(model)
        if vocab is None:  # the parent's moments are of the old vocabulary's shapes
            parent.restore_optimizer(recipe, optimizer)

    datasets = [new] + ([old] if old is not None else [])
    return run_training(
        config,
        data,
        tokenizer,
        run_dir,
        log,
        data_seconds=time.perf_counter() - t0,
        started_at=started_at,
        init=init,
        extra_evaluation=arith_evaluation(new.tokenizer, datasets),
        start_fields={
            "parent": str(parent.path),
            "parent_checkpoint": start,
            "recipe": cont.recipe,
            "replay_ratio": ratio,
            # a grown vocabulary tokenizes the old text anew: its loss per token is measured
            # against this run's start, and against the parent's in bits per byte only
            "parent_final_val_loss": {} if vocab else parent.final_val_loss,
            "parent_final_val_bpb": parent.final_val_bpb,
            **(vocab.start_fields(train_bytes_per_token(new, new.tokenizer)) if vocab else {}),
        },
        step_rule=vocab.step_rule(config) if vocab else None,
    )


def apply_recipe(config: RunConfig, parent: Parent, recipe: Recipe, log: Log) -> None:
    """The continual run keeps the parent's model (with the adapter this run asks for) and peak
    LR, and takes the recipe's schedule."""
    adapter = {key: getattr(config.model, key) for key in ADAPTER_FIELDS}
    config.model = dataclasses.replace(parent.model, **adapter)
    if config.continual.lr is not None:
        config.train.lr = config.continual.lr
    elif parent.lr is not None:
        config.train.lr = parent.lr
    else:
        config.train.lr = HF_DEFAULT_LR
        log(
            f"the peak LR {parent.source} was pre-trained with is unknown: using {HF_DEFAULT_LR:g}"
            " (set it with --continual.lr)"
        )
    if parent.config is not None:  # its optimizer state is loaded: it must be the same kind
        config.train.optimizer = parent.config.train.optimizer
        config.train.muon_lr_scale = parent.config.train.muon_lr_scale
    config.train.schedule = recipe.schedule
    config.train.warmup_fraction = recipe.warmup_fraction
    config.train.decay_fraction = recipe.decay_fraction
    if not config.eval.early:
        config.eval.early = list(CONTINUAL_EARLY_EVALS)


def keep_best_documents(
    data: TrainingData,
    new: PreparedDataset,
    config: RunConfig,
    load: Callable[[LanguageModel], None],
    fraction: float,
    log: Log,
) -> None:
    """Replace each new domain's training stream by its `fraction` of documents with the lowest
    loss under the model being continued (quality filtering with the model as reference)."""
    model = build_model(config.model.resolved())
    load(model)
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
