"""`budgetlm scale`: a sweep of small pre-training runs over model sizes x token budgets, the
scaling law L(N, D) = E + A/N^alpha + B/D^beta fitted to their final validation losses
(budget/scaling_law.py), a plot of it, and predictions for larger runs.

OUT/runs/SIZE-BUDGET/ are the runs (ordinary budgetlm runs; finished ones are reused, so a
sweep is resumable and can be widened), OUT/scaling_law.json the fit, OUT/scaling_law.png its
plot. The law is also left in the cache directory, where `budgetlm plan` looks for it.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from budgetlm.budget.scaling_law import DEFAULT_BOOTSTRAP, ScalingLaw, ScalingPoint, fit
from budgetlm.budget.spec import parse_budget
from budgetlm.config import RESUME_SETTINGS, RunConfig, decided_by_machine, load_config, to_dict
from budgetlm.data.prepare.cache import default_cache_dir
from budgetlm.data.store.dataset import PreparedDataset
from budgetlm.errors import UserError, closest
from budgetlm.io import Log
from budgetlm.model.config import CUSTOM, MODEL_SIZES, ModelConfig
from budgetlm.model.flops import count_parameters, flops_per_token
from budgetlm.run.directory import run_dir_of
from budgetlm.run.files import CONFIG_FILE
from budgetlm.run.records import finished_record, last_of, read_metrics
from budgetlm.workflows.data import open_data, trained_on
from budgetlm.workflows.proxies import differences, run_proxies
from budgetlm.workflows.scale.plot import plot_sweep

LAW_FILE = "scaling_law.json"
PLOT_FILE = "scaling_law.png"
RUNS_DIR = "runs"
HEAD_DIM = 32
"""Head width of a WIDTHxDEPTH shape without xHEADS (as the nano and micro presets)."""
_SHAPE = re.compile(r"(\d+)x(\d+)(?:x(\d+))?")


@dataclass(frozen=True)
class SweepRun:
    """One finished run of the sweep and the point it gives the fit."""

    name: str
    size: str
    budget: str
    n_params: int
    tokens: int
    loss: float
    val_loss: dict[str, float]


@dataclass(frozen=True)
class Prediction:
    """The law's loss for a run not trained (yet): a size and a budget."""

    spec: str
    n_params: int
    tokens: int
    flops: float
    loss: float
    interval: tuple[float, float]


@dataclass
class SweepResult:
    """What `budgetlm scale` produced."""

    law: ScalingLaw
    runs: list[SweepRun]
    predictions: list[Prediction]
    target: list[str]
    law_path: Path
    plot_path: Path | None
    plot_note: str
    cache_path: Path | None

    def table(self) -> str:
        """The runs (measured loss, the law's fit and the residual), the law's parameters with
        their 90% bootstrap intervals, and the predictions, as printed by `budgetlm scale`."""
        law = self.law
        width = max(len(r.name) for r in self.runs) + 2
        lines = [
            f"{'run':<{width}}{'params':>9}{'tokens':>10}{'loss':>9}{'fit':>9}{'resid':>8}",
        ]
        for r in self.runs:
            fitted = law.predict(r.n_params, r.tokens)
            lines.append(
                f"{r.name:<{width}}{r.n_params / 1e6:>8.2f}M{r.tokens / 1e6:>9.2f}M"
                f"{r.loss:>9.4f}{fitted:>9.4f}{(r.loss / fitted - 1) * 100:>+7.2f}%"
            )
        lines.append(f"loss: mean final validation loss of {', '.join(self.target)} (nats/token)")
        lines.append(f"law: {law.describe()}   (N = total parameters, D = training tokens)")
        intervals = law.parameter_intervals(0.9)
        if intervals:
            shown = "  ".join(
                f"{k} {getattr(law, k):.4g} [{lo:.4g}, {hi:.4g}]"
                for k, (lo, hi) in intervals.items()
            )
            lines.append(f"  90% intervals ({len(law.samples)} bootstrap refits): {shown}")
        if law.fixed:
            lines.append(f"  fixed (too few points for all five): {', '.join(law.fixed)}")
        for p in self.predictions:
            low, high = p.interval
            lines.append(
                f"predicted {p.spec}: {p.n_params / 1e6:.2f}M params, {p.tokens / 1e6:.2f}M "
                f"tokens (6ND = {p.flops:.3g} FLOPs): loss {p.loss:.4f}, 90% interval "
                f"{low:.4f}-{high:.4f}"
            )
        lines.append(f"law written to {self.law_path}")
        lines.append(f"plot written to {self.plot_path}" if self.plot_path else self.plot_note)
        if self.cache_path:
            lines.append(f"also saved as {self.cache_path}, which `budgetlm plan` uses")
        return "\n".join(lines)


