"""budgetlm's public functions; the CLI is a thin layer over these."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from budgetlm.budget.sizing import Plan
from budgetlm.budget.spec import parse_budget
from budgetlm.config import (
    RESUME_SETTINGS,
    RunConfig,
    load_config,
    save_config,
    write_text_atomic,
)
from budgetlm.data.config import CleaningConfig
from budgetlm.data.feed.mixture_file import mixture_weights as read_mixture_weights
from budgetlm.data.feed.streams import TrainingData, from_dataset, with_replay
from budgetlm.data.prepare.build import prepare_dataset
from budgetlm.data.prepare.cache import prepare_cached
from budgetlm.data.store.dataset import PreparedDataset
from budgetlm.data.store.subset import lowest_scoring, subset_stream
from budgetlm.data.store.tokenizer import TOKENIZER_FILE, Tokenizer
from budgetlm.errors import UserError
from budgetlm.evaluate.exact_match import exact_match, tokenize_items
from budgetlm.evaluate.harness import HarnessScorer, resolve_tasks, run_tasks
from budgetlm.evaluate.heldout import heldout_loss
from budgetlm.evaluate.scoring import document_losses
from budgetlm.job.run import (
    RunResult,
    find_resume_dir,
    resolve_device,
    run_training,
    trainer_autocast,
)
from budgetlm.model.config import AUTO_SIZE, ModelConfig
from budgetlm.model.decoder import Decoder
from budgetlm.model.generate import generate as sample_tokens
from budgetlm.report.build import ReportFiles, make_report
from budgetlm.report.summary import read_metrics
from budgetlm.train.checkpoint import (
    latest_checkpoint,
    load_weights,
)
from budgetlm.workflows.average import average_last, soup
from budgetlm.workflows.continual.parent import HF_DEFAULT_LR, Parent, open_parent
from budgetlm.workflows.continual.recipes import Recipe, get_recipe
from budgetlm.workflows.grow import open_growth_source
from budgetlm.workflows.mix.sampling import SearchSettings
from budgetlm.workflows.mix.search import search_mixture
from budgetlm.workflows.plan import plan_run, plan_table
from budgetlm.workflows.scale.sweep import SweepResult, check_grid, run_sweep
from budgetlm.workflows.select import select_data

Log = Callable[[str], None]
CONTINUAL_EARLY_EVALS = [0.005, 0.01, 0.02, 0.03, 0.05, 0.075]
"""Extra evaluations early in a continual run, where the stability gap opens and closes."""
ARITH_ITEMS_PER_SKILL = 20
EVAL_FILE = "eval.json"


def prepare(
    sources: list[str],
    out: str | Path,
    vocab_size: int = 4096,
    val_fraction: float = 0.05,
    text_field: str = "text",
    seed: int = 0,
    tokenizer: str | Path | None = None,
    cleaning: CleaningConfig | None = None,
    workers: int | None = None,
    log: Log = print,
) -> dict:
    """Turn text sources into a prepared dataset directory (or add sources to one, or finish
    an interrupted preparation); returns its manifest."""
    return prepare_dataset(
        sources,
        out,
        vocab_size=vocab_size,
        val_fraction=val_fraction,
        text_field=text_field,
        seed=seed,
        tokenizer=tokenizer,
        cleaning=cleaning,
        workers=workers,
        log=log,
    )


def pretrain(
    config: RunConfig | None = None,
    resume: bool = False,
    log: Log = print,
    settings: Sequence[tuple[str, Any]] = (),
    started_at: float | None = None,
) -> RunResult:
    """Pre-train a model from scratch within the configured budget (or resume a killed run, with
    `settings` from config.RESUME_SETTINGS changed), then write samples and print a summary.
    A time budget counts from `started_at` (time.perf_counter() when the command started)."""
    started_at = time.perf_counter() if started_at is None else started_at
    config = copy.deepcopy(config) if config else RunConfig()
    parse_budget(config.budget)  # a bad budget fails before any data work
    run_dir = None
    if resume:
        run_dir, config = _resume(config, log, settings)
        if config.continual.from_run:
            return continue_pretraining(config, resume=True, log=log, started_at=started_at)
    elif config.continual.from_run:
        raise UserError("continual.from_run is set: use `budgetlm continue` for continued training")
    grow = None
    if config.growth.from_run and not resume:  # checked before any data work
        grow = open_growth_source(config.growth.from_run, config.model)
        config.model = grow.target
        log(
            f"growing {grow.path} ({grow.config.model.n_layers} layers, {grow.checkpoint.name}) "
            f"{grow.factor}x deeper to {grow.target.n_layers} layers by stacking its blocks; "
            "the optimizer starts fresh"
        )
    tokenizer = grow.tokenizer if grow else None  # a grown run keeps the small run's tokenizer
    if resume and config.growth.from_run:
        tokenizer = run_dir / TOKENIZER_FILE
    t0 = time.perf_counter()
    dataset = _open_data(config, tokenizer=tokenizer, log=log)
    if config.model.size == AUTO_SIZE and parse_budget(config.budget).kind == "steps":
        config.model.size = ModelConfig().size  # steps fix no time, tokens or FLOPs to plan
        log(
            f"budget {config.budget} counts steps, which fix no time, tokens or FLOPs to size a "
            f"model for: training the default model ({config.model.size}); pass --model to choose"
        )
    elif config.model.size == AUTO_SIZE:
        planned, planned_config, law_name = plan_run(
            config, dataset, log=log, spent_seconds=time.perf_counter() - started_at
        )
        log(plan_table(planned, law_name))
        config = planned_config
    data = from_dataset(dataset, config.data.weights)
    return run_training(
        config,
        data,
        dataset.path / TOKENIZER_FILE,
        run_dir,
        log,
        data_seconds=time.perf_counter() - t0,
        started_at=started_at,
        init=grow.init if grow else None,
        extra_evaluation=_arith_evaluation(dataset.tokenizer, [dataset]),
        start_fields=grow.start_fields() if grow else None,
    )


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
        run_dir, config = _resume(config, log, settings)
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
    parent = open_parent(cont.from_run, cont.seq_len)
    recipe = get_recipe(cont.recipe)
    start = parent.start_point(recipe)  # fails early when the recipe cannot start from it
    t0 = time.perf_counter()
    new = _open_data(config, tokenizer=parent.tokenizer, log=log)
    old = _replay_data(parent, config, cont.replay, log)
    ratio = recipe.replay_ratio if cont.replay_ratio is None else cont.replay_ratio
    if old is None and ratio > 0:
        log(
            f"the data {parent.source} was trained on is not available for replay: continuing "
            "without replay. The closest remedy is to pass similar data with --replay SOURCES "
            "(forgetting cannot be measured without it either)"
        )
        ratio = 0.0
    data = with_replay(new, old, ratio, config.data.weights)
    _apply_recipe(config, parent, recipe, log)
    load = parent.weight_loader(recipe)
    fraction = recipe.subset_fraction if cont.subset_fraction is None else cont.subset_fraction
    if fraction < 1:
        _keep_best_documents(data, new, config, load, fraction, log)
    log(
        f"continuing {parent.source} from {start} with recipe '{cont.recipe}': "
        f"{recipe.description}; replay ratio {ratio:g}; peak LR {config.train.lr:g}"
    )

    def init(model: Decoder, optimizer: torch.optim.Optimizer) -> None:
        load(model)
        parent.restore_optimizer(recipe, optimizer)

    datasets = [new] + ([old] if old is not None else [])
    return run_training(
        config,
        data,
        parent.tokenizer,
        run_dir,
        log,
        data_seconds=time.perf_counter() - t0,
        started_at=started_at,
        init=init,
        extra_evaluation=_arith_evaluation(new.tokenizer, datasets),
        start_fields={
            "parent": str(parent.path),
            "parent_checkpoint": start,
            "recipe": cont.recipe,
            "replay_ratio": ratio,
            "parent_final_val_loss": parent.final_val_loss,
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


def export(run_dir: str | Path, out: str | Path) -> Path:
    """Write a run's trained model and tokenizer as a Hugging Face folder (Llama, or Qwen2 for
    models with q/k/v biases) that `transformers.AutoModelForCausalLM.from_pretrained` loads."""
    from budgetlm.model.hf_export import export_hf

    return export_hf(load_model(run_dir), load_tokenizer(run_dir), out)


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


def evaluate(
    run_dir: str | Path,
    tasks: list[str] | None = None,
    data: list[str] | None = None,
    prepared: str | Path | None = None,
    limit: int | None = None,
    tokens_per_domain: int | None = None,
    log: Log = print,
) -> dict[str, Any]:
    """Evaluate a run's newest checkpoint: held-out loss per domain on the validation split of
    the data it trained on (or of `data` sources / a `prepared` dataset, tokenized with its
    tokenizer), all of it or `tokens_per_domain` tokens; exact-match accuracy on builtin:arith
    when present; lm-evaluation-harness `tasks` (at most `limit` items each) on the model in
    memory. Writes the result to the run's eval.json and returns it."""
    run_dir = Path(run_dir)
    config = load_config(_run_config_path(run_dir))
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
    datasets = _eval_datasets(run_dir, config, data, prepared, log)
    device = resolve_device(config.train.device)
    model = Decoder(config.model.resolved())
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
    result: dict[str, Any] = {
        "run": str(run_dir.resolve()),
        "checkpoint": found[0].name,
        "step": found[1]["step"],
        "data": {domain: str(dataset.path) for domain, dataset in datasets.items()},
        "val_loss": losses,
        "val_tokens": counts,
    }
    arith = _arith_evaluation(tokenizer, list({id(d): d for d in datasets.values()}.values()))
    if arith is not None:
        result.update(arith(device, autocast)(model))
    if task_metrics is not None:
        result["tasks"] = task_metrics
        result["limit"] = limit
    result["seconds"] = round(time.perf_counter() - t0, 3)
    write_text_atomic(run_dir / EVAL_FILE, json.dumps(result, indent=2) + "\n")
    return result


