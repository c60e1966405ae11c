"""Give a model's embedding and output head rows for the tokens a vocabulary extension added
(data/store/vocab_extension.py), initialised from the rows it already has.

The initialisations compared in the literature ("An Empirical Comparison of Vocabulary Expansion
and Initialization Approaches for Language Models", Mundra et al., 2024):
- **mean:** the mean of the rows of the old tokens that a new token stood for. It starts the
  new token where the model's own view of the same text already is.
- **focus:** FOCUS (Dobler & de Melo, 2023). It takes a sparsemax-weighted combination of the
  old tokens most similar to the new one, with similarity taken in small auxiliary embeddings
  learned from the new text. FOCUS trains fastText for that; here the auxiliary embeddings are
  a truncated SVD of the tokens' PPMI co-occurrence matrix (Levy & Goldberg, 2014, show the two
  are close). The old tokens a new one stood for are always among its candidates.
- **random:** normal noise at the scale of the old rows, the baseline.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

INITS = ("mean", "focus", "random")


def grow_rows(
    old: Tensor,
    rows: int,
    added: dict[int, list[int]],
    init: str,
    weights: dict[int, tuple[list[int], list[float]]] | None = None,
    seed: int = 0,
) -> Tensor:
    """`old` ([old_rows, ...]: an embedding, head or head bias) grown to `rows` rows. Old rows
    are kept; each added id (which may reuse a padding row below old_rows) is initialised by
    `init`; other new rows (padding) get noise. `weights` holds FOCUS's combinations."""
    if init not in INITS:
        raise ValueError(f"unknown initialisation {init!r}; one of {', '.join(INITS)}")
    generator = torch.Generator().manual_seed(seed)
    source = old.detach().float().cpu()
    scale = source.std() if source.numel() > 1 else torch.tensor(0.02)
    out = torch.empty((rows, *source.shape[1:]), dtype=torch.float32)
    out[: source.shape[0]] = source
    noise = torch.randn(out.shape, generator=generator) * scale
    out[source.shape[0] :] = noise[source.shape[0] :]
    for new_id, pieces in added.items():
        if init == "random":
            out[new_id] = noise[new_id]
        elif init == "focus" and weights and new_id in weights:
            ids, w = weights[new_id]
            out[new_id] = (torch.tensor(w).view(-1, *[1] * (source.dim() - 1)) * source[ids]).sum(0)
        else:
            out[new_id] = source[pieces].mean(0)
    return out.to(old.dtype)


def grown_state(
    state: dict[str, Tensor],
    target: dict[str, Tensor],
    old_rows: int,
    grow: Callable[[Tensor, int], Tensor],
) -> dict[str, Tensor]:
    """A parent's state dict fitted to a model with more vocabulary rows (`target`, its state
    dict): each tensor of `old_rows` rows whose target has more, and otherwise the same shape
    (the embedding, the head, a head bias), is grown with `grow(old, rows)`."""
    out = dict(state)
    for name, tensor in state.items():
        want = target.get(name)
        if (
            want is not None
            and tensor.dim() >= 1
            and tensor.shape[0] == old_rows
            and want.shape[0] > old_rows
            and tuple(want.shape[1:]) == tuple(tensor.shape[1:])
        ):
            out[name] = grow(tensor, want.shape[0])
    return out


def focus_weights(
    streams: Sequence[np.ndarray],
    added: dict[int, list[int]],
    old_rows: int,
    dim: int = 64,
    window: int = 4,
    max_tokens: int = 2_000_000,
    candidates: int = 4000,
) -> dict[int, tuple[list[int], list[float]]]:
    """FOCUS's combination weights per added id: sparsemax over the cosine similarities
    between the new token and old tokens in auxiliary embeddings (SVD of the PPMI matrix of
    co-occurrences within `window` tokens, over the first `max_tokens` tokens of `streams`,
    tokenized with the extended tokenizer). The candidates are the `candidates` most frequent
    old tokens of that text, plus the old tokens the new one stood for."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.linalg import svds

    tokens = np.concatenate([np.asarray(s[:max_tokens], dtype=np.int64) for s in streams])
    tokens = tokens[:max_tokens]
    if len(tokens) < 2 * window + 2 or not added:
        return {}
    ids, local = np.unique(tokens, return_inverse=True)
    n = len(ids)
    rows, cols = [], []
    for offset in range(1, window + 1):
        rows += [local[:-offset], local[offset:]]
        cols += [local[offset:], local[:-offset]]
    counts = coo_matrix(
        (
            np.ones(sum(len(r) for r in rows), dtype=np.float64),
            (np.concatenate(rows), np.concatenate(cols)),
        ),
        shape=(n, n),
    ).tocsr()
    counts.sum_duplicates()
    total = counts.sum()
    row_sum = np.asarray(counts.sum(axis=1)).ravel()
    col_sum = np.asarray(counts.sum(axis=0)).ravel() ** 0.75  # context smoothing (Levy et al.)
    col_sum = col_sum / col_sum.sum() * total
    coo = counts.tocoo()
    pmi = np.log(coo.data * total / (row_sum[coo.row] * col_sum[coo.col]))
    keep = pmi > 0
    ppmi = coo_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=(n, n)).tocsr()
    k = max(1, min(dim, n - 2))
    u, s, _ = svds(ppmi.astype(np.float64), k=k)
    vectors = torch.from_numpy(u * np.sqrt(s)).float()
    vectors = torch.nn.functional.normalize(vectors, dim=1)
    position = {int(t): i for i, t in enumerate(ids)}
    frequency = np.bincount(local, minlength=n)
    old_local = [
        i for i in np.argsort(-frequency) if ids[i] < old_rows and int(ids[i]) not in added
    ]
    common = [int(ids[i]) for i in old_local[:candidates]]
    weights = {}
    for new_id, pieces in added.items():
        if new_id not in position:
            continue  # never seen in the text: FOCUS has nothing to go on (grow_rows: the mean)
        pool = list(dict.fromkeys([*pieces, *common]))
        pool = [t for t in pool if t in position]
        if not pool:
            continue
        sims = vectors[[position[t] for t in pool]] @ vectors[position[new_id]]
        w = _sparsemax(sims)
        chosen = torch.nonzero(w > 0).ravel().tolist()
        weights[new_id] = ([pool[i] for i in chosen], [float(w[i]) for i in chosen])
    return weights


def _sparsemax(z: Tensor) -> Tensor:
    """Sparsemax (Martins & Astudillo, 2016): the Euclidean projection of z onto the simplex;
    most weights come out exactly zero."""
    sorted_z, _ = torch.sort(z, descending=True)
    cumulative = sorted_z.cumsum(0)
    k = torch.arange(1, len(z) + 1, dtype=z.dtype)
    support = 1 + k * sorted_z > cumulative
    k_max = int(support.nonzero().max()) + 1
    tau = (cumulative[k_max - 1] - 1) / k_max
    return torch.clamp(z - tau, min=0)
