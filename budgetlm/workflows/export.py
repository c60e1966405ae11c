"""`budgetlm export`: a run's model and tokenizer as a Hugging Face folder."""

from __future__ import annotations

from pathlib import Path

from budgetlm.model.hf_export import export_hf
from budgetlm.workflows.trained import load_model, load_tokenizer


def export(run_dir: str | Path, out: str | Path) -> Path:
    """Write a run's trained model and tokenizer as a Hugging Face folder (Llama, or Qwen2 for
    models with q/k/v biases) that `transformers.AutoModelForCausalLM.from_pretrained` loads."""
    return export_hf(load_model(run_dir), load_tokenizer(run_dir), out)