def select(
    out: str | Path,
    keep: float,
    prepared: str | Path | None = None,
    target: str | list[str] | None = None,
    scores: str | Path | None = None,
    method: str | None = None,
    reference: str | Path | None = None,
    general: str | Path | None = None,
    domains: list[str] | None = None,
    proxy: str = "nano",
    proxy_budget: str = "2Mtok",
    proxy_seq_len: int = 256,
    score_tokens: int = 1024,
    seed: int = 0,
    log: Log = print,
) -> dict[str, Any]:
    """Keep the `keep` share of a prepared dataset's documents that reference models score as
    most target-like (method "loss" or "loss-diff", the default; see selector.py) and write
    them to `out` as a prepared dataset, validation data unchanged; or re-select from the
    scores an earlier selection stored (`scores`) without scoring again; returns the record."""
    return select_data(
        out,
        keep,
        prepared=prepared,
        target=target,
        scores=scores,
        method=method,
        reference=reference,
        general=general,
        domains=domains,
        proxy=proxy,
        proxy_budget=proxy_budget,
        proxy_seq_len=proxy_seq_len,
        score_tokens=score_tokens,
        seed=seed,
        log=log,
    )


def mix_search(
    config: RunConfig,
    target: str | list[str] | dict[str, float],
    out: str | Path,
    settings: SearchSettings | None = None,
    workers: int = 1,
    log: Log = print,
) -> dict[str, Any]:
    """Find the mixture of the data's domains that minimises the target's validation loss by
    regression over small proxy runs (RegMix; see mixer.py): `config` is the proxies' run
    config (data, model size, token budget); resumable in `out`; writes and returns mix.json."""
    settings = settings or SearchSettings()
    settings.check()  # before preparing any data
    dataset = _open_data(config, tokenizer=None, log=log)
    return search_mixture(config, dataset, target, out, settings, workers, log)