def parse_size(spec: str, base: ModelConfig, vocab_size: int) -> ModelConfig:
    """A preset name (nano, micro, ...) or a WIDTHxDEPTH[xHEADS] shape (e.g. 160x3 = d_model
    160, 3 layers, heads of width 32) as a resolved ModelConfig; other fields from `base`."""
    spec = spec.strip()
    shape = dict.fromkeys(("d_model", "n_layers", "n_heads", "n_kv_heads", "ffn_hidden"))
    match = _SHAPE.fullmatch(spec)
    if match:
        width, depth, heads = (int(g) if g else None for g in match.groups())
        if heads is None:
            if width % HEAD_DIM:
                raise UserError(
                    f"size {spec}: width {width} is not a multiple of {HEAD_DIM}; give the "
                    f"heads as {width}x{depth}xHEADS"
                )
            heads = width // HEAD_DIM
        shape.update(d_model=width, n_layers=depth, n_heads=heads)
        model = dataclasses.replace(base, size=CUSTOM, **shape)
    elif spec in MODEL_SIZES:
        model = dataclasses.replace(base, size=spec, **shape)
    else:
        raise UserError(
            f"size '{spec}'{closest(spec, MODEL_SIZES)} is neither a preset "
            f"({', '.join(MODEL_SIZES)}) nor a WIDTHxDEPTH[xHEADS] shape like 160x3"
        )
    try:
        return model.resolved(vocab_size)
    except UserError as e:
        raise UserError(f"size {spec}: {e}") from None


