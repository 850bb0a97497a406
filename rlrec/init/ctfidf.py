"""Keywords of SID clusters by class-based TF-IDF: offline, deterministic, no model needed.

A cluster's items are one class; a word scores high when many of the cluster's items use it and few sibling
clusters do. What a token's cluster is: SIDs come from residual quantisation, so `<b_3>` is ONE token shared by
all items with code 3 at level 1 whatever their first code is; its cluster is all those items (`token_clusters`).
A per-prefix cluster (`<a_1><b_3>`) is what `prefix_keywords` describes; TS-Align uses it, SA-Init cannot (one row
per token). Siblings: a level's clusters are scored against each other (every other depth-d prefix, not only
those under the same parent), so a prefix keeps the words of its parent, as a description of it should.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from rlrec.utils.errors import ConfigError, DataError

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

# A compact English stopword list (function words, plus a few words that describe no item).
STOPWORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having
    he her here hers herself him himself his how i if in into is it its itself just me more most my myself no
    nor not now of off on once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too under until up very
    was we were what when where which while who whom why will with would you your yours yourself yourselves
    via per etc vs get got may might must shall le la les de des du el los der das und
    """.split()
)

_WORD = re.compile(r"[^\W_]+")


def tokenize(text: str, stopwords: frozenset[str] = STOPWORDS, min_length: int = 3) -> list[str]:
    """Lowercase alphanumeric words of `text`, without stopwords, pure numbers and words under `min_length`."""
    return [
        w for w in _WORD.findall(text.lower()) if len(w) >= min_length and not w.isdigit() and w not in stopwords
    ]


# --------------------------------------------------------------------------------------------------------------
# Clusters


def token_clusters(codes: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """`(level, code) -> indices of the items with that code at that level`, for every code in use."""
    codes = _check_codes(codes)
    clusters: dict[tuple[int, int], np.ndarray] = {}
    for level in range(codes.shape[1]):
        column = codes[:, level]
        for code in np.unique(column):
            clusters[(level, int(code))] = np.flatnonzero(column == code)
    return clusters


def prefix_clusters(codes: np.ndarray, depth: int) -> dict[tuple[int, ...], np.ndarray]:
    """`codes[:depth] prefix -> indices of the items whose SID starts with it`, for every prefix in use."""
    codes = _check_codes(codes)
    if not 1 <= depth <= codes.shape[1]:
        raise ConfigError(f"prefix depth {depth} is outside 1..{codes.shape[1]} (the number of SID levels)")
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, row in enumerate(codes[:, :depth].tolist()):
        groups.setdefault(tuple(row), []).append(i)
    return {prefix: np.asarray(idx) for prefix, idx in sorted(groups.items())}


# --------------------------------------------------------------------------------------------------------------
# Offline: class-based TF-IDF


def ctfidf_keywords(
    groups: Mapping[K, Sequence[str]],
    top_k: int = 5,
    stopwords: frozenset[str] = STOPWORDS,
    min_length: int = 3,
) -> dict[K, list[str]]:
    """The `top_k` most distinctive words of each group of texts, against the other groups.

    score(w, g) = share of g's texts containing w  *  log(1 + G / number of groups containing w)

    Counting texts rather than occurrences keeps one long description from dominating a cluster; the
    smoothed inverse group frequency never reaches zero, so a word every group shares can still fill
    the list of a group with nothing more distinctive. Ties break alphabetically (deterministic).
    """
    if top_k < 1:
        raise ConfigError(f"top_k must be >= 1, got {top_k}")
    presence: dict[K, Counter[str]] = {}
    sizes: dict[K, int] = {}
    for key, texts in groups.items():
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(set(tokenize(text, stopwords, min_length)))
        presence[key], sizes[key] = counts, len(texts)
    group_freq: Counter[str] = Counter()
    for counts in presence.values():
        group_freq.update(counts.keys())
    n_groups = len(groups)
    keywords: dict[K, list[str]] = {}
    for key, counts in presence.items():
        scored = sorted(
            ((n / sizes[key]) * math.log(1 + n_groups / group_freq[w]), w) for w, n in counts.items()
        )
        scored.sort(key=lambda sw: -sw[0])  # stable: equal scores stay alphabetical
        keywords[key] = [w for _, w in scored[:top_k]]
    return keywords


def token_keywords(
    codes: np.ndarray, texts: Sequence[str], top_k: int = 5, **kwargs
) -> dict[tuple[int, int], list[str]]:
    """c-TF-IDF keywords of each SID token `(level, code)`; clusters of one level are scored together.

    `texts[i]` describes the item of `codes[i]` (its title plus categories, as embedded for the SIDs).
    Codes no item uses get no entry (SA-Init then falls back to the vocabulary mean).
    """
    codes = _check_codes(codes)
    _check_len(texts, codes)
    out: dict[tuple[int, int], list[str]] = {}
    for level in range(codes.shape[1]):
        groups = {
            key: [texts[i] for i in idx] for key, idx in token_clusters(codes[:, level : level + 1]).items()
        }
        out.update({(level, code): kw for (_, code), kw in ctfidf_keywords(groups, top_k, **kwargs).items()})
    return out


def prefix_keywords(
    item_ids: Sequence[str],
    codes: np.ndarray,
    texts: Sequence[str] | Mapping[str, str],
    depth: int,
    top_k: int = 5,
    **kwargs,
) -> dict[tuple[int, ...], list[str]]:
    """c-TF-IDF keywords of each SID prefix of length `depth` (for TS-Align's prefix descriptions).

    `codes[i]` is the SID of `item_ids[i]`; `texts` is aligned with `item_ids`, or maps item id -> text.
    """
    codes = _check_codes(codes)
    _check_len(item_ids, codes)
    if isinstance(texts, Mapping):
        missing = [i for i in item_ids if i not in texts]
        if missing:
            raise DataError(f"prefix_keywords: no text for items {missing[:5]}")
        texts = [texts[i] for i in item_ids]
    _check_len(texts, codes)
    groups = {prefix: [texts[i] for i in idx] for prefix, idx in prefix_clusters(codes, depth).items()}
    return ctfidf_keywords(groups, top_k, **kwargs)


# --------------------------------------------------------------------------------------------------------------
# Checks


def _check_codes(codes: np.ndarray) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.ndim != 2 or not np.issubdtype(codes.dtype, np.integer):
        raise ConfigError(f"codes must be an integer array of shape (items, levels), got {codes.dtype} {codes.shape}")
    return codes


def _check_len(seq: Sequence, codes: np.ndarray) -> None:
    if len(seq) != len(codes):
        raise DataError(f"{len(seq)} item ids/texts for {len(codes)} rows of SID codes; they must be aligned")
