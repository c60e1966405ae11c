"""Real tiny runs to report on: a pre-training run, a continual run from it on a new domain,
and a run on data tokenized with another tokenizer."""

import pytest

from budgetlm import api
from budgetlm.config import load_config

from ..conftest import TINY_MODEL, write_corpus

TINY = {
    **TINY_MODEL,
    "train.batch_size": 8,
    "train.micro_batch_size": 8,
    "train.log_every": 2,
    "eval.count": 3,
    "eval.tokens_per_domain": 256,
    "checkpoint.every": 0.25,
    "samples.max_new_tokens": 6,
    "samples.prompts_per_domain": 1,
}


def quiet(_message: str) -> None:
    pass


@pytest.fixture(scope="session")
def report_runs(tiny_prepared, tmp_path_factory):
    """{'parent': 12-step two-domain run, 'continual': 8 steps on a new domain 'notes' with
    replay, 'other': 4 steps on data with a 280-token vocabulary (another tokenizer)}."""
    root = tmp_path_factory.mktemp("report-runs")
    runs = root / "runs"

    def train(name, budget, **values):
        config = load_config(
            None,
            list({**TINY, "out_dir": str(runs), "name": name, "budget": budget, **values}.items()),
        )
        if config.continual.from_run:
            return api.continue_pretraining(config, log=quiet).run_dir
        return api.pretrain(config, log=quiet).run_dir

    parent = train("parent", "12steps", **{"data.prepared": str(tiny_prepared)})
    prose, _ = write_corpus(root / "notes-corpus", docs_per_domain=6, seed=1)
    continual = train(
        "continual",
        "8steps",
        **{
            "continual.from_run": str(parent),
            "data.sources": [f"notes={prose.split('=', 1)[1]}"],
            "data.val_fraction": 0.2,
            "data.cache_dir": str(root / "cache"),
        },
    )
    sources = write_corpus(root / "other-corpus", docs_per_domain=6, seed=2)
    other_data = root / "other-prepared"
    api.prepare(sources, other_data, vocab_size=280, val_fraction=0.2, log=quiet)
    other = train("other", "4steps", **{"data.prepared": str(other_data)})
    return {"parent": parent, "continual": continual, "other": other}
