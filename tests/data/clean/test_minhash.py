import importlib.util
import io
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from budgetlm.data.clean.minhash import (
    HASH_CHUNK,
    MinHashConfig,
    NearDedup,
    candidate_probability,
    minhash_signature,
    minhash_signatures,
    shingle_hashes,
)
from budgetlm.data.ingest.builtin import builtin_documents
from budgetlm.errors import UserError

ROOT = Path(__file__).resolve().parents[3]


def _load_benchmark():
    """benchmarks/dedup.py, whose test-set builder and exact ground truth the tests share."""
    spec = importlib.util.spec_from_file_location("dedup_benchmark", ROOT / "benchmarks/dedup.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


bench = _load_benchmark()


@pytest.fixture(scope="module")
def originals():
    """The built-in prose and code documents under 3000 words (long ones only cost time)."""
    docs = [d.text for name in ("prose", "code") for d in builtin_documents(name)]
    return [t for t in docs if len(t.split()) < 3000]


def test_config_rejects_impossible_settings():
    with pytest.raises(UserError, match="exceeds num_perm"):
        MinHashConfig(num_perm=64, bands=16, rows=8)
    with pytest.raises(UserError, match="threshold"):
        MinHashConfig(threshold=1.5)
    with pytest.raises(UserError):
        MinHashConfig(shingle=0)


def test_default_bands_find_most_pairs_at_the_threshold():
    config = MinHashConfig()
    # The S-curve 1 - (1 - J^8)^16: 1 - (1 - 0.1678)^16 at J = 0.8, 1 - (1 - 0.4305)^16 at
    # 0.9, and about 16 * 0.3^8 = 0.00105 at 0.3.
    assert candidate_probability(0.8, config.bands, config.rows) == pytest.approx(0.947, abs=1e-3)
    assert candidate_probability(0.9, config.bands, config.rows) == pytest.approx(0.99988, abs=1e-5)
    assert candidate_probability(0.3, config.bands, config.rows) == pytest.approx(0.00105, abs=1e-5)


def test_signature_is_the_same_in_another_process_with_another_hash_seed():
    text = "def f(x):\n    return x + 1  # the same text, hashed in two processes"
    code = (
        "import sys; from budgetlm.data.clean.minhash import MinHashConfig, minhash_signature; "
        f"sys.stdout.write(minhash_signature({text!r}, MinHashConfig()).tobytes().hex())"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, check=True)
    mine = minhash_signature(text, MinHashConfig())
    assert mine.dtype == np.uint32 and mine.shape == (128,)
    assert bytes.fromhex(out.stdout.decode()) == mine.tobytes()


def test_seed_changes_the_hash_functions():
    text = "one two three four five six seven"
    seed0 = minhash_signature(text, MinHashConfig(seed=0))
    seed1 = minhash_signature(text, MinHashConfig(seed=1))
    assert np.mean(seed0 == seed1) < 0.1  # unrelated hash functions rarely agree


def test_batched_signatures_equal_one_at_a_time():
    long_text = " ".join(f"w{i}" for i in range(3 * HASH_CHUNK))  # split over several passes
    texts = ["a b c d e f g", "", long_text, "x", "a b c d e f g h"]
    config = MinHashConfig()
    batch = minhash_signatures(texts, config)
    assert batch.shape == (5, 128)
    assert np.array_equal(batch, np.stack([minhash_signature(t, config) for t in texts]))
    assert minhash_signatures([], config).shape == (0, 128)


def test_whitespace_and_layout_do_not_change_shingles():
    code = "def f(x):\n    return x+1\n"
    assert np.array_equal(shingle_hashes(code, 5), shingle_hashes("def f ( x ) :  return x + 1", 5))
    # 10 tokens (def f ( x ) : return x + 1) make 6 five-token shingles.
    assert len(shingle_hashes(code, 5)) == 6


def test_short_and_empty_texts_are_one_shingle():
    assert len(shingle_hashes("hello world", 5)) == 1
    assert len(shingle_hashes("", 5)) == 1
    assert np.array_equal(shingle_hashes("", 5), shingle_hashes(" \n\t", 5))
    dedup = NearDedup()
    assert dedup.add(0, "hello world") is None
    assert dedup.add(1, "hello  world\n") == 0  # same tokens
    assert dedup.add(2, "hello world again") is None  # a different single shingle
    assert dedup.add(3, "") is None
    assert dedup.add(4, "   ") == 3  # empty texts are duplicates of each other only
    assert dedup.add(5, "hello") is None
    assert dedup.stats.seen == 6 and dedup.stats.removed == 2 and dedup.stats.kept == 4


def test_estimate_is_within_the_binomial_spread_of_the_exact_jaccard(originals):
    config = MinHashConfig()
    rng = np.random.default_rng(0)
    errors = []
    for text in originals[:40]:
        words = text.split()
        keep = rng.random(len(words)) > 0.03  # delete 3% of words
        copy = " ".join(w for w, k in zip(words, keep, strict=True) if k)
        exact = bench.jaccard(bench.exact_shingles(text, 5), bench.exact_shingles(copy, 5))
        estimate = np.mean(minhash_signature(text, config) == minhash_signature(copy, config))
        errors.append((estimate - exact) / math.sqrt(max(exact * (1 - exact), 1e-3) / 128))
    # Standardised errors of an unbiased estimator: mean ~0 (sd 1/sqrt(40)), none beyond 4 sd.
    assert abs(np.mean(errors)) < 0.6
    assert np.max(np.abs(errors)) < 4


def test_exact_duplicates_are_always_caught(originals):
    dedup = NearDedup()
    for i, text in enumerate(originals[:100]):
        first = dedup.add(2 * i, text)
        assert dedup.add(2 * i + 1, text) == (2 * i if first is None else first)


def test_unrelated_documents_are_not_flagged(originals):
    texts = originals[1::2]
    sets = [bench.exact_shingles(t, 5) for t in texts]
    related = {k for pair in bench.similar_pairs(sets, 0.5) for k in pair}
    unrelated = [t for k, t in enumerate(texts) if k not in related]
    assert len(unrelated) > 0.95 * len(texts)  # the exact join finds few related pairs
    dedup = NearDedup()
    assert dedup.add_many(list(range(len(unrelated))), unrelated) == [None] * len(unrelated)


def test_exact_join_matches_brute_force(originals):
    stream = bench.make_stream(originals[:30], copies=3, seed=1)
    sets = [bench.exact_shingles(c.text, 5) for c in stream]
    brute = {
        (i, j): bench.jaccard(sets[i], sets[j])
        for j in range(len(sets))
        for i in range(j)
        if bench.jaccard(sets[i], sets[j]) >= 0.8
    }
    assert bench.similar_pairs(sets, 0.8) == brute
    assert len(brute) > 30


def test_precision_and_recall_on_edited_copies(originals):
    # Each edit level lands at a known exact Jaccard; only pairs within a few standard
    # deviations (sqrt(J(1-J)/128) ~ 0.035) of the 0.8 threshold can be misjudged.
    stream = bench.make_stream(originals[::4], copies=3, seed=0)
    texts = [c.text for c in stream]
    results, _ = bench.run_dedup(texts, MinHashConfig())
    pairs = bench.similar_pairs([bench.exact_shingles(t, 5) for t in texts], 0.8)
    scores = bench.score(results, pairs)
    assert scores.true_pos + scores.false_neg > 150
    assert scores.precision >= 0.95
    assert scores.recall >= 0.9


def test_state_round_trip_resumes_with_identical_decisions(originals):
    stream = bench.make_stream(originals[:60], copies=2, seed=2)
    texts = [c.text for c in stream]
    ids = list(range(len(texts)))
    whole = NearDedup()
    expected = whole.add_many(ids, texts)

    first = NearDedup()
    half = len(texts) // 2
    got = first.add_many(ids[:half], texts[:half])
    buffer = io.BytesIO()
    np.savez(buffer, **first.state())
    buffer.seek(0)
    resumed = NearDedup.from_state(dict(np.load(buffer)))
    got += resumed.add_many(ids[half:], texts[half:])

    assert got == expected
    assert resumed.stats == whole.stats
    for key, value in whole.state().items():
        assert np.array_equal(resumed.state()[key], value), key
    with pytest.raises(UserError, match="saved with"):
        NearDedup.from_state(whole.state(), MinHashConfig(threshold=0.7))


def test_memory_per_kept_document_is_under_1kb_and_early_documents_stay_findable():
    config = MinHashConfig()
    signatures = np.random.default_rng(0).integers(0, 2**32, (6000, 128), dtype=np.uint32)
    dedup = NearDedup(config)
    for i, signature in enumerate(signatures):
        assert dedup.add_signature(i, signature) is None  # unrelated: ~no agreement at all
    # Signature 512 B + id 8 B + 16 table slots at <= 50% load, arrays grown by 1.25x.
    assert dedup.nbytes() / dedup.stats.kept < 1000
    assert len(dedup.state()["table"]) >= 2 * 16 * 6000  # the table grew several times
    for i in range(0, 6000, 500):
        near = signatures[i].copy()
        near[:20] += 1  # 108 of 128 values agree: estimated Jaccard 0.84
        assert dedup.add_signature(10_000 + i, near) == i
