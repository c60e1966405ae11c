"""budgetlm's public functions; the CLI is a thin layer over these."""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import torch

from budgetlm.budget.controller import BudgetController
from budgetlm.budget.spec import parse_budget
from budgetlm.config import RunConfig, load_config, save_config
from budgetlm.data.cache import prepare_cached
from budgetlm.data.dataset import PreparedDataset
from budgetlm.data.prepare import prepare_dataset
from budgetlm.data.sampler import MixtureSampler
from budgetlm.data.tokenizer import TOKENIZER_FILE, Tokenizer
from budgetlm.errors import UserError
from budgetlm.model.config import ModelConfig
from budgetlm.model.decoder import Decoder
from budgetlm.model.flops import count_parameters, flops_per_token
from budgetlm.model.generate import generate as sample_tokens
from budgetlm.report.summary import summarize
from budgetlm.train.checkpoint import latest_checkpoint, list_checkpoints, load_weights
from budgetlm.train.loop import Trainer, TrainResult
from budgetlm.train.metrics import MetricsLog
from budgetlm.train.optim import build_adamw
from budgetlm.train.progress import Progress
from budgetlm.train.schedules import build_schedule

Log = Callable[[str], None]


@dataclass
class PretrainResult:
    """What `pretrain` produced."""

    run_dir: Path
    val_loss: dict[str, float]
    steps: int
    tokens: int
    tokens_per_second: float
    summary: str


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


def pretrain(
    config: RunConfig | None = None, resume: bool = False, log: Log = print
) -> PretrainResult:
    """Pre-train a model from scratch within the configured budget (or resume a killed run),
    then write samples and print a summary."""
    config = dataclasses.replace(config) if config else RunConfig()
    if resume:
        run_dir = _resume_dir(config)
        config = load_config(run_dir / "config.yaml")
        log(f"resuming {run_dir}")
    budget = parse_budget(config.budget)
    t0 = time.perf_counter()
    dataset = _open_data(config, log)
    data_seconds = time.perf_counter() - t0

    t0 = time.perf_counter()
    config.model = config.model.resolved(vocab_size=dataset.tokenizer.vocab_size)
    if config.model.vocab_size != dataset.tokenizer.vocab_size:
        raise UserError(
            f"model.vocab_size is {config.model.vocab_size} but the tokenizer has "
            f"{dataset.tokenizer.vocab_size} tokens; leave model.vocab_size unset"
        )
    if not resume:
        run_dir = _new_run_dir(config)
    device = _device(config.train.device)
    torch.manual_seed(config.train.seed)
    model = Decoder(config.model).to(device)
    optimizer = build_adamw(model, config.train, device)
    sampler = MixtureSampler(
        {d: dataset.tokens("train", d) for d in dataset.domains},
        config.model.seq_len,
        config.data.weights,
        config.train.seed,
    )
    tokens_per_step = config.train.batch_size * config.model.seq_len
    planner = BudgetController(
        budget, tokens_per_step, flops_per_token(config.model) * tokens_per_step
    )
    schedule = build_schedule(
        config.train.schedule,
        config.train.warmup_fraction,
        config.train.decay_fraction,
        config.train.min_lr_ratio,
    )
    planner.initial_total()  # a token/FLOP budget too small for one step fails here
    created = not resume
    try:
        if created:
            run_dir.mkdir(parents=True)
            save_config(config, run_dir / "config.yaml")
            shutil.copyfile(dataset.path / TOKENIZER_FILE, run_dir / TOKENIZER_FILE)
        metrics = MetricsLog(run_dir / "metrics.jsonl")
        trainer = Trainer(
            model,
            optimizer,
            sampler,
            schedule,
            planner,
            {d: dataset.tokens("val", d) for d in dataset.domains},
            run_dir,
            config.train,
            config.eval,
            config.checkpoint,
            metrics,
            Progress(),
            device,
            config.model.seq_len,
        )
        if resume:
            _restore(trainer, run_dir, log)
        setup_seconds = time.perf_counter() - t0
        params = count_parameters(config.model)
        metrics.write(
            "resume" if resume else "start",
            step=trainer.state.step,
            budget=str(budget),
            model_size=config.model.size,
            parameters=params,
            flops_per_token=flops_per_token(config.model),
            tokens_per_step=tokens_per_step,
            device=str(device),
            precision=config.train.precision,
            threads=torch.get_num_threads(),
            data=str(dataset.path),
            train_tokens=dataset.token_counts("train"),
            unigram_entropy={
                d: v["unigram_entropy"] for d, v in dataset.manifest["domains"].items()
            },
        )
        log(
            f"training {config.model.size} ({params['total']:,} parameters) on "
            f"{', '.join(dataset.domains)} for {budget} on {device} -> {run_dir}"
        )
        result = trainer.run()
    except BaseException:
        if created and not list_checkpoints(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing worth keeping yet
        raise
    t0 = time.perf_counter()
    write_samples(model, dataset, config, run_dir / "samples.txt", device)
    sample_seconds = time.perf_counter() - t0
    _write_end(metrics, result, planner, data_seconds, setup_seconds, sample_seconds)
    metrics.close()
    summary = summarize(run_dir)
    log(summary)
    return PretrainResult(
        run_dir,
        result.val_loss,
        result.state.step,
        result.state.tokens,
        result.tokens_per_second,
        summary,
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
    ids = tokenizer.encode(prompt) or [tokenizer.eos_id]
    generator = torch.Generator().manual_seed(seed)
    new = sample_tokens(model, ids, max_new_tokens, temperature, top_k, tokenizer.eos_id, generator)
    return tokenizer.decode(new)


def write_samples(
    model: Decoder, dataset: PreparedDataset, config: RunConfig, path: Path, device: torch.device
) -> None:
    """Generate from the openings of a few held-out documents per domain into samples.txt."""
    cfg = config.samples
    tokenizer = dataset.tokenizer
    generator = torch.Generator(device=device).manual_seed(cfg.seed)
    model.eval()
    blocks = []
    for domain in dataset.domains:
        shard = dataset.shard("val", domain)
        for i in range(min(cfg.prompts_per_domain, shard.num_documents)):
            prompt_ids = [int(t) for t in shard.document(i)[:12] if t != tokenizer.eos_id]
            if not prompt_ids:
                continue
            new = sample_tokens(
                model,
                prompt_ids,
                cfg.max_new_tokens,
                cfg.temperature,
                cfg.top_k,
                tokenizer.eos_id,
                generator,
            )
            prompt = tokenizer.decode(prompt_ids)
            blocks.append(f"=== {domain} | prompt: {prompt!r}\n{prompt}{tokenizer.decode(new)}\n")
    path.write_text("\n".join(blocks), encoding="utf-8")


def _open_data(config: RunConfig, log: Log) -> PreparedDataset:
    data = config.data
    if data.prepared:
        return PreparedDataset(data.prepared)
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
    )
    return PreparedDataset(path)


def _new_run_dir(config: RunConfig) -> Path:
    if config.name is None:
        config.name = f"{config.model.size}-{datetime.now():%Y%m%d-%H%M%S}"
    run_dir = Path(config.out_dir) / config.name
    if run_dir.exists() and any(run_dir.iterdir()):
        raise UserError(
            f"run directory {run_dir} already exists; pass --resume to continue it, or choose "
            "another --out / --name"
        )
    return run_dir


def _resume_dir(config: RunConfig) -> Path:
    """The run to resume: out_dir/name when named, else the newest run under out_dir."""
    out = Path(config.out_dir)
    if config.name is not None:
        run_dir = out / config.name
    elif (out / "config.yaml").is_file():
        run_dir = out
    else:
        runs = [p.parent for p in out.glob("*/config.yaml")] if out.is_dir() else []
        if not runs:
            raise UserError(f"--resume: no run found under {out}; pass --out RUN_DIR")
        run_dir = max(
            runs,
            key=lambda p: (
                (p / "metrics.jsonl").stat().st_mtime if (p / "metrics.jsonl").exists() else 0
            ),
        )
    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"--resume: {run_dir} is not a budgetlm run (no config.yaml); check --out")
    return run_dir


