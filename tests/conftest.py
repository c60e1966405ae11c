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


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Measurements of this machine (precision, speed) go to a cache of the test session, shared
    by its tests (a test that needs an empty cache sets BUDGETLM_CACHE itself)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("BUDGETLM_CACHE", str(tmp_path_factory.mktemp("budgetlm-cache")))
    yield
    mp.undo()


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


ARCHITECTURES = {
    "llama3": ("llama", {"rope_scaling": {
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16,
    }}),
    "qwen2": ("qwen2", {}),
    "qwen3": ("qwen3", {"head_dim": 8}),
    "mistral": ("mistral", {"sliding_window": 16}),
    "gemma3": ("gemma3_text", {"head_dim": 8, "sliding_window": 16}),
    "smollm3": ("smollm3", {}),
    "olmo2": ("olmo2", {}),
    "phi3": ("phi3", {}),
}  # fmt: skip
"""Tiny random configs of popular base architectures (name -> transformers model_type and the
fields it needs): Llama 3 with llama3 RoPE scaling, Qwen2, Qwen3 (QK-norm), Mistral (sliding
window), Gemma 3 (sliding and global layers), SmolLM3, OLMo 2 and Phi-3 (fused projections)."""


def write_hf_model(folder, model_type="llama", tie=False, texts=None, shard_size=None, **shape):
    """A tiny random Hugging Face model saved with `save_pretrained`, with a Llama-style
    tokenizer (BPE trained on `texts`, <s> prepended, </s> as EOS): "llama", "mistral" and
    "qwen2" as their classes, or an ARCHITECTURES name built by AutoModelForCausalLM. Returns
    the transformers model, in eval mode."""
    import torch
    import transformers
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    hf_tok = Tokenizer(models.BPE())
    hf_tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf_tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=320,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    hf_tok.train_from_iterator(texts or [" ".join(WORDS)] * 4, trainer)
    hf_tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", hf_tok.token_to_id("<s>"))]
    )
    folder.mkdir(parents=True, exist_ok=True)
    hf_tok.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text('{"bos_token": "<s>", "eos_token": "</s>"}')

    classes = {
        "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
        "mistral": (transformers.MistralConfig, transformers.MistralForCausalLM),
        "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
    }
    if model_type in classes:
        config_class, model_class = classes[model_type]
    else:
        hf_type, extra = ARCHITECTURES[model_type]
        config_class = lambda **v: transformers.AutoConfig.for_model(hf_type, **{**extra, **v})  # noqa: E731
        model_class = transformers.AutoModelForCausalLM.from_config
    values = {
        "vocab_size": 328,  # padded above the tokenizer's 320, as real checkpoints often are
        "hidden_size": 32,
        "intermediate_size": 48,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 64,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": tie,
        "bos_token_id": hf_tok.token_to_id("<s>"),
        "eos_token_id": hf_tok.token_to_id("</s>"),
        "pad_token_id": hf_tok.token_to_id("<unk>"),
        **shape,
    }
    torch.manual_seed(0)
    model = model_class(config_class(**values)).eval()
    with torch.no_grad():  # HF zero-inits biases and ones-inits norms: randomise them to test them
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    kwargs = {"max_shard_size": shard_size} if shard_size else {}
    model.save_pretrained(folder, **kwargs)
    return model


def kill_after_step(monkeypatch, step):
    """Make training die (KeyboardInterrupt) right after step `step` and its checkpoint, as a
    killed process would; `monkeypatch.undo()` lets the run resume normally."""
    from budgetlm.train.loop import Trainer

    original = Trainer._maybe_checkpoint

    def crash(self):
        original(self)
        if self.state.step == step:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_maybe_checkpoint", crash)
