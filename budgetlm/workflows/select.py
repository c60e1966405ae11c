"""Data selection by reference-model loss: score every train document of a prepared dataset,
keep the best share of the filtered domains, and write the result as a new prepared dataset.

Methods (lower score = kept):
- "loss": the mean loss of one reference model, by default a small proxy trained on the target
  domains (quality filtering with a model of the data one wants);
- "loss-diff": the loss of a model trained on the target domains minus the loss of a general
  model trained on the whole dataset: documents the target model finds much easier than the
  general one are the target-like ones. This is the conditional loss reduction of CoLoR-Filter
  ("CoLoR-Filter: Conditional Loss Reduction Filtering for Targeted Language Model
  Pre-training", Brandfonbrener et al., 2024), in the spirit of "Predictive Data Selection: The
  Data That Predicts Is the Data That Teaches" (Shum et al., 2025).
Reference runs not given are trained here (a tiny proxy for a small token budget) and kept in
OUT/references/, next to the scores, so another keep fraction needs neither again.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from budgetlm.budget.spec import parse_budget
from budgetlm.config import load_config
from budgetlm.data.feed.streams import TrainingData
from budgetlm.data.store.dataset import PreparedDataset
from budgetlm.data.store.selection import (
    SCORES_DIR,
    check_output,
    choose_documents,
    load_scores,
    save_scores,
    source_fingerprint,
    write_selection,
)
from budgetlm.data.store.tokenizer import TOKENIZER_FILE, Tokenizer
from budgetlm.errors import UserError, closest
from budgetlm.evaluate.scoring import document_losses
from budgetlm.io import Log
from budgetlm.job.decide import trainer_autocast
from budgetlm.job.run import run_training
from budgetlm.machine.device import resolve_device
from budgetlm.model.build import build_model
from budgetlm.model.decoder import Decoder
from budgetlm.run.directory import require_run_dir
from budgetlm.run.files import CONFIG_FILE
from budgetlm.run.records import final_val_loss
from budgetlm.train.checkpoint import latest_checkpoint, load_weights

METHODS = ("loss", "loss-diff")
REFERENCES_DIR = "references"


@dataclass
class Scoring:
    """Everything the scores depend on; scores saved with an equal Scoring are reused."""

    source: str
    """The prepared dataset scored (absolute path)."""
    fingerprint: dict[str, str]
    """sha256 of each domain's train shard."""
    method: str
    targets: list[str]
    reference: str | None
    """A given reference run (absolute path), or None: a proxy trained on the targets here."""
    general: str | None
    """A given general run for loss-diff, or None: a proxy trained on the whole dataset here."""
    proxy: str
    proxy_budget: str
    proxy_seq_len: int
    score_tokens: int
    seed: int


def select_data(
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
    device: str = "auto",
    log: Log = print,
) -> dict[str, Any]:
    """Select the best `keep` share of documents of a prepared dataset into `out` (see the
    module docstring), scoring them first unless `scores` names an earlier selection or `out`
    holds scores made the same way; returns the new dataset's "selection" manifest record."""
    out = Path(out).expanduser()
    if not 0 < keep <= 1:
        raise UserError(f"--keep {keep} must be in (0, 1]: the share of documents to keep")
    if scores is not None:
        if any(v is not None for v in (prepared, target, method, reference, general)):
            raise UserError(
                "--scores reuses an earlier selection's scores with their source, target, method "
                "and references: pass it without --prepared, --target, --method, --reference "
                "and --general"
            )
        record, values = _stored_scores(Path(scores).expanduser())
        dataset = _open_source(record["scoring"])
        scoring = Scoring(**record["scoring"])
        filtered = _filtered_domains(domains, scoring.targets, dataset)
        check_output(out, dataset.path)
    else:
        if prepared is None or target is None:
            raise UserError("select needs --prepared DIR and --target DOMAIN (or --scores DIR)")
        scoring, dataset = _scoring(
            prepared,
            target,
            method or "loss-diff",
            reference,
            general,
            proxy,
            proxy_budget,
            proxy_seq_len,
            score_tokens,
            seed,
        )
        filtered = _filtered_domains(domains, scoring.targets, dataset)
        check_output(out, dataset.path)
        saved = load_scores(out) if (out / SCORES_DIR).is_dir() else None
        if saved is not None and saved[0].get("scoring") == asdict(scoring):
            log(f"reusing the scores in {out / SCORES_DIR} (same data, method and references)")
            record, values = saved
        else:
            record, values = _score(dataset, scoring, out, device, log)
    if scores is not None and out.resolve() != Path(scores).expanduser().resolve():
        save_scores(out, {k: v for k, v in record.items() if k != "domains"}, values)
    chosen = choose_documents(values, keep, filtered)
    manifest = write_selection(
        dataset,
        chosen,
        out,
        {
            "source": str(dataset.path.resolve()),
            "method": scoring.method,
            "targets": scoring.targets,
            "keep": keep,
            "filtered_domains": filtered,
            "references": record["references"],
        },
        log,
    )
    log(f"wrote {out} (re-select with `budgetlm select --scores {out} --keep K --out DIR`)")
    return manifest["selection"]


