"""Hugging Face Llama/Mistral/Qwen2 checkpoints load into the Decoder with the same logits."""

from __future__ import annotations

import json

import pytest
import torch

from budgetlm.errors import UserError
from budgetlm.model.hf_import import (
    hf_model_config,
    is_hf_model_dir,
    load_hf_model,
    read_hf_config,
    resolve_hf_source,
)
from tests.conftest import write_hf_model

pytest.importorskip("transformers")


def _logits_match(hf_model, folder, seq_len=None) -> float:
    model = load_hf_model(folder, seq_len).eval()
    ids = torch.randint(0, 320, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model(ids)
        theirs = hf_model(ids).logits
    return (ours - theirs).abs().max().item()


@pytest.mark.parametrize("model_type", ["llama", "mistral", "qwen2"])
@pytest.mark.parametrize("tie", [False, True])
def test_logits_match_transformers_in_fp32(tmp_path, model_type, tie) -> None:
    hf_model = write_hf_model(tmp_path / "hf", model_type, tie=tie)
    assert _logits_match(hf_model, tmp_path / "hf") < 1e-4


def test_sharded_safetensors_and_multi_head_attention(tmp_path) -> None:
    hf_model = write_hf_model(tmp_path / "hf", num_key_value_heads=4, shard_size="20KB")
    assert (tmp_path / "hf" / "model.safetensors.index.json").is_file()
    assert _logits_match(hf_model, tmp_path / "hf") < 1e-4


def test_legacy_pytorch_bin_loads_without_pickled_code(tmp_path) -> None:
    hf_model = write_hf_model(tmp_path / "hf")
    state = hf_model.state_dict()
    (tmp_path / "hf" / "model.safetensors").unlink()
    torch.save(state, tmp_path / "hf" / "pytorch_model.bin")
    assert _logits_match(hf_model, tmp_path / "hf") < 1e-4


def test_config_mapping_and_training_context(tmp_path) -> None:
    write_hf_model(tmp_path / "hf", "qwen2", tie=True, rope_theta=50000.0)
    hf = read_hf_config(tmp_path / "hf")
    config = hf_model_config(hf)
    assert (config.vocab_size, config.d_model, config.n_layers) == (328, 32, 2)
    assert (config.n_heads, config.n_kv_heads, config.ffn_hidden) == (4, 2, 48)
    assert (config.tie_embeddings, config.qkv_bias, config.rope_theta) == (True, True, 50000.0)
    assert config.seq_len == 64  # the model's max_position_embeddings, below the 1024 cap
    assert hf_model_config(hf, seq_len=16).seq_len == 16
    with pytest.raises(UserError, match=r"continual.seq_len 65 is longer .* set at most 64"):
        hf_model_config(hf, seq_len=65)
    mistral = {**hf, "model_type": "mistral", "sliding_window": 32, "max_position_embeddings": 4096}
    assert hf_model_config(mistral).seq_len == 32  # within the window, attention is exact


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"model_type": "gpt2"}, r"model_type 'gpt2' is not supported.*llama, mistral, qwen2"),
        ({"hidden_act": "gelu"}, r"sets hidden_act in config.json.*only SwiGLU MLPs \(silu\)"),
        ({"attention_bias": True}, r"sets attention_bias"),
        ({"rope_parameters": {"rope_type": "llama3", "rope_theta": 5e5}}, r"rope_type"),
        ({"head_dim": 16}, r"sets head_dim"),
        ({"hidden_size": "32"}, r"hidden_size must be a positive integer"),
    ],
)
def test_unsupported_configs_are_named(tmp_path, change, message) -> None:
    write_hf_model(tmp_path / "hf")
    hf = {**read_hf_config(tmp_path / "hf"), **change}
    with pytest.raises(UserError, match=message):
        hf_model_config(hf)


def test_missing_weights_and_mismatched_files(tmp_path) -> None:
    write_hf_model(tmp_path / "hf")
    folder = tmp_path / "hf"
    (folder / "model.safetensors").rename(tmp_path / "weights.safetensors")
    with pytest.raises(UserError, match=r"has a config.json but no weights .*save_pretrained"):
        load_hf_model(folder)
    (tmp_path / "weights.safetensors").rename(folder / "model.safetensors")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 3}))
    with pytest.raises(UserError, match=r"do not match their config.json: missing \['blocks.2"):
        load_hf_model(folder)
    (folder / "config.json").write_text(json.dumps({**config, "intermediate_size": 64}))
    with pytest.raises(UserError, match=r"down_proj.* shape \(32, 48\), expected \(32, 64\)"):
        load_hf_model(folder)


def test_folder_detection_and_sources(tmp_path, monkeypatch) -> None:
    write_hf_model(tmp_path / "hf")
    assert is_hf_model_dir(tmp_path / "hf")
    assert not is_hf_model_dir(tmp_path)
    with pytest.raises(UserError, match=r"neither a budgetlm run .* nor a Hugging Face model"):
        read_hf_config(tmp_path)
    assert resolve_hf_source(str(tmp_path / "hf")) == tmp_path / "hf"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(UserError, match=r"'nobody/nothing' is not a folder here and could not"):
        resolve_hf_source("nobody/nothing")


def test_a_missing_local_folder_is_never_downloaded(tmp_path, monkeypatch) -> None:
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve_hf_source("runs/typo") == tmp_path.joinpath("runs/typo").relative_to(tmp_path)
