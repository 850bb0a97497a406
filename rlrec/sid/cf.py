"""Behavioural (collaborative-filtering) item embeddings, and their mix with text embeddings.

Semantic IDs built from text alone put items that read alike under one prefix; items that the same
users consume together may read nothing alike. Semantic Convergence's cascaded codebooks mix in a
behavioural signal, so `rlrec sid` can quantise text + CF (`cf_mode: concat`, via `mix_embeddings`)
or let the first level cluster the CF embedding (`cf_mode: cascade`). Two sources:

- `cooccurrence`: items co-occurring within a sliding window of the users' training sequences,
  weighted by positive pointwise mutual information and reduced by truncated SVD (Levy & Goldberg's
  word2vec-as-matrix-factorisation recipe, with items for words). Deterministic and a second or two
  on ML-100k.
- `sasrec`: the item embedding table of a SASRec trained on the train split (`rlrec.baselines.sasrec`):
  order-aware, slower (tens of seconds on CPU for ML-100k).

Only the train split is read, so no valid/test target leaks into the Semantic IDs.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from rlrec.baselines.sequences import train_sequences
from rlrec.data.schema import PreparedDataset
from rlrec.sid.embeddings import l2_normalize
from rlrec.utils.errors import ConfigError, DataError

if TYPE_CHECKING:  # SASRec pulls in torch: imported only when method='sasrec' runs
    from rlrec.baselines.sasrec import SASRecConfig

METHODS = ("cooccurrence", "sasrec")
DENSE_SVD_MAX_ITEMS = 500  # dense SVD up to here (ARPACK converges badly when k nears n); sparse beyond


def behavioural_embeddings(
    dataset: PreparedDataset,
    item_ids: Sequence[str],
    method: str = "cooccurrence",
    dim: int = 64,
    seed: int = 0,
    sasrec_config: SASRecConfig | None = None,
    window: int = 5,
) -> np.ndarray:
    """Behavioural embeddings `(len(item_ids), dim)`, float32, rows of norm 1, learned from `dataset.train`.

    Cold items (no train interaction, or an id unknown to the dataset) get a zero row: there is no
    behaviour to place them by, and any made-up vector would pull them towards arbitrary items.
    `mix_embeddings` keeps such a row's text part, so a cold item is placed by its text alone.

    Args:
        method: `cooccurrence` or `sasrec`.
        dim: output width. `cooccurrence` pads with zero columns when fewer items than `dim` exist.
        seed: seeds the SVD start vector / SASRec training.
        sasrec_config: `SASRecConfig` for `method="sasrec"` (its `hidden_size` must equal `dim`);
            None: the defaults with `hidden_size=dim` and `seed=seed`.
        window: `cooccurrence`: items up to this many positions apart in a sequence co-occur.
    """
    if method not in METHODS:
        raise ConfigError(f"cf embedding method {method!r} is unknown; expected one of {', '.join(METHODS)}")
    if dim < 1:
        raise ConfigError(f"cf embedding: dim={dim}; expected a positive integer")
    if method == "cooccurrence":
        if window < 1:
            raise ConfigError(f"cf embedding: window={window}; expected a positive integer")
        vocab, table = cooccurrence_embeddings(train_sequences(dataset.train), dim, window=window, seed=seed)
    else:
        vocab, table = _sasrec_embeddings(dataset, dim, seed, sasrec_config)
    out = np.zeros((len(item_ids), dim), dtype=np.float32)
    position = {item: row for row, item in enumerate(vocab)}
    rows = [(i, position[item]) for i, item in enumerate(item_ids) if item in position]
    if rows:
        dst, src = zip(*rows, strict=True)
        out[list(dst)] = table[list(src)]
    return l2_normalize(out)


def cooccurrence_embeddings(sequences: Sequence[Sequence[str]], dim: int, window: int = 5,
                            seed: int = 0) -> tuple[list[str], np.ndarray]:
    """PPMI-weighted item co-occurrence matrix → truncated SVD: `(items, (len(items), dim))`.

    `items` are the distinct items of `sequences`, sorted by id (so the result does not depend on
    the order of the catalog). Each pair of items at most `window` positions apart in a sequence
    counts once in both directions (repeats of one item are not pairs). PPMI uses context-
    distribution smoothing (exponent 0.75), which keeps rare items from dominating. Rows are
    `U·sqrt(S)`, the sign of each component fixed so its largest-magnitude entry is positive.
    """
    items = sorted({item for seq in sequences for item in seq})
    n = len(items)
    index = {item: i for i, item in enumerate(items)}
    flat = np.fromiter((index[item] for seq in sequences for item in seq), dtype=np.int64)
    owner = np.repeat(np.arange(len(sequences)), [len(seq) for seq in sequences])
    rows, cols = [], []
    for d in range(1, window + 1):
        same = owner[:-d] == owner[d:]
        a, b = flat[:-d][same], flat[d:][same]
        keep = a != b
        rows += [a[keep], b[keep]]
        cols += [b[keep], a[keep]]
    table = np.zeros((n, dim), dtype=np.float32)
    if n < 2 or not rows or not sum(len(r) for r in rows):
        return items, table
    r, c = np.concatenate(rows), np.concatenate(cols)
    counts = sp.csr_matrix((np.ones(len(r), dtype=np.float64), (r, c)), shape=(n, n))
    counts.sum_duplicates()
    ppmi = _ppmi(counts)
    k = min(dim, n - 1)
    if ppmi.nnz == 0 or k < 1:
        return items, table
    if n <= DENSE_SVD_MAX_ITEMS:
        u, s, _ = np.linalg.svd(ppmi.toarray(), full_matrices=False)
        u, s = u[:, :k], s[:k]
    else:
        v0 = np.random.default_rng(seed).uniform(-1.0, 1.0, size=n)
        u, s, _ = svds(ppmi, k=k, v0=v0)
        order = np.argsort(-s)
        u, s = u[:, order], s[order]
    u = u * np.sign(u[np.abs(u).argmax(axis=0), np.arange(u.shape[1])] + 1e-30)
    table[:, :k] = u * np.sqrt(np.maximum(s, 0.0))
    return items, table


def _ppmi(counts: sp.csr_matrix, alpha: float = 0.75) -> sp.csr_matrix:
    """max(0, log p(i, j) / (p(i) p_α(j))) on the non-zero entries, p_α the smoothed context distribution."""
    total = counts.sum()
    row = np.asarray(counts.sum(axis=1)).ravel()
    col = np.asarray(counts.sum(axis=0)).ravel() ** alpha
    coo = counts.tocoo()
    pmi = (np.log(coo.data) + math.log(total) - np.log(row[coo.row])
           - np.log(col[coo.col]) + math.log(col.sum()) - math.log(total))
    keep = pmi > 0
    return sp.csr_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=counts.shape)


def _sasrec_embeddings(dataset: PreparedDataset, dim: int, seed: int,
                       sasrec_config: SASRecConfig | None) -> tuple[list[str], np.ndarray]:
    """SASRec's item table for the items that occur in train (the others never got a gradient as input)."""
    from rlrec.baselines.sasrec import SASRecConfig, train_sasrec

    if sasrec_config is None:
        sasrec_config = SASRecConfig(hidden_size=dim, seed=seed)
    elif sasrec_config.hidden_size != dim:
        raise ConfigError(
            f"cf embedding: sasrec_config.hidden_size={sasrec_config.hidden_size} but dim={dim}; "
            "expected them equal"
        )
    model = train_sasrec(dataset, sasrec_config)
    warm = sorted({item for seq in train_sequences(dataset.train) for item in seq})
    return warm, model.item_embeddings(warm)


