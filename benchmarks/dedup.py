"""Precision and recall of MinHash + LSH near-duplicate removal (data/minhash.py) against the
exact Jaccard similarity of the same shingle sets, plus its throughput and memory.

The test set is every built-in prose and code document plus edited copies of each at
controlled edit levels (words replaced, inserted or deleted, boilerplate lines added,
whitespace changed, the end cut off), shuffled into one stream with a fixed seed. The ground
truth is exact: all pairs with Jaccard >= threshold, found by prefix filtering (Chaudhuri,
Ganti & Kaushik, "A Primitive Operator for Similarity Joins in Data Cleaning") and then
intersected in full. NearDedup should remove a document exactly when a document it kept
earlier is such a pair partner: a wrong removal loses data (precision), a missed one leaves a
near-duplicate pair in the output (recall).

    python benchmarks/dedup.py                        # all built-in documents, 2 copies each
    python benchmarks/dedup.py --copies 4 --index-docs 200000
"""

from __future__ import annotations

import argparse
import math
import random
import re
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Benchmark this checkout's code, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from budgetlm.data.clean.minhash import (  # noqa: E402
    TOKEN,
    MinHashConfig,
    NearDedup,
    candidate_probability,
    minhash_signatures,
)
from budgetlm.data.ingest.builtin import builtin_documents  # noqa: E402

HEADER = "Copyright (c) 2024 Example Corp. All rights reserved. Redistribution prohibited."
FOOTER = "Subscribe to our newsletter for more articles like this one, delivered weekly."


@dataclass
class Copy:
    """One document of the stream: its text, the original it came from and the edit made."""

    text: str
    origin: int
    edit: str


@dataclass
class Scores:
    """Removal decisions scored against the exact ground truth."""

    true_pos: int
    false_pos: int
    false_neg: int

    @property
    def precision(self) -> float:
        """Share of removed documents that had a near-duplicate among the kept ones."""
        return self.true_pos / max(1, self.true_pos + self.false_pos)

    @property
    def recall(self) -> float:
        """Share of documents with a near-duplicate among the kept ones that were removed."""
        return self.true_pos / max(1, self.true_pos + self.false_neg)

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        return 2 * self.precision * self.recall / max(1e-12, self.precision + self.recall)


def _edit_words(p: float, op: str) -> Callable[[str, random.Random, list[str]], str]:
    """An edit that replaces, inserts after or deletes each word with probability p."""

    def edit(text: str, rng: random.Random, vocabulary: list[str]) -> str:
        parts = re.split(r"(\s+)", text)  # words at even indices, whitespace at odd ones
        out = []
        for i, part in enumerate(parts):
            if i % 2 or not part or rng.random() >= p:
                out.append(part)
            elif op == "replace":
                out.append(rng.choice(vocabulary))
            elif op == "insert":
                out.append(f"{part} {rng.choice(vocabulary)}")
        return "".join(out)

    return edit


def _mixed(text: str, rng: random.Random, vocabulary: list[str]) -> str:
    """1% of words replaced, 1% inserted and 1% deleted."""
    for op in ("replace", "insert", "delete"):
        text = _edit_words(0.01, op)(text, rng, vocabulary)
    return text


def _truncate(text: str, rng: random.Random, vocabulary: list[str]) -> str:
    """The text without its last 10% of characters (cut at a space when there is one)."""
    cut = int(0.9 * len(text))
    space = text.rfind(" ", 0, cut)
    return text[: space if space > 0 else cut]


EDITS: dict[str, Callable[[str, random.Random, list[str]], str]] = {
    "exact copy": lambda text, rng, vocab: text,
    "whitespace": lambda text, rng, vocab: re.sub(r"\s+", lambda _: rng.choice([" ", "\n"]), text),
    "boilerplate": lambda text, rng, vocab: f"{HEADER}\n{text}\n{FOOTER}\n",
    "truncate 10%": _truncate,
    "replace 1%": _edit_words(0.01, "replace"),
    "replace 2%": _edit_words(0.02, "replace"),
    "replace 5%": _edit_words(0.05, "replace"),
    "replace 10%": _edit_words(0.10, "replace"),
    "insert 2%": _edit_words(0.02, "insert"),
    "delete 2%": _edit_words(0.02, "delete"),
    "mixed 1%x3": _mixed,
}
"""Edits applied to originals, from harmless (Jaccard 1) to far below a 0.8 threshold."""


def make_stream(originals: list[str], copies: int, seed: int) -> list[Copy]:
    """Each original (edit "original") and `copies` edited copies of it, edits drawn at random,
    in a shuffled order; replacement words come from the originals' own vocabulary."""
    rng = random.Random(seed)
    vocabulary = sorted({w for text in originals for w in text.split()})
    stream = []
    for i, text in enumerate(originals):
        stream.append(Copy(text, i, "original"))
        for edit in rng.sample(sorted(EDITS), copies):
            stream.append(Copy(EDITS[edit](text, rng, vocabulary), i, edit))
    rng.shuffle(stream)
    return stream


