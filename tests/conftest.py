"""Shared fixtures: a tiny prepared dataset and a tiny run config, made by the tests."""

import random

import pytest

from budgetlm.config import load_config

WORDS = [
    "the",
    "cat",
    "sat",
    "on",
    "a",
    "mat",
    "and",
    "then",
    "it",
    "ran",
    "to",
    "see",
    "what",
    "the",
    "dog",
    "was",
    "doing",
    "in",
    "the",
    "sun",
]


def write_corpus(root, docs_per_domain=12, seed=0):
    """Two small domains of text files: English-like word salad and Python-like lines."""
    rng = random.Random(seed)
    prose, code = root / "prose", root / "code"
    prose.mkdir(parents=True)
    code.mkdir()
    for i in range(docs_per_domain):
        words = [rng.choice(WORDS) for _ in range(300)]
        (prose / f"doc{i}.txt").write_text(" ".join(words) + ".\n")
        lines = [f"def f{i}_{j}(x):\n    return x + {rng.randint(0, 9)}\n" for j in range(30)]
        (code / f"mod{i}.py").write_text("".join(lines))
    return [f"prose={prose}", f"code={code}"]


@pytest.fixture(scope="session")
def tiny_prepared(tmp_path_factory):
    """A prepared two-domain dataset with a 300-token vocabulary."""
    from budgetlm.api import prepare

    root = tmp_path_factory.mktemp("corpus")
    sources = write_corpus(root)
    out = root / "prepared"
    prepare(sources, out, vocab_size=300, val_fraction=0.2, log=lambda _: None)
    return out


TINY_MODEL = {
    "model.size": "custom",
    "model.d_model": 32,
    "model.n_layers": 2,
    "model.n_heads": 2,
    "model.seq_len": 32,
}
"""A ~20k-parameter model shape for tests."""


@pytest.fixture
def tiny_config(tiny_prepared, tmp_path):
    """A run config that trains a ~20k-parameter model for a few steps on tiny_prepared."""

    def make(**overrides):
        values = {
            "data.prepared": str(tiny_prepared),
            "out_dir": str(tmp_path / "runs"),
            "name": "tiny",
            "budget": "12steps",
            **TINY_MODEL,
            "train.batch_size": 8,
            "train.micro_batch_size": 4,
            "train.log_every": 2,
            "eval.count": 3,
            "eval.tokens_per_domain": 256,
            "checkpoint.every": 0.25,
            "samples.max_new_tokens": 8,
            **overrides,
        }
        return load_config(None, list(values.items()))

    return make