def _restore(trainer: Trainer, run_dir: Path, log: Log) -> None:
    found = latest_checkpoint(run_dir, log)
    if found is None:
        log(f"{run_dir} has no checkpoint yet; starting it from step 0")
        return
    path, state = found
    if "final" in state.get("tags", []):
        raise UserError(
            f"run {run_dir} already finished at step {state['step']}; nothing to resume"
        )
    trainer.restore(path, state)
    log(f"restored {path.name} (step {state['step']})")


def _write_end(
    metrics: MetricsLog,
    result: TrainResult,
    planner: BudgetController,
    data_seconds: float,
    setup_seconds: float,
    sample_seconds: float,
) -> None:
    s = result.state
    metrics.write(
        "end",
        steps=s.step,
        tokens=s.tokens,
        val_loss=result.val_loss,
        tokens_per_s=result.tokens_per_second,
        flops=s.step * planner.flops_per_step,
        seconds=dict(s.seconds, data=data_seconds, setup=setup_seconds, samples=sample_seconds),
    )


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise UserError(f"train.device must be 'auto', 'cpu' or 'cuda', got '{name}'")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(
            "train.device is 'cuda' but no CUDA device is available; use 'auto' or 'cpu'"
        )
    return torch.device(name)


def _run_config_path(run_dir: Path) -> Path:
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise UserError(f"{run_dir} is not a budgetlm run directory (no config.yaml); check --run")
    return path


__all__ = [
    "PretrainResult",
    "prepare",
    "pretrain",
    "generate",
    "load_model",
    "load_tokenizer",
    "ModelConfig",
    "RunConfig",
]
