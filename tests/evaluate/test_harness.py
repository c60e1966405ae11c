"""The lm-evaluation-harness bridge: log-likelihoods equal the model's own log-softmax, greedy
generation stops where asked, and lm-eval runs a local task on the model in memory."""

from __future__ import annotations

import json
import math
import sys

import pytest
import torch
from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, pre_tokenizers, processors, trainers

from budgetlm.data.store.tokenizer import Tokenizer
from budgetlm.errors import UserError
from budgetlm.evaluate.harness import HarnessScorer, harness_model, resolve_tasks, run_tasks
from budgetlm.model.config import ModelConfig
from budgetlm.model.decoder import Decoder

CPU = torch.device("cpu")
TEXT = "the cat sat on the mat and then it ran to see what the dog was doing in the sun"


@pytest.fixture(scope="module")
def tokenizer(tiny_prepared):
    return Tokenizer.load(tiny_prepared)


def decoder(vocab_size: int, seed: int = 0) -> Decoder:
    """A random ~20k-parameter decoder with seq_len 32 (untrained: any logits will do)."""
    torch.manual_seed(seed)
    config = ModelConfig(size="custom", d_model=32, n_layers=2, n_heads=2, seq_len=32)
    model = Decoder(config.resolved(vocab_size=vocab_size)).eval()
    with torch.no_grad():  # logits larger than the init's, so that greedy checks mean something
        model.lm_head.weight.mul_(20)
    return model


@pytest.fixture(scope="module")
def scorer(tokenizer):
    return HarnessScorer(decoder(tokenizer.vocab_size), tokenizer, CPU, batch_size=4)


def direct(model: Decoder, ids: list[int], k: int) -> tuple[float, bool]:
    """Sum of log p(ids[i] | ids[:i]) over the last k ids, and whether each is the argmax, from
    one fp32 forward pass over at most seq_len inputs ending before the last id."""
    inputs = ids[:-1][-model.config.seq_len :]
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([inputs]))[0].float(), dim=-1)[-k:]
    targets = torch.tensor(ids[-k:])
    total = logprobs.gather(1, targets[:, None]).sum().item()
    return total, bool((logprobs.argmax(-1) == targets).all())


def test_loglikelihood_is_the_models_log_softmax(scorer, tokenizer):
    pairs = [("the cat", " sat on the mat"), ("def f(x):", "\n    return x"), ("the", " dog")]
    got = scorer.loglikelihood(pairs)
    for (context, continuation), (total, greedy) in zip(pairs, got, strict=True):
        whole = tokenizer.encode(context + continuation)
        k = len(whole) - len(tokenizer.encode(context))
        want_total, want_greedy = direct(scorer.model, whole, k)
        assert total == pytest.approx(want_total, abs=1e-4)
        assert greedy == want_greedy


def test_greedy_is_true_for_the_models_own_argmax(scorer, tokenizer):
    context = tokenizer.encode("the cat sat")
    with torch.no_grad():
        best = int(scorer.model(torch.tensor([context]))[0, -1].argmax())
    continuation = tokenizer.decode([best])
    if tokenizer.encode("the cat sat" + continuation)[len(context) :] != [best]:
        pytest.skip("the argmax token merges with the context")
    [(total, greedy)] = scorer.loglikelihood([("the cat sat", continuation)])
    assert greedy and total == pytest.approx(direct(scorer.model, [*context, best], 1)[0], abs=1e-4)


def test_batching_and_padding_do_not_change_scores(tokenizer):
    model = decoder(tokenizer.vocab_size)
    pairs = [("the cat", " sat"), ("def f(x):\n", "    return x + 1"), ("", "the dog"), ("a", " b")]
    one = HarnessScorer(model, tokenizer, CPU, batch_size=1).loglikelihood(pairs)
    many = HarnessScorer(model, tokenizer, CPU, batch_size=16).loglikelihood(pairs)
    for (a, greedy_a), (b, greedy_b) in zip(one, many, strict=True):
        assert a == pytest.approx(b, abs=1e-5) and greedy_a == greedy_b