def plan(
    config: RunConfig,
    out: str | Path | None = None,
    law: str | Path | None = None,
    log: Log = print,
) -> tuple[Plan, RunConfig]:
    """What to train with config.budget on this machine: measures candidate model sizes' speed
    (cached), sizes the model by a scaling law, picks batch and LR, prints the alternatives and
    writes the run config to `out` (for `budgetlm pretrain --config`)."""
    dataset = _open_data(config, tokenizer=None, log=log)
    planned, planned_config, law_name = plan_run(config, dataset, law, log)
    log(plan_table(planned, law_name))
    if out is not None:
        save_config(planned_config, out)
        log(f"config written to {out}: run it with `budgetlm pretrain --config {out}`")
    return planned, planned_config


def scale(
    config: RunConfig,
    sizes: list[str],
    budgets: list[str],
    out: str | Path,
    predict: list[str] | None = None,
    target: list[str] | None = None,
    workers: int = 1,
    bootstrap: int = 200,
    remember: bool = True,
    log: Log = print,
) -> SweepResult:
    """Train a sweep of `sizes` (presets or WIDTHxDEPTH shapes) x token/step `budgets` in
    `out` (finished runs reused), fit L(N, D) = E + A/N^alpha + B/D^beta to their final
    validation losses with bootstrap uncertainty, save OUT/scaling_law.json (and, if `remember`,
    in the cache for `budgetlm plan`), plot it and predict the `predict` SIZE:BUDGET runs."""
    check_grid(sizes, budgets, config.train.batch_size * config.model.seq_len)  # before any data
    dataset = _open_data(config, tokenizer=None, log=log)
    return run_sweep(
        config, dataset, sizes, budgets, out, predict, target, workers, bootstrap, remember, log
    )