def mix_embeddings(text: np.ndarray, cf: np.ndarray, cf_weight: float) -> np.ndarray:
    """`[sqrt(1-w)·text, sqrt(w)·cf]` with both parts row-normalised first: `(n, d_text + d_cf)` float32.

    For two items the dot product of their mixed rows is `(1-w)·cos_text + w·cos_cf`, and a row has
    norm 1, so k-means on the result clusters by the weighted similarity. A zero row (a cold item's
    CF part) stays zero: that item's mixed row has norm sqrt(1-w) and is placed by its text alone.
    """
    if isinstance(cf_weight, bool) or not isinstance(cf_weight, numbers.Real) or not 0.0 <= cf_weight <= 1.0:
        raise ConfigError(f"cf_weight={cf_weight!r}; expected a number in [0, 1]")
    text, cf = np.asarray(text), np.asarray(cf)
    for name, x in (("text", text), ("cf", cf)):
        if x.ndim != 2:
            raise DataError(f"mix_embeddings: {name} embeddings have shape {x.shape}; expected (items, dim)")
    if len(text) != len(cf):
        raise DataError(
            f"mix_embeddings: {len(text)} text embeddings but {len(cf)} cf embeddings; expected one row per "
            "item in both, in the same order"
        )
    return np.concatenate(
        [math.sqrt(1.0 - cf_weight) * l2_normalize(text), math.sqrt(cf_weight) * l2_normalize(cf)], axis=1
    ).astype(np.float32)