def _scoring(
    prepared: str | Path,
    target: str | list[str],
    method: str,
    reference: str | Path | None,
    general: str | Path | None,
    proxy: str,
    proxy_budget: str,
    proxy_seq_len: int,
    score_tokens: int,
    seed: int,
) -> tuple[Scoring, PreparedDataset]:
    """The checked scoring request and the dataset it scores (UserError on bad input, before
    any training)."""
    if method not in METHODS:
        raise UserError(
            f"unknown selection method '{method}'{closest(method, METHODS)}; use one of "
            f"{', '.join(METHODS)}"
        )
    if general is not None and method != "loss-diff":
        raise UserError("--general is the general model of --method loss-diff; drop it for loss")
    if score_tokens < 2:
        raise UserError(f"--score-tokens must be at least 2, got {score_tokens}")
    dataset = PreparedDataset(prepared)
    targets = _targets(target, dataset)
    given = {}
    for flag, run in (("--reference", reference), ("--general", general)):
        if run is not None:
            _check_reference(Path(run).expanduser(), dataset, flag)
            given[flag] = str(Path(run).expanduser().resolve())
    if reference is None or (method == "loss-diff" and general is None):
        # an unknown proxy size or budget fails here, not after training started
        load_config(None, [("model.size", proxy)]).model.resolved(dataset.tokenizer.vocab_size)
        parse_budget(proxy_budget)
    return (
        Scoring(
            source=str(dataset.path.resolve()),
            fingerprint=source_fingerprint(dataset),
            method=method,
            targets=targets,
            reference=given.get("--reference"),
            general=given.get("--general"),
            proxy=proxy,
            proxy_budget=proxy_budget,
            proxy_seq_len=proxy_seq_len,
            score_tokens=score_tokens,
            seed=seed,
        ),
        dataset,
    )


def _targets(target: str | list[str], dataset: PreparedDataset) -> list[str]:
    """Target domains from "a,b" or a list, each in the dataset with validation documents."""
    names = target.split(",") if isinstance(target, str) else list(target)
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise UserError("--target names no domain; e.g. --target prose")
    for name in names:
        if name not in dataset.domains:
            raise UserError(
                f"--target domain '{name}'{closest(name, dataset.domains)} is not in "
                f"{dataset.path}; its domains: {', '.join(dataset.domains)}"
            )
        if dataset.manifest["domains"][name]["val"]["documents"] == 0:
            raise UserError(
                f"--target domain '{name}' of {dataset.path} has no validation documents; "
                "prepare it again with a larger --val-fraction"
            )
    return sorted(set(names))


def _filtered_domains(
    domains: list[str] | None, targets: list[str], dataset: PreparedDataset
) -> list[str]:
    """The domains whose documents are selected: those named, else every domain but the
    targets (whose documents taught the target reference), else every domain."""
    if domains:
        for name in domains:
            if name not in dataset.domains:
                raise UserError(
                    f"--domains names '{name}'{closest(name, dataset.domains)}, which "
                    f"{dataset.path} does not have; its domains: {', '.join(dataset.domains)}"
                )
        return sorted(set(domains))
    others = [d for d in dataset.domains if d not in targets]
    return others or list(dataset.domains)


def _check_reference(run: Path, dataset: PreparedDataset, flag: str) -> None:
    """UserError unless `run` is a trained budgetlm run with the dataset's tokenizer."""
    require_run_dir(run, flag)
    if not (run / TOKENIZER_FILE).is_file() or latest_checkpoint(run, log=_quiet) is None:
        raise UserError(f"{flag} run '{run}' has no checkpoint yet; train it first")
    if Tokenizer.load(run / TOKENIZER_FILE).fingerprint != dataset.tokenizer.fingerprint:
        raise UserError(
            f"{flag} run '{run}' was trained with another tokenizer than {dataset.path}; train "
            f"the reference on data prepared with `--tokenizer {dataset.path}`, or leave "
            f"{flag} out to train one here"
        )