def exact_shingles(text: str, shingle: int) -> np.ndarray:
    """Sorted distinct ids of the text's shingles as data/minhash.py defines them (runs of
    `shingle` tokens, or all tokens when fewer), independent of its hashing. Ids come from
    Python's hash(), so they are comparable within one process only."""
    tokens = TOKEN.findall(text)
    if len(tokens) < shingle:
        grams = {tuple(tokens)}
    else:
        grams = set(zip(*(tokens[i:] for i in range(shingle)), strict=False))
    return np.unique(np.fromiter((hash(g) for g in grams), np.int64, len(grams)))


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted arrays of distinct ids."""
    common = len(np.intersect1d(a, b, assume_unique=True))
    return common / (len(a) + len(b) - common)


def similar_pairs(sets: list[np.ndarray], threshold: float) -> dict[tuple[int, int], float]:
    """Every pair (i < j) with Jaccard >= threshold and its similarity. Prefix filtering makes
    this exact without comparing all pairs: with ids ordered rarest first, two sets that
    overlap in >= ceil(t*|x|) ids share one among the first |x| - ceil(t*|x|) + 1 of each."""
    values, counts = np.unique(np.concatenate(sets), return_counts=True)
    index: dict[int, list[int]] = defaultdict(list)
    pairs = {}
    for j, ids in enumerate(sets):
        rarest_first = ids[np.lexsort((ids, counts[np.searchsorted(values, ids)]))]
        needed = math.ceil(threshold * len(ids) - 1e-9)
        prefix = rarest_first[: len(ids) - needed + 1].tolist()
        for i in sorted({i for token in prefix for i in index[token]}):
            similarity = jaccard(sets[i], ids)
            if similarity >= threshold:
                pairs[(i, j)] = similarity
        for token in prefix:
            index[token].append(j)
    return pairs


def score(results: list[int | None], pairs: dict[tuple[int, int], float]) -> Scores:
    """Score removals (results[j] is not None) against the truth: document j should be removed
    iff it forms a similar pair with some earlier document that was kept."""
    kept = [r is None for r in results]
    should_go = [False] * len(results)
    for i, j in pairs:
        if kept[i]:
            should_go[j] = True
    removed = [not k for k in kept]
    return Scores(
        true_pos=sum(r and s for r, s in zip(removed, should_go, strict=True)),
        false_pos=sum(r and not s for r, s in zip(removed, should_go, strict=True)),
        false_neg=sum(s and not r for r, s in zip(removed, should_go, strict=True)),
    )


def run_dedup(texts: list[str], config: MinHashConfig) -> tuple[list[int | None], NearDedup]:
    """NearDedup's decision for each text in order (document ids are stream positions)."""
    dedup = NearDedup(config)
    return dedup.add_many(list(range(len(texts))), texts), dedup


def binomial_tail(n: int, p: float, k: int) -> float:
    """P(Binomial(n, p) >= k): the chance that >= k of n MinHash values agree at Jaccard p."""
    return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))


@dataclass
class PairCheck:
    """An edited copy against its original: exact Jaccard, MinHash estimate, shared band."""

    edit: str
    jaccard: float
    estimate: float
    shares_band: bool

    def flagged(self, threshold: float) -> bool:
        """What NearDedup decides for this pair alone: a shared band and enough agreement."""
        return self.shares_band and self.estimate >= threshold


def check_pairs(
    stream: list[Copy], sets: list[np.ndarray], signatures: np.ndarray, config: MinHashConfig
) -> list[PairCheck]:
    """A PairCheck for every edited copy in the stream."""
    original_at = {c.origin: j for j, c in enumerate(stream) if c.edit == "original"}
    used = config.bands * config.rows
    checks = []
    for j, copy in enumerate(stream):
        if copy.edit != "original":
            i = original_at[copy.origin]
            agree = signatures[i] == signatures[j]
            band = agree[:used].reshape(config.bands, config.rows).all(axis=1).any()
            checks.append(PairCheck(copy.edit, jaccard(sets[i], sets[j]), agree.mean(), band))
    return checks


def edit_table(checks: list[PairCheck], threshold: float) -> list[str]:
    """Per edit: copies, mean exact Jaccard, share truly >= threshold, share flagged."""
    lines = [f"{'edit':<13} {'pairs':>5} {'Jaccard':>7} {'J>=t':>6} {'flagged':>7}"]
    for edit in EDITS:
        group = [c for c in checks if c.edit == edit]
        truly = np.mean([c.jaccard >= threshold for c in group])
        flagged = np.mean([c.flagged(threshold) for c in group])
        mean_j = np.mean([c.jaccard for c in group])
        lines.append(f"{edit:<13} {len(group):5d} {mean_j:7.3f} {truly:6.3f} {flagged:7.3f}")
    return lines


