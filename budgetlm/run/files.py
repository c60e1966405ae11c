"""The names of the files in a run directory: the contract every room reads and writes.

A run directory (``OUT/NAME``, made by ``budgetlm pretrain`` or ``budgetlm continue``) holds:

- ``config.yaml``: the resolved RunConfig, written once before training starts;
- ``metrics.jsonl``: append-only records (``start``, ``step``, ``eval``, events, ``end``);
- ``tokenizer.json``: the tokenizer the model was trained with;
- ``checkpoints/``: ``step_NNNNNN/`` folders (``train/checkpoint.py``), each written
  atomically (temp dir, then rename), the last tagged ``final``;
- ``samples.txt``: generations of the final model;
- ``eval.json``: the latest ``budgetlm eval`` of the run;
- ``report.html``: the latest ``budgetlm report`` of the run.
"""

from __future__ import annotations

from budgetlm.data.store.tokenizer import TOKENIZER_FILE

CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.jsonl"
SAMPLES_FILE = "samples.txt"
EVAL_FILE = "eval.json"
REPORT_FILE = "report.html"

__all__ = [
    "CONFIG_FILE",
    "METRICS_FILE",
    "SAMPLES_FILE",
    "EVAL_FILE",
    "REPORT_FILE",
    "TOKENIZER_FILE",
]
