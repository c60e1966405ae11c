"""Bits per byte: counted over the exact text scored, the same in training's evaluations, the
end record, eval.json, the summary and a continual run's forgetting."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from budgetlm.data.store.tokenizer import Tokenizer
from budgetlm.evaluate.bpb import bits_per_byte, bytes_per_token
from budgetlm.evaluate.loss import fixed_windows, scored_targets

TEXTS = ["naïve café — 東京 ✓ " * 20, "plain ascii text, plain ascii text. " * 20]


def test_bytes_per_token_counts_the_utf8_text_and_no_bytes_for_eos():
    tokenizer = Tokenizer.train(TEXTS, 300)
    ids = tokenizer.encode(TEXTS[0])
    assert bytes_per_token(tokenizer, np.array(ids)) == len(TEXTS[0].encode()) / len(ids)
    framed = np.array(ids + [tokenizer.eos_id] + ids)
    assert tokenizer.text_bytes(framed) == 2 * len(TEXTS[0].encode())
    assert bytes_per_token(tokenizer, np.array([], dtype=np.int64)) is None
    assert bytes_per_token(tokenizer, np.array([tokenizer.eos_id])) is None


def test_bits_per_byte_is_the_loss_in_bits_over_the_bytes_per_token():
    bpb = bits_per_byte({"a": math.log(2) * 3.0, "b": 1.0}, {"a": 1.5, "b": None})
    assert bpb == {"a": pytest.approx(2.0)}  # 3 bits per token, 1.5 bytes per token


def test_a_hand_checked_example():
    tokenizer = Tokenizer.train(["aé aé aé"] * 4, 300)
    text = "aé" * 10  # 10 one-byte 'a' and 10 two-byte 'é': 30 bytes
    ids = np.array(tokenizer.encode(text))
    per_token = bytes_per_token(tokenizer, ids)
    assert per_token == 30 / len(ids)
    # a loss of 0.5 nats per token is 0.5 * len(ids) nats over 30 bytes, or / ln 2 bits
    expected = 0.5 * len(ids) / 30 / math.log(2)
    assert bits_per_byte({"d": 0.5}, {"d": per_token})["d"] == pytest.approx(expected)


def test_scored_targets_are_the_targets_of_the_fixed_windows():
    stream = np.arange(100)
    for seq_len, max_tokens in ((8, 40), (8, 1000), (200, 50)):
        windows = fixed_windows(stream, seq_len, max_tokens)
        expected = np.concatenate([w[1:] for w in windows])
        np.testing.assert_array_equal(scored_targets(stream, seq_len, max_tokens), expected)


def records(run_dir, kind):
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == kind]


def test_a_run_reports_bits_per_byte_of_its_scored_validation_text(tiny_config):
    from budgetlm import api
    from budgetlm.data.store.dataset import PreparedDataset

    config = tiny_config()
    result = api.pretrain(config, log=lambda _: None)
    dataset = PreparedDataset(config.data.prepared)
    start = records(result.run_dir, "start")[0]
    for domain in dataset.domains:  # bytes counted independently: decode, drop EOS, encode
        targets = scored_targets(
            dataset.tokens("val", domain), config.model.seq_len, config.eval.tokens_per_domain
        )
        text = dataset.tokenizer.decode(targets).replace(dataset.tokenizer.eos_token, "")
        expected = len(text.encode("utf-8")) / len(targets)
        assert start["bytes_per_token"][domain] == pytest.approx(expected)
    for record in records(result.run_dir, "eval") + records(result.run_dir, "end"):
        for domain, loss in record["val_loss"].items():
            bpt = start["bytes_per_token"][domain]
            assert record["val_bpb"][domain] == pytest.approx(loss / math.log(2) / bpt)
    assert "bits/byte" in result.summary and "bytes/token" in result.summary
    evaluation = api.evaluate(result.run_dir, log=lambda _: None)
    for domain, loss in evaluation["val_loss"].items():
        bpt = evaluation["bytes_per_token"][domain]
        assert evaluation["val_bpb"][domain] == pytest.approx(loss / math.log(2) / bpt)
