"""The model card (README.md) an exported continued model carries: the YAML metadata the Hugging
Face Hub reads (base_model, library, pipeline, tags), then what the run did, from its own
records: the base model, the data and its domains, the budget and recipe, and the final
per-domain losses, stability gap and forgetting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from budgetlm.config import RunConfig
from budgetlm.run.records import last_of, read_metrics


def model_card(run_dir: str | Path, config: RunConfig) -> str:
    """README.md text for the export of the run at `run_dir`."""
    records = read_metrics(run_dir, missing_ok=True)
    start = last_of(records, "start") or {}
    end = last_of(records, "end") or {}
    continual = last_of(records, "continual") or {}
    base = config.continual.from_run or start.get("parent") or config.model.hf_source
    meta: dict[str, Any] = {
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "tags": [
            "budgetlm",
            "continual-pretraining" if config.continual.from_run else "pretraining",
        ],
    }
    if base:
        meta["base_model"] = str(base)
    if config.model.adapter == "lora":
        meta["tags"].append("lora")
    lines = ["---", yaml.safe_dump(meta, sort_keys=False).strip(), "---", ""]
    name = config.model.hf_config.get("model_type") if config.model.hf_config else "llama"
    lines.append(f"# {Path(run_dir).name}")
    lines.append("")
    what = "Continued pre-training" if config.continual.from_run else "Pre-training"
    lines.append(
        f"{what} of {f'`{base}`' if base else 'a new model'} ({name}) with budgetlm, "
        f"within a budget of {start.get('budget', config.budget)}."
    )
    lines.append("")
    rows = [
        ("recipe", start.get("recipe")),
        ("replay ratio", start.get("replay_ratio")),
        ("adapter", _adapter(config)),
        ("steps", end.get("steps")),
        ("tokens", f"{end['tokens']:,}" if end.get("tokens") else None),
        ("new domains", ", ".join(start.get("new_domains") or []) or None),
        ("replayed domains", ", ".join(start.get("old_domains") or []) or None),
        ("training data", ", ".join(config.data.sources) or config.data.prepared),
    ]
    lines += ["| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in rows if value not in (None, "")]
    losses = end.get("val_loss") or {}
    if losses:
        bpb, in_bits = end.get("val_bpb") or {}, continual.get("bpb") or {}
        lines += ["", "Final held-out loss per domain (nats/token, and bits per byte):", ""]
        lines += [
            "| domain | loss | bits/byte | forgetting | forgetting (bits/byte) | stability gap |",
            "|---|---|---|---|---|---|",
        ]
        for domain, loss in losses.items():
            forgetting = (continual.get("forgetting") or {}).get(domain)
            forgetting_bits = (in_bits.get("forgetting") or {}).get(domain)
            gap = ((continual.get("new") or {}).get(domain) or {}).get("depth")
            lines.append(
                f"| {domain} | {_num(loss)} | {_num(bpb.get(domain))} | {_num(forgetting)} | "
                f"{_num(forgetting_bits)} | {_num(gap)} |"
            )
        lines += [
            "",
            "Forgetting is the rise of a replayed domain's loss against the base model; the "
            "stability gap is the largest rise of a new domain's loss early in training.",
        ]
    return "\n".join(lines) + "\n"


def _adapter(config: RunConfig) -> str | None:
    model = config.model
    if model.adapter != "lora":
        return None
    return f"LoRA r={model.lora_rank}, alpha={model.lora_alpha:g}, on {model.lora_targets} (merged)"


def _num(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "-"
