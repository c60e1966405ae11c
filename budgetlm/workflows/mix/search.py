"""`budgetlm mix search`: find the mixture of a dataset's domains that minimises a target's
validation loss, as in "RegMix: Data Mixture as Regression for Language Model Pre-training"
(Liu et al., 2024). Samples mixtures (mix/sampling.py), trains one small proxy per
mixture on the same prepared data (proxies.py), fits a regression from weights to the target
loss (mix/regression.py) and writes the predicted best mixture as mix.json.

OUT/ holds plan.json (the settings; a search is resumed only with the same ones),
trials/trial_NNN/ (the proxy runs, with trial_NNN.log) and mix.json.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

from budgetlm.budget.spec import parse_budget
from budgetlm.config import RunConfig, to_dict
from budgetlm.data.feed.mixture_file import write_mixture_file
from budgetlm.data.store.dataset import PreparedDataset
from budgetlm.errors import UserError, closest
from budgetlm.io import Log, write_text_atomic
from budgetlm.workflows.data import open_data
from budgetlm.workflows.mix.regression import regressor_fit
from budgetlm.workflows.mix.sampling import (
    SearchSettings,
    clip_to_caps,
    dirichlet_alpha,
    epoch_limits,
    natural_shares,
    parse_target,
    predict_best,
    sample_candidates,
    sample_trial,
    weight_caps,
)
from budgetlm.workflows.proxies import differences, run_proxies

PLAN_FILE = "plan.json"
MIX_FILE = "mix.json"
TRIALS_DIR = "trials"


def mix_search(
    config: RunConfig,
    target: str | list[str] | dict[str, float],
    out: str | Path,
    settings: SearchSettings | None = None,
    workers: int = 1,
    log: Log = print,
) -> dict[str, Any]:
    """Find the mixture of the data's domains that minimises the target's validation loss by
    regression over small proxy runs (RegMix): `config` is the proxies' run config (data, model
    size, token budget); resumable in `out`; returns the mix.json payload, also written to
    OUT/mix.json."""
    settings = settings or SearchSettings()
    settings.check()
    fit = regressor_fit(settings.regressor)  # a missing LightGBM fails before any training
    if workers < 1:
        raise UserError(f"--workers must be at least 1, got {workers}")
    dataset = open_data(config, tokenizer=None, log=log)  # tokenized once for every proxy
    out = Path(out)
    domains = dataset.domains
    # one full sequence at least: fewer validation tokens measure too little to rank mixtures
    targets = parse_target(target, dataset.token_counts("val"), config.model.seq_len + 1)
    for d in settings.eval_only:
        if d not in domains:
            raise UserError(
                f"--eval-only names unknown domain '{d}'{closest(d, domains)}; domains in the "
                f"data: {', '.join(domains)}"
            )
    searched = [d for d in domains if d not in settings.eval_only]
    if len(searched) < 2:
        raise UserError(
            f"a mixture needs at least two domains to train on, the data has {searched}; add "
            "sources or fewer --eval-only domains"
        )
    if settings.trials <= len(searched):
        raise UserError(
            f"--trials {settings.trials} is too few to fit a regression over {len(searched)} "
            f"domains; use at least {len(searched) + 1} (better several times that)"
        )
    tokens_per_step = config.train.batch_size * config.model.seq_len
    proxy_tokens = _budget_tokens(config.budget, tokens_per_step, "--budget")
    final_tokens = (
        _budget_tokens(settings.final_budget, tokens_per_step, "--final-budget")
        if settings.final_budget
        else proxy_tokens
    )
    train_tokens = {d: n for d, n in dataset.token_counts("train").items() if d in searched}
    shares = natural_shares(train_tokens)
    limits = epoch_limits(settings.max_epochs, searched)
    caps = weight_caps(train_tokens, max(proxy_tokens, final_tokens), limits)
    share_v, cap_v = np.array([shares[d] for d in searched]), np.array([caps[d] for d in searched])
    alpha = dirichlet_alpha(share_v, settings.concentration)

    base = _proxy_config(config, dataset, out)
    _check_plan(out, base, dataset, targets, settings, log)
    sampled = [sample_trial(alpha, cap_v, settings.seed, i) for i in range(settings.trials)]
    clipped = sum(c for _, c in sampled)
    configs = []
    for i, (w, _) in enumerate(sampled):
        trial = copy.deepcopy(base)
        trial.name = f"trial_{i:03d}"
        trial.data.weights = _full(w, searched, domains)
        configs.append(trial)
    log(
        f"mixture search over {', '.join(searched)} for target "
        f"{_describe(targets)}: {settings.trials} {config.model.size} proxies of "
        f"{config.budget} -> {out}"
        + (f"; {clipped} mixture(s) clipped to the repetition limits" if clipped else "")
    )
    ends = run_proxies(configs, workers, log)

    weights = np.array([w for w, _ in sampled])
    losses = np.array([_target_loss(ends[c.name], targets, c.name) for c in configs])
    candidates, acceptance = sample_candidates(alpha, cap_v, settings.candidates, settings.seed)
    references = {
        "natural": clip_to_caps(share_v, cap_v),
        "uniform": clip_to_caps(np.full(len(searched), 1 / len(searched)), cap_v),
        "best_trial": weights[int(np.argmin(losses))],
    }
    found = predict_best(
        fit,
        weights,
        losses,
        candidates,
        references,
        settings.top_k,
        settings.bootstrap,
        settings.seed,
    )
    result = {
        "weights": _full(found.weights, searched, domains),
        "target": targets,
        "predicted_loss": found.predicted_loss,
        "uncertainty": {
            "method": f"{settings.bootstrap} bootstrap refits over the trials",
            "predicted_loss_sd": found.loss_sd,
            "predicted_loss_interval_90": list(found.loss_interval),
            "weights_sd": dict(zip(searched, found.weights_sd.tolist(), strict=True)),
            "weights_interval_90": {
                d: found.weights_interval[i].tolist() for i, d in enumerate(searched)
            },
            "p_better_than": found.p_better,
        },
        "references": {
            name: {
                "weights": _full(w, searched, domains),
                "predicted_loss": found.references[name],
                # outside the range the trials covered, the prediction is an extrapolation
                "in_trial_range": bool(
                    np.all(w >= weights.min(axis=0) - 1e-9)
                    and np.all(w <= weights.max(axis=0) + 1e-9)
                ),
            }
            for name, w in references.items()
        },
        "fit": {
            "regressor": settings.regressor,
            "trials": len(losses),
            "loo_spearman": found.loo_spearman,
            "loo_rmse": found.loo_rmse,
        },
        "sampling": {
            "searched_domains": searched,
            "eval_only": list(settings.eval_only),
            "natural_shares": shares,
            "concentration": settings.concentration,
            "max_epochs": limits,
            "caps": caps,
            "cap_tokens": max(proxy_tokens, final_tokens),
            "limit_method": "reject draws over a cap; after 1000 rejections clip the last "
            "draw to the caps",
            "clipped_trials": clipped,
            "candidate_acceptance": acceptance,
            "candidates": settings.candidates,
            "trial_range": {
                d: [float(weights[:, i].min()), float(weights[:, i].max())]
                for i, d in enumerate(searched)
            },
            "candidates_in_trial_range": found.searched,
            "top_k": settings.top_k,
        },
        "proxy": {
            "model": config.model.size,
            "budget": config.budget,
            "tokens": proxy_tokens,
            "seed": config.train.seed,
        },
        "data": str(dataset.path.resolve()),
        "trials": [
            {
                "trial": c.name,
                "weights": c.data.weights,
                "target_loss": float(losses[i]),
                "loo_predicted_loss": float(found.loo_predictions[i]),
                "val_loss": ends[c.name].get("val_loss", {}),
                "clipped": bool(sampled[i][1]),
            }
            for i, c in enumerate(configs)
        ],
    }
    write_mixture_file(out / MIX_FILE, result)
    log(f"mixture written to {out / MIX_FILE}")
    return result


def _budget_tokens(text: str, tokens_per_step: int, flag: str) -> float:
    """Tokens of a token or step budget; time or FLOP budgets are refused (under load, proxies
    on a time budget would train different amounts and their losses would not compare)."""
    budget = parse_budget(text)
    if budget.kind == "tokens":
        return budget.amount
    if budget.kind == "steps":
        return budget.amount * tokens_per_step
    raise UserError(
        f"{flag} {text}: a mixture search needs a token or step budget (e.g. 2Mtok or 500steps), "
        "so that every proxy trains on the same amount whatever the machine's load"
    )


def _proxy_config(config: RunConfig, dataset: PreparedDataset, out: Path) -> RunConfig:
    """The shared config of the proxies: the prepared data (tokenized once), evaluation only at
    the start and end, no samples, only the final checkpoint."""
    base = copy.deepcopy(config)
    base.data.prepared, base.data.sources = str(dataset.path.resolve()), []
    base.data.weights, base.data.schedule = None, None
    base.out_dir, base.name = str((out / TRIALS_DIR).resolve()), None
    base.eval.count, base.eval.early = 1, []
    base.samples.prompts_per_domain = 0
    base.checkpoint.every, base.checkpoint.pre_decay = 0.0, False
    return base


def _check_plan(
    out: Path,
    base: RunConfig,
    dataset: PreparedDataset,
    targets: dict[str, float],
    settings: SearchSettings,
    log: Log,
) -> None:
    """Write OUT/plan.json, or check that a search being resumed there used the same settings
    (all but --trials, which may grow: each trial's mixture depends only on its index)."""
    proxy = to_dict(base)
    del proxy["out_dir"], proxy["name"], proxy["data"]["prepared"]  # where, not what: may move
    plan = {
        "proxy_config": proxy,
        "data": {
            d: [info[split]["sha256"] for split in ("train", "val")]
            for d, info in dataset.manifest["domains"].items()
        },
        "target": targets,
        "settings": {
            k: v
            for k, v in dataclasses.asdict(settings).items()
            if k not in ("trials", "candidates", "top_k", "bootstrap", "regressor")
        },
    }
    plan = json.loads(json.dumps(plan))  # tuples -> lists, as read back
    path = out / PLAN_FILE
    if path.is_file():
        old = json.loads(path.read_text(encoding="utf-8"))
        differ = differences(old, plan)
        if differ:
            raise UserError(
                f"{out} holds a mixture search with other settings ({', '.join(differ[:5])} "
                "differ); use another --out, or the same settings to resume it"
            )
        log(f"resuming the mixture search in {out}")
        return
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, json.dumps(plan, indent=2) + "\n")


def _full(w: np.ndarray, searched: list[str], domains: list[str]) -> dict[str, float]:
    """Weights over every domain of the data (0 for eval-only ones), summing to one."""
    by_domain = dict(zip(searched, np.asarray(w, float) / np.sum(w), strict=True))
    return {d: float(by_domain.get(d, 0.0)) for d in domains}


def _target_loss(end: dict[str, Any], targets: dict[str, float], name: str) -> float:
    losses = end.get("val_loss") or {}
    missing = [d for d in targets if d not in losses]
    if missing:
        raise UserError(
            f"proxy {name} has no validation loss for {', '.join(missing)}; delete its run "
            "directory under OUT/trials and run the search again"
        )
    return float(sum(w * losses[d] for d, w in targets.items()))


def _describe(targets: dict[str, float]) -> str:
    if len(set(targets.values())) == 1:
        return ", ".join(targets) + (" (mean)" if len(targets) > 1 else "")
    return ", ".join(f"{d} {w:.2f}" for d, w in targets.items())
