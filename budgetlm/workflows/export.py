"""`budgetlm export`: a run's model and tokenizer as a Hugging Face folder."""

from __future__ import annotations

from pathlib import Path

from budgetlm.errors import UserError
from budgetlm.model.config import HF_BACKEND
from budgetlm.model.hf_export import export_hf, export_transformers
from budgetlm.run.directory import load_run_config
from budgetlm.workflows.model_card import model_card
from budgetlm.workflows.trained import load_model, load_tokenizer


def export(run_dir: str | Path, out: str | Path, adapter_only: bool = False) -> Path:
    """Write a run's trained model and tokenizer as a Hugging Face folder that
    `transformers.AutoModelForCausalLM.from_pretrained` loads: a continued transformers model as
    the model_type it was (save_pretrained); a native model as Llama (Qwen2 with q/k/v biases);
    with a model card (README.md) saying what the run did."""
    model, tokenizer = load_model(run_dir), load_tokenizer(run_dir)
    card = model_card(run_dir, load_run_config(run_dir, "--run"))
    if model.config.backend == HF_BACKEND:
        return export_transformers(model, tokenizer, out, adapter_only, card)
    if adapter_only:
        raise UserError("--adapter-only exports a LoRA adapter; this run trained every weight")
    return export_hf(model, tokenizer, out, card)
