"""`ScoreRanker`: a model that scores the whole catalog in one call (SASRec, SETRec's grounding).

The pool and the history are masked to -inf before one batched `torch.topk`, so the top k is taken
among the allowed items only; -inf slots (masked, or ruled out by the scorer) never come back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from rlrec.ranking.base import Ranked, Ranker

ScoreFn = Callable[[list[list[str]]], torch.Tensor]  # histories -> (batch, n_items) scores, columns = item_ids


class ScoreRanker(Ranker):
    """Top-k of `score_fn(histories)`, whose columns follow `item_ids`; `batch_size` histories per call."""

    def __init__(self, score_fn: ScoreFn, item_ids: Sequence[str], *, batch_size: int = 1024,
                 model: Any = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size}; expected a positive integer")
        self.score_fn = score_fn
        self.item_ids = [str(item) for item in item_ids]
        self.columns = {item: j for j, item in enumerate(self.item_ids)}
        self.batch_size = batch_size
        self.model = model
        self._pool_mask: tuple[frozenset[str], torch.Tensor] | None = None

    def knows(self, item_id: str) -> bool:
        return item_id in self.columns

    def _mask_of(self, pool: frozenset[str]) -> torch.Tensor:
        """Boolean mask of the pool's columns (the last pool's is kept: evaluation asks one pool many times)."""
        if self._pool_mask is None or self._pool_mask[0] != pool:
            mask = torch.zeros(len(self.item_ids), dtype=torch.bool)
            mask[[self.columns[item] for item in pool]] = True
            self._pool_mask = (pool, mask)
        return self._pool_mask[1]

    @torch.no_grad()
    def _rank(self, histories: list[list[str]], k: int, exclude_history: bool,
              pool: frozenset[str] | None) -> list[Ranked]:
        out: list[Ranked] = []
        for start in range(0, len(histories), self.batch_size):
            batch = histories[start: start + self.batch_size]
            scores = self.score_fn(batch).detach().float().cpu()
            if scores.shape != (len(batch), len(self.item_ids)):
                raise ValueError(f"scores must have shape ({len(batch)}, {len(self.item_ids)}), "
                                 f"got {tuple(scores.shape)}")
            out.extend(top_k(scores, self.item_ids, self.columns, k, batch if exclude_history else None,
                             None if pool is None else self._mask_of(pool)))
        return out


def top_k(scores: torch.Tensor, item_ids: Sequence[str], columns: dict[str, int], k: int,
          exclude: Sequence[Sequence[str]] | None, allowed: torch.Tensor | None) -> list[Ranked]:
    """Top-`k` `(item_id, score)` per row of `(batch, n_items)` scores; `exclude[i]` (ids) and the columns
    outside `allowed` are masked first. -inf slots are dropped, so a row can be shorter than `k`."""
    if allowed is not None:
        scores = scores.masked_fill(~allowed, float("-inf"))
    if exclude is not None:
        rows = [r for r, items in enumerate(exclude) for item in items if item in columns]
        cols = [columns[item] for items in exclude for item in items if item in columns]
        if rows:
            scores = scores.clone() if allowed is None else scores
            scores[rows, cols] = float("-inf")
    values, indices = torch.topk(scores, min(k, scores.shape[1]), dim=-1)
    keep = values > float("-inf")
    return [[(item_ids[j], v) for j, v, ok in zip(row, vals, oks, strict=True) if ok]
            for row, vals, oks in zip(indices.tolist(), values.tolist(), keep.tolist(), strict=True)]