def estimator_table(checks: list[PairCheck], config: MinHashConfig) -> list[str]:
    """Per bin of exact Jaccard: the estimate's mean error, how often the pair shares a band
    and how often the signatures agree on >= threshold, each against theory."""
    bins = [0.0, 0.5, 0.7, 0.75, 0.8, 0.85, 0.9, 1.0, 1.01]
    needed = math.ceil(config.threshold * config.num_perm - 1e-9)
    lines = [
        f"{'Jaccard':>11} {'pairs':>5} {'est-J':>7} {'band hit':>8} {'theory':>6} "
        f"{'est>=t':>6} {'theory':>6}"
    ]
    for lo, hi in zip(bins, bins[1:], strict=False):
        group = [c for c in checks if lo <= c.jaccard < hi]
        if not group:
            continue
        sims = np.array([c.jaccard for c in group])
        est = np.array([c.estimate for c in group])
        band_theory = np.mean([candidate_probability(s, config.bands, config.rows) for s in sims])
        over_theory = np.mean([binomial_tail(config.num_perm, s, needed) for s in sims])
        label = "1.0" if lo == 1.0 else f"[{lo:.2f},{hi:.2f})"
        lines.append(
            f"{label:>11} {len(group):5d} {np.mean(est - sims):+7.3f}"
            f" {np.mean([c.shares_band for c in group]):8.3f} {band_theory:6.3f}"
            f" {np.mean(est >= config.threshold):6.3f} {over_theory:6.3f}"
        )
    return lines


def index_scaling(n: int, config: MinHashConfig, seed: int) -> tuple[float, float, float]:
    """Index-only cost at scale: (signatures added per second, bytes held per kept document,
    bytes of state() per kept document) for `n` random, unrelated signatures."""
    rng = np.random.default_rng(seed)
    signatures = rng.integers(0, 2**32, size=(n, config.num_perm), dtype=np.uint32)
    dedup = NearDedup(config)
    start = time.perf_counter()
    for i, signature in enumerate(signatures):
        dedup.add_signature(i, signature)
    seconds = time.perf_counter() - start
    state_bytes = sum(a.nbytes for a in dedup.state().values())
    kept = dedup.stats.kept
    return n / seconds, dedup.nbytes() / kept, state_bytes / kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=2, help="edited copies per original")
    parser.add_argument("--seed", type=int, default=0, help="seed of the edits and the order")
    parser.add_argument("--index-docs", type=int, default=100_000, help="signatures to index")
    parser.add_argument("--bands", type=int, default=MinHashConfig.bands)
    parser.add_argument("--rows", type=int, default=MinHashConfig.rows)
    parser.add_argument("--num-perm", type=int, default=MinHashConfig.num_perm)
    parser.add_argument("--threshold", type=float, default=MinHashConfig.threshold)
    args = parser.parse_args()
    config = MinHashConfig(
        num_perm=args.num_perm, bands=args.bands, rows=args.rows, threshold=args.threshold
    )
    print(config)

    originals = [d.text for name in ("prose", "code") for d in builtin_documents(name)]
    stream = make_stream(originals, args.copies, args.seed)
    texts = [c.text for c in stream]
    megabytes = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    print(
        f"stream: {len(originals)} originals + {len(texts) - len(originals)} edited copies, "
        f"{megabytes:.1f} MB"
    )

    start = time.perf_counter()
    results, dedup = run_dedup(texts, config)
    seconds = time.perf_counter() - start

    sets = [exact_shingles(t, config.shingle) for t in texts]
    pairs = similar_pairs(sets, config.threshold)
    scores = score(results, pairs)
    print(
        f"exact pairs with Jaccard >= {config.threshold}: {len(pairs)}; NearDedup removed "
        f"{dedup.stats.removed} of {dedup.stats.seen}"
    )
    print(
        f"precision {scores.precision:.4f}  recall {scores.recall:.4f}  F1 {scores.f1:.4f}  "
        f"(TP {scores.true_pos}, FP {scores.false_pos}, FN {scores.false_neg})"
    )
    print(
        f"throughput: {len(texts) / seconds:,.0f} documents/s, {megabytes / seconds:.1f} MB/s "
        f"(signatures + index, 1 process)"
    )
    print(f"state: {dedup.nbytes() / dedup.stats.kept:,.0f} bytes per kept document")

    checks = check_pairs(stream, sets, minhash_signatures(texts, config), config)
    print("\nedited copy vs its original, per edit (flagged: shares a band and estimate >= t)")
    for line in edit_table(checks, config.threshold):
        print("  " + line)
    print("\nthe same pairs by exact Jaccard (theory: S-curve; binomial tail of the estimate)")
    for line in estimator_table(checks, config):
        print("  " + line)

    rate, held, saved = index_scaling(args.index_docs, config, args.seed)
    print(
        f"\nindex alone, {args.index_docs:,} unrelated signatures: {rate:,.0f} documents/s, "
        f"{held:,.0f} bytes held and {saved:,.0f} bytes saved per kept document"
    )


if __name__ == "__main__":
    main()
