"""Token-level semantic rewards: credit for how close a wrong item is to the target, not only for the hit.

TS-Rec names token-level semantic rewards as the next step after SA-Init and TS-Align; rlrec has two:

- `token_semantic`: partial credit per SID level matched from the left. SID codes are coarse to fine (residual
  quantisation), so sharing the target's first k codes means sharing its cluster at k levels. With level weights
  `w` (default all 1) and k the length of the common prefix, the reward is `Σ_{l<k} w_l / Σ_l w_l`: 1 for the
  target, 0 when even the first code differs.
- `semantic_cosine`: the cosine similarity of the candidate's and the target's item text embeddings (the
  embeddings the SIDs were quantised from), in [-1, 1], or in [0, 1] with `rescale: true`; MiniOneRec's
  `semantic_reward` scores the same.

A completion that names no item is None (→ the invalid penalty), as is an item without codes or embedding.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rlrec.rewards.context import RewardContext, RewardFunc, candidate_items, reward_factory, target_items
from rlrec.utils.errors import ConfigError


def _level_weights(weights: Sequence[float] | None, levels: int) -> np.ndarray:
    if weights is None:
        return np.ones(levels)
    try:
        w = np.asarray([float(x) for x in weights])
    except (TypeError, ValueError):
        raise ConfigError(f"reward 'token_semantic': level_weights must be numbers, got {weights!r}") from None
    if len(w) != levels or not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ConfigError(
            f"reward 'token_semantic': level_weights {list(weights)} must be {levels} non-negative numbers "
            "(one per SID level) with a positive sum"
        )
    return w


@reward_factory
def token_semantic(context: RewardContext, level_weights: Sequence[float] | None = None) -> RewardFunc:
    """Weighted share of the target's SID levels the candidate matches from the left (formula above)."""
    index = context.require_index("token_semantic")
    weights = _level_weights(level_weights, index.num_levels)
    # credit[k] is the reward for a common prefix of k codes.
    credit = np.concatenate([[0.0], np.cumsum(weights) / weights.sum()])

    def codes(item: str | None) -> tuple[int, ...] | None:
        return index.codes_of(item) if item is not None and item in index else None

    def token_semantic(completions: list[Any], **kwargs: Any) -> list[float | None]:
        n = len(completions)
        cands, targets = candidate_items(completions, kwargs, index), target_items(n, kwargs, index)
        rewards: list[float | None] = []
        for cand, target in zip(cands, targets, strict=True):
            a, b = codes(cand), codes(target)
            if a is None or b is None:
                rewards.append(None)
                continue
            k = 0
            while k < len(a) and a[k] == b[k]:
                k += 1
            rewards.append(float(credit[k]))
        return rewards

    return token_semantic


@reward_factory
def semantic_cosine(context: RewardContext, rescale: bool = False) -> RewardFunc:
    """Cosine similarity of candidate and target text embeddings; `rescale` maps it to [0, 1]."""
    rows, matrix = context.embedding_table("semantic_cosine")

    def semantic_cosine(completions: list[Any], **kwargs: Any) -> list[float | None]:
        n = len(completions)
        cands = candidate_items(completions, kwargs, context.index)
        targets = target_items(n, kwargs, context.index)
        rewards: list[float | None] = []
        for cand, target in zip(cands, targets, strict=True):
            a, b = rows.get(cand) if cand is not None else None, rows.get(target) if target is not None else None
            if a is None or b is None:
                rewards.append(None)
                continue
            cos = float(np.clip(matrix[a] @ matrix[b], -1.0, 1.0))
            rewards.append((cos + 1.0) / 2.0 if rescale else cos)
        return rewards

    return semantic_cosine


def index_embeddings(index: Any) -> np.ndarray:
    """The embeddings `semantic_cosine` compares: those the index's SIDs were quantised from (`rlrec sid` keeps
    them beside `index.json`); an index without them is refused rather than compared in another space."""
    if index.embeddings is None:
        raise ConfigError(
            f"reward 'semantic_cosine': {index.source or 'the SID index'} has no item embeddings beside it "
            "(item_embeddings.npy); it compares items in the space their SIDs were quantised from: rebuild the "
            "index with `rlrec sid`, or import it with `--sid_embeddings_file` (the SID file's embeddings)"
        )
    return index.embeddings

