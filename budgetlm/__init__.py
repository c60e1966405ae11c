"""budgetlm: pre-train and continually pre-train language models under a compute budget."""

__version__ = "0.1.0"