def budget_tokens(text: str, tokens_per_step: int, model: ModelConfig | None = None) -> int:
    """Tokens a run trains on for a token or step budget (whole steps), or for a FLOP budget
    when the model is known; time budgets are refused (under load, runs on a time budget train
    different amounts, and the law is over tokens)."""
    budget = parse_budget(text)
    if budget.kind == "tokens":
        steps = int(budget.amount // tokens_per_step)
    elif budget.kind == "steps":
        steps = int(budget.amount)
    elif budget.kind == "flops" and model is not None:
        steps = int(budget.amount // (flops_per_token(model) * tokens_per_step))
    else:
        kinds = "token, step or FLOP" if model is not None else "token or step"
        raise UserError(
            f"budget {text}: a scaling sweep needs a {kinds} budget (e.g. 2Mtok or 500steps), "
            "so that every run trains the same amount whatever the machine's load"
        )
    if steps < 1:
        raise UserError(
            f"budget {text} is less than one optimizer step of {tokens_per_step:,} tokens; "
            "raise it or lower train.batch_size"
        )
    return steps * tokens_per_step


def check_grid(sizes: list[str], budgets: list[str], tokens_per_step: int) -> None:
    """Fail before any data or training work when the grid cannot give a fit: fewer than two
    sizes or budgets (so fewer than the three points a fit needs at least), or a time budget."""
    n_sizes, n_budgets = len(set(sizes)), len(set(budgets))
    if n_sizes < 2 or n_budgets < 2:
        raise UserError(
            f"a scaling sweep needs at least two sizes and two budgets (three points or more); "
            f"got {n_sizes} size(s) x {n_budgets} budget(s)"
        )
    for b in budgets:
        budget_tokens(b, tokens_per_step)


def scale(
    config: RunConfig,
    sizes: list[str],
    budgets: list[str],
    out: str | Path,
    predict: list[str] | None = None,
    target: list[str] | None = None,
    workers: int = 1,
    bootstrap: int = DEFAULT_BOOTSTRAP,
    remember: bool = True,
    log: Log = print,
) -> SweepResult:
    """Train a sweep of `sizes` (presets or WIDTHxDEPTH shapes) x token/step `budgets` in
    `out` (finished runs reused), fit L(N, D) = E + A/N^alpha + B/D^beta to their final
    validation losses (mean over `target` domains, default all) with bootstrap uncertainty,
    save OUT/scaling_law.json (and, if `remember`, in the cache for `budgetlm plan`), plot it
    and predict the `predict` SIZE:BUDGET runs. config gives the data, schedule, batch..."""
    out = Path(out)
    tokens_per_step = config.train.batch_size * config.model.seq_len
    check_grid(sizes, budgets, tokens_per_step)  # before any data work
    dataset = open_data(config, tokenizer=None, log=log)
    vocab = dataset.tokenizer.vocab_size
    models = _unique("--sizes", sizes, lambda s: parse_size(s, config.model, vocab))
    tokens = _unique("--budgets", budgets, lambda b: budget_tokens(b, tokens_per_step))
    domains = _target_domains(target, dataset.domains)
    specs = [_prediction_spec(p, config.model, vocab, tokens_per_step) for p in predict or []]
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")

    base = sweep_run_config(config, dataset, out)
    configs, cells = [], []
    for size, model in models.items():
        for budget in tokens:
            run = copy.deepcopy(base)
            run.model, run.budget, run.name = model, budget, f"{size}-{budget}"
            _check_reusable(run, dataset)
            configs.append(run)
            cells.append((size, budget))
    log(
        f"scaling sweep: {len(models)} sizes x {len(tokens)} budgets on "
        f"{', '.join(dataset.domains)} -> {out}"
    )
    run_proxies(configs, workers, log)
    runs = [_read_run(c, *cell, domains) for c, cell in zip(configs, cells, strict=True)]
    points = [ScalingPoint(r.n_params, r.tokens, r.loss, r.name) for r in runs]
    law = fit(points, bootstrap=bootstrap, seed=config.train.seed)
    predictions = [_predict(law, *spec) for spec in specs]
    law = dataclasses.replace(
        law,
        extra={
            "data": str(dataset.path),
            "target": domains,
            "loss": "mean validation loss of the target domains at the end of each run",
            "runs": [dataclasses.asdict(r) for r in runs],
            "predictions": [dataclasses.asdict(p) for p in predictions],
        },
    )
    law_path = law.save(out / LAW_FILE)
    cache_path = law.save(default_cache_dir() / LAW_FILE) if remember else None
    plot_path, note = plot_sweep(law, runs, predictions, out / PLOT_FILE)
    return SweepResult(law, runs, predictions, domains, law_path, plot_path, note, cache_path)


def _unique(flag: str, values: list[str], parse: Callable[[str], Any]) -> dict[str, Any]:
    """{label: parsed} for each value, refusing values that parse to the same thing."""
    parsed: dict[str, Any] = {}
    for value in values:
        label = value.strip()
        item = parse(label)
        same = [k for k, v in parsed.items() if v == item]
        if same:
            raise UserError(f"{flag}: '{label}' is the same as '{same[0]}'; list each once")
        parsed[label] = item
    return parsed


def _target_domains(target: list[str] | None, domains: list[str]) -> list[str]:
    if not target:
        return list(domains)
    for d in target:
        if d not in domains:
            raise UserError(
                f"--target names unknown domain '{d}'{closest(d, domains)}; domains in the "
                f"data: {', '.join(domains)}"
            )
    return list(dict.fromkeys(target))


def _prediction_spec(
    text: str, base: ModelConfig, vocab: int, tokens_per_step: int
) -> tuple[str, int, int, float]:
    """SIZE:BUDGET -> (spec, total parameters, tokens, 6ND FLOPs)."""
    size, sep, budget = text.rpartition(":")
    if not sep or not size or not budget:
        raise UserError(f"--predict {text}: give SIZE:BUDGET, e.g. small:20Mtok or 256x4:500steps")
    model = parse_size(size, base, vocab)
    n = count_parameters(model)["total"]
    tokens = budget_tokens(budget, tokens_per_step, model)
    return text, n, tokens, 6.0 * n * tokens


def _predict(law: ScalingLaw, spec: str, n: int, tokens: int, flops: float) -> Prediction:
    return Prediction(
        spec, n, tokens, flops, law.predict(n, tokens), law.predict_interval(n, tokens)
    )


def sweep_run_config(config: RunConfig, dataset: PreparedDataset, out: Path) -> RunConfig:
    """The shared config of the sweep's runs: the prepared data (tokenized once), evaluation
    only at the start and the end, no samples, only the final checkpoint."""
    base = copy.deepcopy(config)
    base.data.prepared, base.data.sources = str(dataset.path.resolve()), []
    base.out_dir, base.name = str((out / RUNS_DIR).resolve()), None
    base.eval.count, base.eval.early = 1, []
    base.samples.prompts_per_domain = 0
    base.checkpoint.every, base.checkpoint.pre_decay = 0.0, False
    return base


def _check_reusable(config: RunConfig, dataset: PreparedDataset) -> None:
    """A finished run in OUT is reused only when it was trained as this sweep would train it."""
    run_dir = run_dir_of(config)
    if finished_record(run_dir) is None:
        return
    saved = to_dict(load_config(run_dir / CONFIG_FILE))
    wanted = to_dict(config)
    ignore = {"out_dir", "name", "data.prepared", "data.sources", *RESUME_SETTINGS}
    differ = [
        k
        for k in differences(saved, wanted)
        if k not in ignore and not decided_by_machine(k, _value(saved, k), _value(wanted, k))
    ]
    used = {str(Path(p).resolve()) for p in (trained_on(run_dir) or {}).values()}
    if used and used != {str(dataset.path.resolve())}:
        differ.append("data")
    if differ:
        raise UserError(
            f"{run_dir} was trained with other settings ({', '.join(sorted(differ)[:5])} "
            "differ); use another --out, or delete that run to train it again"
        )


def _read_run(config: RunConfig, size: str, budget: str, domains: list[str]) -> SweepRun:
    """The point a finished run gives: total parameters (start record), tokens trained and the
    mean final validation loss of the target domains (end record)."""
    run_dir = run_dir_of(config)
    records = read_metrics(run_dir)
    start, end = last_of(records, "start"), last_of(records, "end")
    val = end.get("val_loss") or {}
    missing = [d for d in domains if d not in val]
    if missing:
        raise UserError(
            f"{run_dir} has no final validation loss for {', '.join(missing)}; delete it and "
            "run the sweep again"
        )
    return SweepRun(
        name=str(config.name),
        size=size,
        budget=budget,
        n_params=int(start["parameters"]["total"]),
        tokens=int(end["tokens"]),
        loss=sum(val[d] for d in domains) / len(domains),
        val_loss={d: float(v) for d, v in val.items()},
    )


def _value(tree: dict, dotted: str) -> Any:
    for part in dotted.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree
