"""Serving a trained model: `Recommender` (top-k of a SID or SETRec model), its `Catalog`, a per-user cache.

- `recommender`: `Recommender.from_pretrained(path).recommend(history, k)` / `recommend_batch`.
- the ranking itself is `rlrec.ranking` (SID constrained beam search, SETRec one-pass grounding, baselines).
- `catalog`: `Catalog`, item id ↔ title, and the lookup of history entries given by title.
- `topk_cache`: `build_cache` / `refresh_cache` (resumable, per batch) and `TopKCache.load(path).get(user)`.

The recommender classes are imported on first use: a process that only serves the cache
(`TopKCache`) does not load torch and transformers.
"""

from typing import Any

from rlrec.inference.catalog import Catalog
from rlrec.inference.topk_cache import CachedItem, TopKCache, build_cache, latest_histories, refresh_cache

_LAZY = ("Recommendation", "Recommendations", "Recommender")

__all__ = [
    "CachedItem",
    "Catalog",
    "Recommendation",
    "Recommendations",
    "Recommender",
    "TopKCache",
    "build_cache",
    "latest_histories",
    "refresh_cache",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from rlrec.inference import recommender

        return getattr(recommender, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
