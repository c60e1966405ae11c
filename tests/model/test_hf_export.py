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


def test_a_qk_norm_model_exports_as_qwen3_with_the_same_logits(run_dir, tmp_path) -> None:
    from budgetlm.data.store.tokenizer import Tokenizer
    from budgetlm.model.config import ModelConfig
    from budgetlm.model.decoder import Decoder
    from budgetlm.model.hf_export import export_hf

    tokenizer = Tokenizer.load(run_dir / "tokenizer.json")
    config = ModelConfig(size="nano", qk_norm=True, n_kv_heads=2, seq_len=32)
    torch.manual_seed(0)
    model = Decoder(config.resolved(tokenizer.vocab_size)).eval()
    with torch.no_grad():  # gains away from 1, so a norm left out would show
        for block in model.blocks:
            block.attn.q_norm.weight.uniform_(0.5, 1.5)
            block.attn.k_norm.weight.uniform_(0.5, 1.5)
    export_hf(model, tokenizer, tmp_path / "hf")
    again = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    assert type(again).__name__ == "Qwen3ForCausalLM"
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, tokenizer.vocab_size, (2, 32), generator=generator)
    with torch.no_grad():
        assert (again(ids).logits - model(ids)).abs().max().item() < 1e-4


@pytest.mark.parametrize(
    "options, named",
    [({"mlp": "relu2"}, "model.mlp relu2"), ({"value_embeddings": 1}, "model.value_embeddings")],
)
def test_export_refuses_an_option_transformers_lacks_before_writing(tmp_path, options, named):
    from budgetlm.model.config import ModelConfig
    from budgetlm.model.decoder import Decoder
    from budgetlm.model.hf_export import export_hf

    model = Decoder(ModelConfig(size="nano", seq_len=16, **options).resolved(64))
    with pytest.raises(UserError, match=f"cannot export.*{named}"):
        export_hf(model, None, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()
