"""Export to a Hugging Face folder: transformers loads it with the same logits and tokens."""

from __future__ import annotations

import pytest
import torch

from budgetlm import api
from budgetlm.errors import UserError
from budgetlm.model.hf_import import load_hf_model

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def run_dir(tiny_prepared, tmp_path_factory):
    from budgetlm.config import load_config

    from ..conftest import TINY_MODEL

    values = {
        **TINY_MODEL,
        "model.n_kv_heads": 1,  # grouped-query attention
        "data.prepared": str(tiny_prepared),
        "out_dir": str(tmp_path_factory.mktemp("runs")),
        "name": "export",
        "budget": "4steps",
        "train.batch_size": 4,
        "train.micro_batch_size": 4,
        "eval.count": 1,
        "eval.tokens_per_domain": 64,
        "samples.max_new_tokens": 2,
    }
    return api.pretrain(load_config(None, list(values.items())), log=lambda _: None).run_dir


def test_transformers_loads_the_export_with_the_same_logits(run_dir, tmp_path) -> None:
    out = api.export(run_dir, tmp_path / "hf")
    ours = api.load_model(run_dir)
    theirs = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    ids = torch.randint(
        0, ours.config.vocab_size, (2, 32), generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        diff = (ours(ids) - theirs(ids).logits).abs().max().item()
    assert diff < 1e-4
    assert type(theirs).__name__ == "LlamaForCausalLM"
    back = load_hf_model(out).eval()  # and budgetlm reads its own export back
    with torch.no_grad():
        assert torch.equal(back(ids), ours(ids))


def test_exported_tokenizer_encodes_like_the_run(run_dir, tmp_path) -> None:
    out = api.export(run_dir, tmp_path / "hf")
    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    ours = api.load_tokenizer(run_dir)
    text = "def f(x):\n    return x + 1  # the cat sat"
    assert hf_tok(text, add_special_tokens=False)["input_ids"] == ours.encode(text)
    assert hf_tok.eos_token_id == ours.eos_id


def test_qwen2_round_trip_keeps_biases(tmp_path) -> None:
    from ..conftest import write_hf_model

    original = write_hf_model(tmp_path / "qwen", "qwen2", tie=True)
    model = load_hf_model(tmp_path / "qwen")
    from budgetlm.data.store.tokenizer import Tokenizer
    from budgetlm.model.hf_export import export_hf

    export_hf(model, Tokenizer.load(tmp_path / "qwen"), tmp_path / "out")
    again = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    ids = torch.randint(0, 320, (1, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (again(ids).logits - original(ids).logits).abs().max().item() < 1e-4
    assert type(again).__name__ == "Qwen2ForCausalLM"


def test_export_refuses_a_non_empty_folder(run_dir, tmp_path) -> None:
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="already exists and is not empty"):
        api.export(run_dir, tmp_path / "hf")
    assert [p.name for p in (tmp_path / "hf").iterdir()] == ["keep.txt"]
