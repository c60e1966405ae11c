"""One training job end to end (job/run.py run_training), straight from a prepared dataset."""

import json
import math

import pytest
import yaml

from budgetlm.config import load_config
from budgetlm.data.feed.streams import from_dataset
from budgetlm.data.store.dataset import PreparedDataset
from budgetlm.errors import UserError
from budgetlm.job.run import run_training
from budgetlm.train.checkpoint import list_checkpoints
from tests.conftest import TINY_MODEL

STEPS, BATCH, SEQ = 4, 8, TINY_MODEL["model.seq_len"]


def job_config(prepared, out_dir, **overrides):
    values = {
        **TINY_MODEL,
        "data.prepared": str(prepared),
        "out_dir": str(out_dir),
        "name": "job",
        "budget": f"{STEPS}steps",
        "train.batch_size": BATCH,
        "train.micro_batch_size": BATCH,
        "train.precision": "bf16",
        "eval.count": 1,
        "eval.tokens_per_domain": 64,
        "checkpoint.every": 0,
        "samples.max_new_tokens": 2,
        "samples.prompts_per_domain": 1,
        **overrides,
    }
    return load_config(None, list(values.items()))


def train(prepared, config, run_dir=None, log=None):
    dataset = PreparedDataset(prepared)
    data = from_dataset(dataset, config.data.weights)
    tokenizer = dataset.path / "tokenizer.json"
    return run_training(config, data, tokenizer, run_dir, log or (lambda _: None))


def records(run_dir):
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def job(tiny_prepared, tmp_path_factory):
    out = tmp_path_factory.mktemp("job")
    config = job_config(tiny_prepared, out)
    assert config.model.vocab_size is None  # left open: the tokenizer decides it
    lines = []
    return train(tiny_prepared, config, log=lines.append), out, lines


def test_the_job_creates_the_run_directory(job, tiny_prepared):
    result, out, _ = job
    run = result.run_dir
    assert run == out / "job"
    assert {p.name for p in run.iterdir()} == {
        "config.yaml",
        "tokenizer.json",
        "metrics.jsonl",
        "checkpoints",
        "samples.txt",
    }
    assert (run / "tokenizer.json").read_bytes() == (tiny_prepared / "tokenizer.json").read_bytes()
    assert "=== prose" in (run / "samples.txt").read_text()
    assert "=== code" in (run / "samples.txt").read_text()


def test_the_saved_config_holds_the_decisions(job):
    result, _, _ = job
    saved = load_config(result.run_dir / "config.yaml")
    assert saved.model.vocab_size == 300  # from the tokenizer
    assert (saved.model.d_model, saved.model.n_layers, saved.model.seq_len) == (32, 2, SEQ)
    assert saved.train.precision == "bf16" and saved.train.compile is False
    assert saved.budget == f"{STEPS}steps"


def test_the_result_and_metrics_record_the_whole_budget(job):
    result, _, _ = job
    assert result.steps == STEPS and result.tokens == STEPS * BATCH * SEQ
    kinds = [r["type"] for r in records(result.run_dir)]
    assert kinds[0] == "start" and kinds[-1] == "end" and kinds.count("end") == 1
    end = records(result.run_dir)[-1]
    assert end["steps"] == STEPS and end["tokens"] == STEPS * BATCH * SEQ
    assert end["val_loss"] == pytest.approx(result.val_loss)
    evals = [r for r in records(result.run_dir) if r["type"] == "eval"]
    assert evals[-1]["step"] == STEPS
    assert result.val_loss == pytest.approx(evals[-1]["val_loss"])
    assert set(result.val_loss) == {"prose", "code"}
    assert result.tokens_per_second > 0
    assert "where the budget went" in result.summary


def test_the_last_checkpoint_is_tagged_final(job):
    result, _, _ = job
    checkpoints = list_checkpoints(result.run_dir)
    assert checkpoints[-1].name == f"step_{STEPS:06d}"
    state = json.loads((checkpoints[-1] / "state.json").read_text())
    assert state["step"] == STEPS and "final" in state["tags"]
    assert {p.name for p in checkpoints[-1].iterdir()} == {
        "model.safetensors",
        "optim.pt",
        "state.json",
    }


def test_the_job_logs_what_it_trains(job):
    result, _, lines = job
    assert any(line.startswith("training custom (") and "on prose, code" in line for line in lines)
    assert lines[-1] == result.summary


def test_resuming_a_finished_run_is_refused(job, tiny_prepared):
    result, _, _ = job
    run = result.run_dir
    before = (run / "metrics.jsonl").read_text()
    checkpoints = list_checkpoints(run)
    config = load_config(run / "config.yaml")
    with pytest.raises(UserError, match=f"run {run} already finished at step {STEPS}"):
        train(tiny_prepared, config, run_dir=run)
    assert (run / "metrics.jsonl").read_text() == before  # no resume record was added
    assert list_checkpoints(run) == checkpoints  # the run is kept as it was
    assert (run / "config.yaml").is_file()


def test_a_budget_too_small_for_one_step_fails_before_a_run_directory(tiny_prepared, tmp_path):
    config = job_config(tiny_prepared, tmp_path / "out", budget="100tok")
    with pytest.raises(UserError, match="too small for one optimizer step, which uses 256"):
        train(tiny_prepared, config)
    assert not (tmp_path / "out" / "job").exists()
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_new_job_refuses_an_existing_run_directory(job, tiny_prepared):
    _, out, _ = job
    with pytest.raises(UserError, match="already exists; pass --resume"):
        train(tiny_prepared, job_config(tiny_prepared, out))


def test_a_job_with_every_recipe_option_trains_and_records_them(tiny_prepared, tmp_path):
    options = {
        "model.qk_norm": True,
        "model.mlp": "relu2",
        "model.value_embeddings": 1,
        "model.document_mask": True,
        "model.tie_embeddings": False,
        "train.z_loss": 1e-4,
    }
    result = train(tiny_prepared, job_config(tiny_prepared, tmp_path, **options))
    saved = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    tokenizer = PreparedDataset(tiny_prepared).tokenizer
    assert saved["model"]["eos_id"] == tokenizer.eos_id  # the separator, from the tokenizer
    assert saved["model"]["mlp"] == "relu2" and saved["train"]["z_loss"] == 1e-4
    losses = [r["loss"] for r in records(result.run_dir) if r["type"] == "train"]
    assert losses and all(math.isfinite(x) for x in losses)
