"""Extend a BPE tokenizer with tokens learned from new text, keeping how it tokenizes old text.

BPE training continues from the tokenizer's own tokenization: the new text is normalised and
pre-tokenized as the tokenizer does it, each word is split into the tokenizer's tokens, and the
most frequent adjacent pair is merged, N times (Sennrich et al., 2016, "Neural Machine
Translation of Rare Words with Subword Units"). The new merges go after all the old ones. BPE
applies merges in rank order, so on any text every old merge fires exactly as before, and only
then may a new one join two adjacent tokens of a word. A text is therefore tokenized as before,
except that runs of old tokens that make up a new token become that one token. No token is
removed, and no id changes.
"""

from __future__ import annotations

import heapq
import json
import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from tokenizers import Tokenizer as HFTokenizer

from budgetlm.data.store.tokenizer import Tokenizer
from budgetlm.errors import UserError

BYTE_FALLBACK = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")
"""SentencePiece-style byte tokens (Llama 2, Mistral, Gemma): they are never merged."""


@dataclass
class Extension:
    """An extended tokenizer and what it added."""

    tokenizer: Tokenizer
    added: dict[int, list[int]]
    """Each new token id -> the old token ids it stands for (its tokenization before)."""
    first_id: int
    """The first new id: every id below it means what it meant before."""


def extend_vocabulary(
    tokenizer: Tokenizer, texts: Iterable[str], count: int, min_frequency: int = 2
) -> Extension:
    """`tokenizer` with up to `count` new tokens: the most frequent merges of its own tokens in
    `texts` (each seen at least `min_frequency` times). Fewer when the text runs out of pairs."""
    if count < 1:
        raise UserError(f"--extend-vocab must be a positive number of tokens, got {count}")
    hf = HFTokenizer.from_str(tokenizer.to_json())
    spec = json.loads(tokenizer.to_json())
    model = spec["model"]
    if (
        model.get("type") != "BPE"
        or model.get("continuing_subword_prefix")
        or model.get("end_of_word_suffix")
    ):
        kind = model.get("type") if model.get("type") != "BPE" else "BPE with word affixes"
        raise UserError(
            f"--extend-vocab extends plain BPE tokenizers; this one is {kind}. Continue "
            "without --extend-vocab"
        )
    vocab: dict[str, int] = model["vocab"]
    words = _word_tokens(hf, texts)
    merges = _learn_merges(words, count, min_frequency, set(vocab))
    taken = [*vocab.values(), *(t["id"] for t in spec.get("added_tokens", []))]
    first_id = max(taken) + 1
    pair_style = bool(model["merges"]) and isinstance(model["merges"][0], list)
    added: dict[int, list[int]] = {}
    for offset, (a, b) in enumerate(merges):
        new_id = first_id + offset
        vocab[a + b] = new_id
        model["merges"].append([a, b] if pair_style else f"{a} {b}")
        added[new_id] = [*_old_ids(a, vocab, added), *_old_ids(b, vocab, added)]
    extended = Tokenizer(HFTokenizer.from_str(json.dumps(spec)), tokenizer.eos_token)
    return Extension(extended, added, first_id)


def _old_ids(token: str, vocab: dict[str, int], added: dict[int, list[int]]) -> list[int]:
    """The old ids a token stands for: itself if old, else what its parts stood for."""
    token_id = vocab[token]
    return added.get(token_id, [token_id])


def _word_tokens(hf: HFTokenizer, texts: Iterable[str]) -> Counter:
    """How often each word (a pre-tokenized piece) occurs, keyed by its tuple of tokens."""
    words: Counter = Counter()
    for text in texts:
        if hf.normalizer is not None:
            text = hf.normalizer.normalize_str(text)
        pieces = hf.pre_tokenizer.pre_tokenize_str(text) if hf.pre_tokenizer else [(text, None)]
        words.update(piece for piece, _ in pieces)
    return Counter(
        {tuple(t.value for t in hf.model.tokenize(word)): n for word, n in words.items()}
    )


def _learn_merges(
    words: Counter, count: int, min_frequency: int, known: set[str]
) -> list[tuple[str, str]]:
    """BPE's merge loop over `words` (token tuples with counts), updating pair counts only in
    the words a merge touches. A pair whose merge is already a token is skipped, so each merge
    adds one. Ties go to the smaller pair, so the result does not depend on iteration order."""
    symbols = [list(w) for w in words]
    freq = list(words.values())
    pairs: Counter = Counter()
    where: dict[tuple[str, str], set[int]] = defaultdict(set)
    for i, syms in enumerate(symbols):
        for pair in zip(syms, syms[1:], strict=False):
            pairs[pair] += freq[i]
            where[pair].add(i)
    heap = [(-n, pair) for pair, n in pairs.items()]
    heapq.heapify(heap)
    merges: list[tuple[str, str]] = []
    banned: set[tuple[str, str]] = set()
    while heap and len(merges) < count:
        negative, pair = heapq.heappop(heap)
        if pair in banned or pairs.get(pair, 0) != -negative:
            continue  # banned, or a stale entry: the pair's count changed since it was pushed
        if -negative < min_frequency:
            break
        a, b = pair
        if a + b in known or BYTE_FALLBACK.match(a) or BYTE_FALLBACK.match(b):
            banned.add(pair)
            continue
        merges.append(pair)
        known.add(a + b)
        changed: set[tuple[str, str]] = set()
        for i in where.pop(pair, ()):
            old = symbols[i]
            merged = _merge(old, a, b)
            for p in zip(old, old[1:], strict=False):
                pairs[p] -= freq[i]
                changed.add(p)
            for p in zip(merged, merged[1:], strict=False):
                pairs[p] += freq[i]
                where[p].add(i)
                changed.add(p)
            symbols[i] = merged
        pairs.pop(pair, None)
        for p in changed:
            if pairs.get(p, 0) > 0:
                heapq.heappush(heap, (-pairs[p], p))
    return merges


def _merge(symbols: list[str], a: str, b: str) -> list[str]:
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == a and symbols[i + 1] == b:
            out.append(a + b)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out