def mixture_weights(path: str | Path) -> dict[str, float]:
    """The weights of a mix.json (checked to be non-negative and sum to one), for
    data.weights; the domains are checked against the data when a run opens it."""
    return read_mixture_weights(path)


def average(
    out: str | Path,
    run: str | Path | None = None,
    last: int | None = None,
    runs: list[str | Path] | None = None,
    log: Log = print,
) -> dict[str, Any]:
    """Write `out`, a run directory whose model is the uniform average of `run`'s last `last`
    checkpoints (all when None; LAWA), or of the final models of `runs` (a model soup); see
    averager.py. Returns the record of what was averaged."""
    if (run is None) == (not runs):
        raise UserError("pass --run RUN [--last K] to average checkpoints, or --runs RUN_A RUN_B")
    if runs:
        if last is not None:
            raise UserError("--last applies to --run RUN; a soup averages each run's final model")
        return soup(list(runs), out, log)
    return average_last(run, out, last, log)


def report(
    runs: list[str | Path],
    out: str | Path | None = None,
    png: str | Path | None = None,
    markdown: str | Path | None = None,
    peak_flops: float | None = None,
) -> ReportFiles:
    """Write a self-contained HTML report of one run (default RUN/report.html) or of several
    compared (same tokenizer required), built from the run directories' files alone; PNG plots
    into `png`; a Markdown table of the final numbers into `markdown` ('-': returned only).
    MFU is shown only against a measured `peak_flops` (FLOP/s)."""
    return make_report(runs, out=out, png_dir=png, markdown=markdown, peak_flops=peak_flops)


def _eval_datasets(
    run_dir: Path, config: RunConfig, data: list[str] | None, prepared: str | Path | None, log: Log
) -> dict[str, PreparedDataset]:
    """The dataset of each domain to evaluate on: `data` sources prepared (and cached) with the
    run's tokenizer, a `prepared` directory tokenized with it, or else the data the run trained
    on (its metrics.jsonl start record)."""
    if data or prepared:
        eval_config = copy.deepcopy(config)
        eval_config.data.sources = list(data or [])
        eval_config.data.prepared = str(prepared) if prepared else None
        dataset = _open_data(eval_config, run_dir / TOKENIZER_FILE, log)
        return {domain: dataset for domain in dataset.domains}
    start = _start_record(run_dir)
    used = start.get("data") if start else None
    if not isinstance(used, dict) or not used:
        raise UserError(
            f"{run_dir / 'metrics.jsonl'} records no training data to evaluate on; pass "
            "--data SOURCE... or --prepared DIR"
        )
    gone = sorted({d for d in used.values() if not (Path(d) / "manifest.json").is_file()})
    if gone:
        again = f"--data {' '.join(config.data.sources)}" if config.data.sources else ""
        raise UserError(
            f"the data run {run_dir} trained on is gone ({', '.join(gone)}); evaluate on "
            + (f"its sources with {again}, or on " if again else "")
            + "other data with --data SOURCE... or --prepared DIR"
        )
    opened = {path: PreparedDataset(path) for path in sorted(set(used.values()))}
    return {domain: opened[path] for domain, path in used.items()}