def test_long_context_is_left_truncated_to_seq_len(scorer, tokenizer):
    context = " ".join([TEXT] * 3)
    whole = tokenizer.encode(context + " and")
    k = len(whole) - len(tokenizer.encode(context))
    assert len(whole) > 40  # longer than seq_len 32
    [(total, _)] = scorer.loglikelihood([(context, " and")])
    assert total == pytest.approx(direct(scorer.model, whole, k)[0], abs=1e-4)


def test_empty_context_conditions_on_eos_and_spaces_move_to_the_continuation(scorer, tokenizer):
    eos = tokenizer.eos_id
    assert scorer.encode_pair("", "the cat") == ([eos], tokenizer.encode("the cat"))
    assert scorer.encode_pair("the cat ", "sat") == scorer.encode_pair("the cat", " sat")
    [(total, _)] = scorer.loglikelihood([("", "the cat")])
    ids = [eos, *tokenizer.encode("the cat")]
    assert total == pytest.approx(direct(scorer.model, ids, len(ids) - 1)[0], abs=1e-4)


def test_a_tokenizer_with_bos_starts_every_context_with_it():
    hf = HFTokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    hf.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=["<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    hf.train_from_iterator([TEXT] * 4, trainer)
    hf.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", hf.token_to_id("<s>"))]
    )
    tokenizer = Tokenizer(hf, eos_token="</s>")
    bos = tokenizer.bos_id
    scorer = HarnessScorer(decoder(tokenizer.vocab_size), tokenizer, CPU)
    assert bos is not None and scorer.prefix_id == bos
    context, continuation = scorer.encode_pair("the cat", " sat")
    assert context == [bos, *tokenizer.encode("the cat")]
    assert context + continuation == [bos, *tokenizer.encode("the cat sat")]
    assert scorer.encode_pair("", "the") == ([bos], tokenizer.encode("the"))
    [(total, _)] = scorer.loglikelihood([("the cat", " sat")])
    ids = context + continuation
    assert total == pytest.approx(direct(scorer.model, ids, len(continuation))[0], abs=1e-4)


def test_rolling_loglikelihood_is_the_sum_of_token_log_probs(scorer, tokenizer):
    text = "the cat sat on the mat"
    ids = [tokenizer.eos_id, *tokenizer.encode(text)]
    assert len(ids) <= 33  # one window
    [total] = scorer.loglikelihood_rolling([text])
    assert total == pytest.approx(direct(scorer.model, ids, len(ids) - 1)[0], abs=1e-4)
    assert scorer.loglikelihood_rolling([""]) == [0.0]


def test_rolling_windows_are_lm_evals_and_a_long_continuation_scores_the_same(scorer, tokenizer):
    utils = pytest.importorskip("lm_eval.utils")
    text = " ".join([TEXT] * 4)
    ids = tokenizer.encode(text)
    assert len(ids) > 3 * 32
    windows = utils.get_rolling_token_windows(ids, tokenizer.eos_id, 32, 1)
    want = 0.0
    for context, predicted in map(utils.make_disjoint_window, windows):
        want += direct(scorer.model, context + predicted, len(predicted))[0]
    [total] = scorer.loglikelihood_rolling([text])
    assert total == pytest.approx(want, abs=1e-3)
    [(as_continuation, _)] = scorer.loglikelihood([("", text)])
    assert as_continuation == pytest.approx(total, abs=1e-4)


