import pytest

from budgetlm.config import load_config
from budgetlm.data.store.tokenizer import Tokenizer
from budgetlm.errors import UserError
from budgetlm.job.decide import resolve_vocab, use_sharding
from tests.conftest import TINY_MODEL


@pytest.fixture(scope="module")
def tokenizer(tiny_prepared):
    tok = Tokenizer.load(tiny_prepared / "tokenizer.json")
    assert tok.vocab_size == 300
    return tok


def config(**values):
    return load_config(None, list({**TINY_MODEL, **values}.items()))


def test_vocab_is_filled_from_the_tokenizer(tokenizer):
    cfg = config()
    assert cfg.model.vocab_size is None and not cfg.model.is_resolved()
    resolve_vocab(cfg, tokenizer)
    assert cfg.model.is_resolved()
    assert cfg.model.vocab_size == 300
    assert (cfg.model.d_model, cfg.model.n_layers, cfg.model.n_heads) == (32, 2, 2)


def test_a_preset_size_is_resolved_with_the_tokenizers_vocab(tokenizer):
    cfg = load_config(None, [("model.size", "nano")])
    resolve_vocab(cfg, tokenizer)
    assert cfg.model.is_resolved() and cfg.model.vocab_size == 300


def test_a_larger_model_vocab_is_kept(tokenizer):
    cfg = config(**{"model.vocab_size": 512})
    resolve_vocab(cfg, tokenizer)
    assert cfg.model.vocab_size == 512


def test_a_resolved_model_is_left_as_it_is(tokenizer):
    cfg = config()
    cfg.model = cfg.model.resolved(vocab_size=320)
    before = cfg.model
    resolve_vocab(cfg, tokenizer)
    assert cfg.model == before and cfg.model.vocab_size == 320


@pytest.mark.parametrize("resolved", [False, True])
def test_a_smaller_model_vocab_is_refused(tokenizer, resolved):
    cfg = config(**{"model.vocab_size": 200})
    if resolved:
        cfg.model = cfg.model.resolved()
    with pytest.raises(UserError, match="model.vocab_size is 200 but the tokenizer has 300 tokens"):
        resolve_vocab(cfg, tokenizer)


def test_ddp_never_shards():
    assert use_sharding(config(**{"train.parallel": "ddp"}), distributed=False) is False
    assert use_sharding(config(**{"train.parallel": "ddp"}), distributed=True) is False
    muon = config(**{"train.parallel": "ddp", "train.optimizer": "muon"})
    assert use_sharding(muon, distributed=True) is False


def test_fsdp_shards_only_under_distributed():
    cfg = config(**{"train.parallel": "fsdp", "train.optimizer": "adamw"})
    assert use_sharding(cfg, distributed=False) is False
    assert use_sharding(cfg, distributed=True) is True


@pytest.mark.parametrize("distributed", [False, True])
def test_fsdp_with_muon_is_refused(distributed):
    cfg = config(**{"train.parallel": "fsdp", "train.optimizer": "muon"})
    with pytest.raises(UserError, match="fsdp works with train.optimizer adamw only, not 'muon'"):
        use_sharding(cfg, distributed)


def test_unknown_parallel_mode_is_a_user_error():
    cfg = config()
    cfg.train.parallel = "zero3"
    with pytest.raises(UserError, match="train.parallel must be one of ddp, fsdp, got 'zero3'"):
        use_sharding(cfg, distributed=False)


def test_a_full_transformers_job_too_big_for_memory_points_to_lora(tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    import torch

    from budgetlm.config import RunConfig
    from budgetlm.job import decide
    from budgetlm.model.build import build_model
    from budgetlm.model.hf_backend import hf_backend_config, read_architecture
    from tests.conftest import write_hf_model

    write_hf_model(tmp_path / "hf", "qwen3", head_dim=8)
    config = RunConfig()
    config.model = hf_backend_config(read_architecture(tmp_path / "hf"), str(tmp_path / "hf"))
    model = build_model(config.model)
    monkeypatch.setattr(decide, "available_bytes", lambda device: 1000)
    with pytest.raises(UserError, match=r"free; fix: --adapter lora \(frozen weights cost"):
        decide.fit_memory(config, model, torch.device("cpu"), 1, lambda _: None)
    config.model.adapter = "lora"
    lora = build_model(config.model)
    trainable = sum(p.numel() for p in lora.parameters() if p.requires_grad)
    assert 0 < trainable < sum(p.numel() for p in model.parameters()) / 2
    with pytest.raises(UserError, match="fix: --train.activation_checkpointing true"):
        config.train.activation_checkpointing = False
        decide.fit_memory(config, lora, torch.device("cpu"), 1, lambda _: None)
