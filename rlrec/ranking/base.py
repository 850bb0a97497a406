"""The `Ranker` protocol: top-k items per history, with the history's items and a candidate pool handled
inside the ranking (never by filtering a top list afterwards, which could return fewer than k items)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from typing import Any

import torch

from rlrec.utils.errors import ConfigError

Ranked = list[tuple[str, float]]  # (item id, score), best first; scores comparable within one history


class Ranker(ABC):
    """Ranks the items it knows for user histories (lists of item ids, oldest first).

    Subclasses set `item_ids` (every item they can rank) and implement `knows` and `_rank`; `rank` checks the
    arguments and resolves the pool. `model` is the torch module behind the ranker (None for popularity).
    """

    item_ids: Sequence[str]
    model: Any = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device if self.model is not None else torch.device("cpu")

    @abstractmethod
    def knows(self, item_id: str) -> bool:
        """Whether `item_id` is an item this ranker can rank (and read in a history)."""

    def identifier(self, item_id: str) -> str:
        """The item's identifier string as the model writes it (a SID); empty where there is none."""
        return ""

    def rank(self, histories: Sequence[Sequence[str]], k: int, *, exclude_history: bool = False,
             pool: Collection[str] | None = None) -> list[Ranked]:
        """Top-`k` `(item_id, score)` per history, in input order, best first.

        With `exclude_history`, a history's own items are never ranked for it; with `pool`, only those
        items are (ids the ranker cannot rank are ignored: popularity never ranks an item without train
        interactions). A list is shorter than `k` only when fewer allowed items exist.
        """
        if k < 1:
            raise ConfigError(f"k={k}; expected a positive integer")
        allowed = None
        if pool is not None:
            allowed = frozenset(str(item) for item in pool if self.knows(str(item)))
            if not allowed:
                return [[] for _ in histories]
        if not histories:
            return []
        return self._rank([[str(item) for item in h] for h in histories], k, exclude_history, allowed)

    @abstractmethod
    def _rank(self, histories: list[list[str]], k: int, exclude_history: bool,
              pool: frozenset[str] | None) -> list[Ranked]:
        ...


def ranked_ids(ranked: Sequence[Ranked]) -> list[list[str]]:
    """The item ids of ranked lists (what the metrics read)."""
    return [[item for item, _ in row] for row in ranked]