def test_scores_and_generations_equal_lm_evals_hf_model_on_the_export(scorer, tmp_path):
    """The reference: lm-eval's own Hugging Face model, on the same weights exported."""
    pytest.importorskip("transformers")
    huggingface = pytest.importorskip("lm_eval.models.huggingface")
    from lm_eval.api.instance import Instance

    from budgetlm.model.hf_export import export_hf

    folder = export_hf(scorer.model, scorer.tokenizer, tmp_path / "hf")
    hf = huggingface.HFLM(
        pretrained=str(folder), device="cpu", batch_size=4, dtype="float32", max_length=32
    )
    pairs = [("the cat", " sat"), ("the cat ", "sat on"), ("", "the dog"), (TEXT * 2, " and")]
    theirs = hf.loglikelihood(
        [Instance("loglikelihood", {}, p, i) for i, p in enumerate(pairs)], disable_tqdm=True
    )
    for (a, greedy_a), (b, greedy_b) in zip(theirs, scorer.loglikelihood(pairs), strict=True):
        assert a == pytest.approx(b, abs=1e-4) and greedy_a == greedy_b
    texts = [TEXT, " ".join([TEXT] * 3)]
    theirs = hf.loglikelihood_rolling(
        [Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate(texts)],
        disable_tqdm=True,
    )
    assert theirs == pytest.approx(scorer.loglikelihood_rolling(texts), abs=1e-3)
    kwargs = {"until": ["\n"], "max_gen_toks": 8, "do_sample": False}
    contexts = ["def f(x):\n    return", "the cat"]
    theirs = hf.generate_until(
        [Instance("generate_until", {}, (c, kwargs), i) for i, c in enumerate(contexts)],
        disable_tqdm=True,
    )
    assert theirs == scorer.generate_until([(c, ["\n"], 8) for c in contexts])


class PlusOne(torch.nn.Module):
    """Predicts 'previous token + 1' (mod the vocabulary) with certainty: its generations are
    known, and it counts its forward passes."""

    def __init__(self, vocab_size: int) -> None:
        super().__init__()
        self.config = ModelConfig(size="custom", d_model=8, n_layers=1, n_heads=1, seq_len=8)
        self.config = self.config.resolved(vocab_size=vocab_size)
        self.calls = 0

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        vocab = self.config.vocab_size
        return torch.nn.functional.one_hot((idx + 1) % vocab, vocab).float() * 10


def plus_one_text(tokenizer: Tokenizer, context: str, n: int) -> str:
    ids, last = [], tokenizer.encode(context)[-1]
    for _ in range(n):
        last = (last + 1) % tokenizer.vocab_size
        if last == tokenizer.eos_id:
            break
        ids.append(last)
    return tokenizer.decode(ids)


def test_generation_stops_at_the_stop_string_and_the_token_cap(tokenizer):
    model = PlusOne(tokenizer.vocab_size)
    scorer = HarnessScorer(model, tokenizer, CPU)
    context = "a"  # 'b', 'c', ... follow in the byte-level alphabet
    full = plus_one_text(tokenizer, context, 40)
    stop = full[6:8]
    cut = full.index(stop)
    [text] = scorer.generate_until([(context, [stop], 40)])
    assert text == full[:cut] and stop not in text
    assert model.calls < 40  # stopped once the stop string appeared
    assert scorer.generate_until([(context, [], 5)]) == [plus_one_text(tokenizer, context, 5)]


def test_batched_generation_equals_one_at_a_time(tokenizer):
    scorer = HarnessScorer(decoder(tokenizer.vocab_size), tokenizer, CPU, batch_size=8)
    requests = [(TEXT, ["\n"], 6), ("the", [" the"], 10), (" ".join([TEXT] * 2), [], 12)]
    together = scorer.generate_until(requests)
    alone = [scorer.generate_until([r])[0] for r in requests]
    assert together == alone
    assert len(scorer.tokenizer.encode(together[2])) <= 12


def test_missing_lm_eval_is_a_user_error_naming_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "lm_eval.tasks", None)  # import fails as if not installed
    with pytest.raises(UserError, match=r'pip install -e "\.\[eval\]"'):
        resolve_tasks(["hellaswag"])


def write_task(folder, items: list[dict], name: str = "tiny_mc", data_file=None):
    """A local multiple-choice task: a JSONL test split and the YAML that describes it."""
    folder.mkdir(parents=True, exist_ok=True)
    data = data_file or folder / f"{name}.jsonl"
    if data_file is None:
        data.write_text("".join(json.dumps(item) + "\n" for item in items))
    yaml = folder / f"{name}.yaml"
    yaml.write_text(
        f"task: {name}\n"
        "dataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data}\n  cache_dir: {folder / 'hf_cache'}\n"
        "test_split: test\n"
        "output_type: multiple_choice\n"
        'doc_to_text: "{{question}}"\n'
        'doc_to_choice: "{{choices}}"\n'
        'doc_to_target: "{{label}}"\n'
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
    )
    return yaml