def _resume(
    config: RunConfig, log: Log, settings: Sequence[tuple[str, Any]] = ()
) -> tuple[Path, RunConfig]:
    """The run directory to resume and its saved config, with `settings` applied (only keys of
    RESUME_SETTINGS: they change how steps run, not what they compute)."""
    unknown = [key for key, _ in settings if key not in RESUME_SETTINGS]
    if unknown:
        raise UserError(
            f"--resume cannot change {', '.join(unknown)}: a resumed run keeps its saved "
            f"config.yaml except {', '.join(RESUME_SETTINGS)}"
        )
    run_dir = find_resume_dir(config)
    log(f"resuming {run_dir}" + "".join(f"; {key} = {value}" for key, value in settings))
    return run_dir, load_config(run_dir / "config.yaml", list(settings))


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
        cleaning=data.clean,
    )
    return PreparedDataset(path)


def _replay_data(
    parent: Parent, config: RunConfig, replay: list[str] | None, log: Log
) -> PreparedDataset | None:
    """The data to replay: the given sources, else exactly the data the parent run trained on
    (its prepared directory, or its sources re-prepared); None when that is gone or unknown
    (a Hugging Face model's pre-training data)."""
    if replay:
        replay_config = copy.deepcopy(parent.config or config)
        replay_config.data.sources, replay_config.data.prepared = replay, None
        return _open_data(replay_config, parent.tokenizer, log)
    if parent.config is None:
        return None
    start = _start_record(parent.path)
    used = start.get("data", {}) if start else {}
    dirs = sorted(set(used.values())) if isinstance(used, dict) else [used]
    if len(dirs) == 1 and (Path(dirs[0]) / "manifest.json").is_file():
        return PreparedDataset(dirs[0])
    try:
        return _open_data(parent.config, parent.tokenizer, log)
    except UserError as e:
        log(f"cannot re-read the original data: {e}")
        return None


def _apply_recipe(config: RunConfig, parent: Parent, recipe: Recipe, log: Log) -> None:
    """The continual run keeps the parent's model and peak LR and takes the recipe's schedule."""
    config.model = parent.model
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


def _keep_best_documents(
    data: TrainingData,
    new: PreparedDataset,
    config: RunConfig,
    load: Callable[[Decoder], None],
    fraction: float,
    log: Log,
) -> None:
    """Replace each new domain's training stream by its `fraction` of documents with the lowest
    loss under the model being continued (quality filtering with the model as reference)."""
    model = Decoder(config.model.resolved())
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


def _arith_evaluation(tokenizer: Tokenizer, datasets: list[PreparedDataset]):
    """Exact-match accuracy per arithmetic skill when builtin:arith (or some of its skills, as
    builtin:arith/SKILL sources) is among the data: of the skills in the data."""
    specs = [
        s["spec"] for d in datasets for s in d.manifest["sources"] if "builtin:arith" in s["spec"]
    ]
    if not specs:
        return None
    from budgetlm.data.ingest.arith import SKILLS, arith_eval_set

    named = {spec.split("builtin:arith/", 1)[1] for spec in specs if "builtin:arith/" in spec}
    whole = any("builtin:arith/" not in spec for spec in specs)
    tasks = {
        f"arith/{skill}": tokenize_items(
            arith_eval_set(skill, ARITH_ITEMS_PER_SKILL), tokenizer.encode
        )
        for skill in SKILLS
        if whole or skill in named
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
    "export",
    "evaluate",
    "select",
    "mix_search",
    "mixture_weights",
    "scale",
    "report",
    "average",
]
