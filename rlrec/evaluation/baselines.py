"""Non-generative baselines, behind the same `recommend(histories, k)` interface as the LLM.

- `PopularityRecommender`: the most popular train items. The floor every model must beat.
- `ScorerRecommender` + `score_to_topk`: any model that scores the whole catalog at once, returning
  a `(batch, n_items)` tensor aligned with its item-id vocabulary (SASRec's `SASRecModel.score`).

Neither excludes the user's history by default. The generative model decodes over every item in
the SID trie and can re-recommend an item the user already has, so the baselines play by the same
rule and the comparison is like for like. Excluding history is an option: it helps on data without
repeat consumption (one review per item in Amazon), and it would make a repeated target unreachable.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Protocol

import torch

from rlrec.data.schema import Example
from rlrec.evaluation.groups import item_popularity

BASELINES = ("popularity", "sasrec")  # the baselines a report can set beside a model


class Recommender(Protocol):
    """Anything that ranks items for histories. Recommenders that can also rank within a candidate pool
    (the cold-start protocol: cold items only) add `restricted_to(items) -> Recommender`."""

    def recommend(self, histories: Sequence[Sequence[str]], k: int) -> list[list[str]]:
        """Top-`k` item ids per history, best first (a list may be shorter than `k`)."""
        ...


class PopularityRecommender:
    """Recommends the most popular train items, ties broken by item id so the ranking is deterministic."""

    def __init__(self, popularity: Mapping[str, int], exclude_history: bool = False) -> None:
        self.ranking: list[str] = [item for item, count in sorted(popularity.items(), key=lambda kv: (-kv[1], kv[0]))
                                   if count > 0]
        self.exclude_history = exclude_history

    @classmethod
    def from_examples(cls, train: Sequence[Example], exclude_history: bool = False) -> PopularityRecommender:
        """Popularity counted as in `item_popularity` (each train interaction once)."""
        return cls(item_popularity(train), exclude_history=exclude_history)

    def restricted_to(self, items: Iterable[str]) -> PopularityRecommender:
        """Popularity within `items`; items never seen in train have no popularity and are never recommended."""
        pool = set(items)
        restricted = copy.copy(self)
        restricted.ranking = [item for item in self.ranking if item in pool]
        return restricted

    def recommend(self, histories: Sequence[Sequence[str]], k: int) -> list[list[str]]:
        if not self.exclude_history:
            top = self.ranking[:k]
            return [list(top) for _ in histories]
        out = []
        for history in histories:
            seen = set(history)
            # Only the first k + len(history) ranked items can be needed.
            candidates = self.ranking[: k + len(seen)]
            out.append([item for item in candidates if item not in seen][:k])
        return out


def score_to_ranked(scores: torch.Tensor, item_ids: Sequence[str], k: int,
                    exclude: Sequence[Sequence[str]] | None = None,
                    index: Mapping[str, int] | None = None) -> list[list[tuple[str, float]]]:
    """Top-`k` `(item_id, score)` per row of a `(batch, n_items)` score tensor, in one batched `torch.topk`.

    `exclude[i]` lists ids to drop from row i (e.g. the history); they are masked to -inf. Items whose score
    is -inf (masked, or ruled out by the scorer) are left out, so a row may be shorter than `k`. Ties in
    score come out in whatever order `torch.topk` gives.
    """
    if scores.dim() != 2 or scores.shape[1] != len(item_ids):
        raise ValueError(f"scores must have shape (batch, {len(item_ids)}), got {tuple(scores.shape)}")
    scores = scores.detach().float()
    if exclude is not None:
        if index is None:
            index = {item: i for i, item in enumerate(item_ids)}
        rows = [r for r, items in enumerate(exclude) for item in items if item in index]
        cols = [index[item] for items in exclude for item in items if item in index]
        if rows:
            scores = scores.clone()
            scores[rows, cols] = float("-inf")
    values, indices = torch.topk(scores, min(k, scores.shape[1]), dim=-1)
    valid = torch.isfinite(values) | (values > 0)  # +inf is a legitimate (certain) score
    return [[(item_ids[j], v) for j, v, ok in zip(row, vals, keep, strict=True) if ok]
            for row, vals, keep in zip(indices.tolist(), values.tolist(), valid.tolist(), strict=True)]


def score_to_topk(scores: torch.Tensor, item_ids: Sequence[str], k: int,
                  exclude: Sequence[Sequence[str]] | None = None,
                  index: Mapping[str, int] | None = None) -> list[list[str | None]]:
    """Top-`k` item ids per row, as `score_to_ranked` ranks them, padded with `None` to `min(k, n_items)`.

    The padding stands for the slots whose score is -inf (they sort last), which the metrics skip.
    """
    return padded_ids(score_to_ranked(scores, item_ids, k, exclude, index), min(k, len(item_ids)))


def padded_ids(ranked: Sequence[Sequence[tuple[str, float]]], width: int) -> list[list[str | None]]:
    """The item ids of ranked `(item_id, score)` rows, each padded with None to `width` slots."""
    return [[item for item, _ in row] + [None] * (width - len(row)) for row in ranked]


def candidate_mask(index: Mapping[str, int], items: Iterable[str]) -> torch.Tensor:
    """Boolean `(n_items,)` mask of the score columns of `items` (ids missing from `index` are skipped)."""
    mask = torch.zeros(len(index), dtype=torch.bool)
    mask[[index[item] for item in items if item in index]] = True
    return mask


def mask_candidates(scores: torch.Tensor, candidates: torch.Tensor | None) -> torch.Tensor:
    """Scores with every column outside `candidates` at -inf (ranked never; `score_to_topk` pads them)."""
    if candidates is None:
        return scores
    return scores.float().masked_fill(~candidates.to(scores.device), float("-inf"))


class ScorerRecommender:
    """Adapter from a catalog scorer (`histories -> (batch, n_items)` scores) to `recommend`.

    For SASRec: `ScorerRecommender(model.score, item_ids)` with the model's item-id vocabulary,
    in the order of its score columns.
    """

    def __init__(self, score_fn: Callable[[list[list[str]]], torch.Tensor], item_ids: Sequence[str],
                 exclude_history: bool = False) -> None:
        self.score_fn = score_fn
        self.item_ids = list(item_ids)
        self.index = {item: i for i, item in enumerate(self.item_ids)}
        self.exclude_history = exclude_history
        self.candidates: torch.Tensor | None = None  # bool mask over item_ids; None: every item

    def restricted_to(self, items: Iterable[str]) -> ScorerRecommender:
        """The same scorer ranking only `items` (the others are masked; ids it does not know are ignored)."""
        restricted = copy.copy(self)
        restricted.candidates = candidate_mask(self.index, items)
        return restricted

    @torch.no_grad()
    def recommend(self, histories: Sequence[Sequence[str]], k: int) -> list[list[str | None]]:
        histories = [list(h) for h in histories]
        scores = mask_candidates(self.score_fn(histories), self.candidates)
        return score_to_topk(scores, self.item_ids, k, exclude=histories if self.exclude_history else None,
                             index=self.index)