ITEMS = [
    {"question": "the cat sat on the", "choices": ["mat", "sun", "dog"], "label": 0},
    {"question": "def f(x):\n    return x +", "choices": ["1", "cat"], "label": 0},
    {"question": "the dog was doing", "choices": ["it", "then"], "label": 1},
    {"question": "what the", "choices": ["dog", "x"], "label": 0},
    {"question": "and then it ran to", "choices": ["see", "return"], "label": 0},
]


@pytest.fixture
def lm_eval(monkeypatch):
    """lm_eval, offline, without its 2-second environment report."""
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    lm_eval = pytest.importorskip("lm_eval")
    evaluator = pytest.importorskip("lm_eval.evaluator")
    monkeypatch.setattr(evaluator, "add_env_info", lambda results: None)
    return lm_eval


def test_lm_eval_scores_a_local_task_with_the_models_log_probs(lm_eval, scorer, tmp_path):
    task = write_task(tmp_path / "tasks", ITEMS)
    results = lm_eval.simple_evaluate(
        model=harness_model(scorer, log=lambda _: None),
        tasks=[str(task)],
        limit=4,
        task_manager=resolve_tasks([str(task)]).manager,
        log_samples=True,
    )
    assert results["n-samples"]["tiny_mc"]["effective"] == 4
    assert 0 <= results["results"]["tiny_mc"]["acc,none"] <= 1
    samples = results["samples"]["tiny_mc"]
    assert len(samples) == 4
    for sample in samples:
        for (context, continuation), [(total, greedy)] in zip(
            sample["arguments"], sample["resps"], strict=True
        ):
            whole = scorer.tokenizer.encode(context + continuation)
            k = len(whole) - len(scorer.tokenizer.encode(context))
            assert (total, greedy) == pytest.approx(direct(scorer.model, whole, k), abs=1e-4)


def test_run_tasks_returns_metrics_per_task(lm_eval, scorer, tmp_path):
    task = write_task(tmp_path / "tasks", ITEMS)
    metrics = run_tasks(scorer, resolve_tasks([str(task)]), limit=3, log=lambda _: None)
    assert set(metrics) == {"tiny_mc"}
    result = metrics["tiny_mc"]
    assert result["items"] == 3 and 0 <= result["acc"] <= 1
    assert math.isfinite(result["acc_stderr"])


def test_unknown_task_names_get_the_closest_known_ones(lm_eval, monkeypatch, tmp_path):
    import functools

    import lm_eval.tasks

    write_task(tmp_path / "tasks", ITEMS)
    local = functools.partial(
        lm_eval.tasks.TaskManager, include_path=str(tmp_path / "tasks"), include_defaults=False
    )
    monkeypatch.setattr(lm_eval.tasks, "TaskManager", local)  # index only the local task
    assert resolve_tasks(["tiny_mc"]).specs == ["tiny_mc"]
    assert resolve_tasks(["tiny_*"]).specs == ["tiny_mc"]
    with pytest.raises(UserError, match="no task 'tiny_mcq' \\(closest: tiny_mc\\)"):
        resolve_tasks(["tiny_mcq"])
    with pytest.raises(UserError, match="task file .*missing.yaml not found"):
        resolve_tasks([str(tmp_path / "missing.yaml")])


def test_a_task_whose_data_cannot_load_is_a_user_error(lm_eval, scorer, tmp_path):
    task = write_task(tmp_path / "tasks", [], data_file=tmp_path / "absent.jsonl")
    with pytest.raises(UserError, match="lm-eval could not load the task"):
        run_tasks(scorer, resolve_tasks([str(task)]), log=lambda _: None)