def _stored_scores(folder: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    saved = load_scores(folder)
    if saved is None or "scoring" not in saved[0]:
        raise UserError(
            f"--scores '{folder}' holds no scores (no {SCORES_DIR}/scores.json); pass a folder "
            "written by `budgetlm select`"
        )
    return saved


def _open_source(scoring: dict[str, Any]) -> PreparedDataset:
    """The dataset the stored scores belong to, checked to be unchanged."""
    dataset = PreparedDataset(scoring["source"])
    if source_fingerprint(dataset) != scoring["fingerprint"]:
        raise UserError(
            f"{dataset.path} changed since its documents were scored; select again from it "
            "with --prepared (and --target) to score it anew"
        )
    return dataset


def _score(
    dataset: PreparedDataset, scoring: Scoring, out: Path, device_name: str, log: Log
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Train or open the reference models, score every train document, save the scores."""
    t0 = time.perf_counter()
    (out / SCORES_DIR).mkdir(parents=True, exist_ok=True)  # marks `out` as a selection folder
    device = resolve_device(device_name)
    runs = {"reference": scoring.reference or _proxy(dataset, scoring, "target", out, log)}
    if scoring.method == "loss-diff":
        runs["general"] = scoring.general or _proxy(dataset, scoring, "general", out, log)
    models = {name: _load_run(Path(run), device) for name, run in runs.items()}
    seq_len = min(config.model.seq_len for _, config in models.values())
    windows = -(-scoring.score_tokens // seq_len)
    losses: dict[str, dict[str, np.ndarray]] = {}
    for name, (model, config) in models.items():
        log(f"scoring the train documents with the {name} model {runs[name]}")
        losses[name] = {
            d: document_losses(
                model,
                dataset.shard("train", d),
                seq_len,
                device,
                trainer_autocast(config, device),
                windows=windows,
            )
            for d in dataset.domains
        }
    values = losses["reference"]
    if scoring.method == "loss-diff":
        values = {d: values[d] - losses["general"][d] for d in dataset.domains}
    references = {
        name: {"run": str(Path(run).resolve()), "target_val_loss": final_val_loss(Path(run))}
        for name, run in runs.items()
    }
    _warn_if_weak(references, log)
    record = {
        "scoring": asdict(scoring),
        "references": references,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    save_scores(out, record, values)
    return record, values


def _proxy(dataset: PreparedDataset, scoring: Scoring, role: str, out: Path, log: Log) -> str:
    """A tiny proxy run trained here on the targets ("target") or on every domain ("general"),
    evaluated on the targets; an earlier finished one trained the same way is reused."""
    root = out / REFERENCES_DIR
    run_dir, key_file = root / role, root / f"{role}.json"
    domains = scoring.targets if role == "target" else list(dataset.domains)
    key = {
        "source": scoring.source,
        "fingerprint": scoring.fingerprint,
        "domains": domains,
        "targets": scoring.targets,
        "proxy": scoring.proxy,
        "budget": scoring.proxy_budget,
        "seq_len": scoring.proxy_seq_len,
        "seed": scoring.seed,
    }
    if run_dir.is_dir():
        found = latest_checkpoint(run_dir, log=_quiet)
        same = key_file.is_file() and json.loads(key_file.read_text(encoding="utf-8")) == key
        if same and found is not None and "final" in found[1].get("tags", []):
            log(f"reusing the {role} reference {run_dir}")
            return str(run_dir)
        shutil.rmtree(run_dir)
    key_file.unlink(missing_ok=True)
    root.mkdir(parents=True, exist_ok=True)
    config = load_config(
        None,
        [
            ("data.prepared", str(dataset.path)),
            ("model.size", scoring.proxy),
            ("model.seq_len", scoring.proxy_seq_len),
            ("budget", scoring.proxy_budget),
            ("train.seed", scoring.seed),
            ("out_dir", str(root)),
            ("name", role),
            ("checkpoint.every", 0),
            ("checkpoint.pre_decay", False),
            ("eval.count", 2),
            ("samples.prompts_per_domain", 0),
        ],
    )
    data = TrainingData(
        train={d: dataset.tokens("train", d) for d in domains},
        val={d: dataset.tokens("val", d) for d in scoring.targets},
        weights=None,
        datasets={d: str(dataset.path) for d in domains},
        unigram_entropy={d: dataset.manifest["domains"][d]["unigram_entropy"] for d in domains},
        new_domains=list(domains),
    )
    log(f"training the {role} reference ({scoring.proxy}, {scoring.proxy_budget}) on {domains}")
    run_training(config, data, dataset.path / TOKENIZER_FILE, None, log)
    key_file.write_text(json.dumps(key, indent=2) + "\n", encoding="utf-8")
    return str(run_dir)


def _load_run(run: Path, device: torch.device) -> tuple[Decoder, Any]:
    """A run's newest model (eval mode) and its config."""
    config = load_config(run / CONFIG_FILE)
    found = latest_checkpoint(run, log=_quiet)
    if found is None:
        raise UserError(f"run '{run}' has no checkpoint yet; train it first")
    model = build_model(config.model.resolved())
    load_weights(found[0], model)
    return model.to(device).eval(), config


def _warn_if_weak(references: dict[str, dict[str, Any]], log: Log) -> None:
    """Say so when the target reference is no better on the targets than the general model:
    then the loss difference measures noise more than target-likeness."""
    if "general" not in references:
        return
    mine, general = (references[k]["target_val_loss"] for k in ("reference", "general"))
    if not mine or not general:
        return
    shared = [d for d in mine if d in general]
    if shared and sum(mine[d] for d in shared) >= sum(general[d] for d in shared):
        log(
            "warning: the target reference's validation loss on the targets is no lower than "
            "the general model's, so loss-diff scores are mostly noise; give the target "
            "reference more target data or a budget it does not overfit"
        )


def _quiet(_message: str) -> None:
    """Say nothing."""
