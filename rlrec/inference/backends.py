"""How a `Recommender` ranks items: constrained beam search of a SID model, or SETRec's grounding.

`Recommender` resolves histories (ids or titles), batches them and builds the results; a backend only
turns histories of item ids into ranked `(item_id, score)` lists. Two identifier families, one serving
API:

- `SIDBackend`: the SID model writes its answer token by token under the trie of real items
  (`constrained_beam_search`); the score is the SID's log-probability.
- `SETRecBackend`: a SETRec model writes all of an item's set tokens in one pass and every item is
  scored against them (`SETRecModel.score`); the score is the grounded similarity.

Both can rank a candidate pool only (`restricted_to`) and leave the history's items out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from rlrec.evaluation.sid_recommender import SIDRecommender
from rlrec.generation import constrained_beam_search

Ranked = list[tuple[str, float]]  # (item id, score), best first


class SIDBackend:
    """Constrained beam search over the SIDs of `searcher.index` (or of a pool of its items)."""

    def __init__(self, searcher: SIDRecommender) -> None:
        self.searcher = searcher
        self.model = searcher.model

    def knows(self, item_id: str) -> bool:
        return item_id in self.searcher.index

    def identifier(self, item_id: str) -> str:
        return self.searcher.index.sid(item_id)

    def restricted_to(self, items: Iterable[str]) -> SIDBackend:
        return SIDBackend(self.searcher.restricted_to(items))

    def rank(self, histories: Sequence[Sequence[str]], k: int, beams: int, exclude_history: bool) -> list[Ranked]:
        """The best `beams` items of each history's search, cut to `k`; with `exclude_history` the history's
        items are masked inside the search, so k unseen items come back whenever the catalog has them."""
        inputs = self.searcher.encode(histories)
        exclude = None
        if exclude_history:
            rows = self.searcher.item_rows
            exclude = [sorted({rows[item] for item in history if item in rows}) for history in histories]
        out = constrained_beam_search(self.model, inputs["input_ids"], inputs["attention_mask"],
                                      self.searcher.constraint, max(beams, k), exclude=exclude)
        item_ids = self.searcher.item_ids
        return [[(item_ids[r], float(s)) for r, s in zip(rows, scores, strict=True) if r >= 0][:k]
                for rows, scores in zip(out.item_indices.tolist(), out.scores.tolist(), strict=True)]


class SETRecBackend:
    """Grounded scores of every item (or of a pool) from one SETRec forward pass per batch (`SETRecRecommender`,
    which caches the item-token corpus and the prompt's keys and values)."""

    def __init__(self, scorer: Any) -> None:
        self.scorer = scorer
        self.model = scorer.model

    def knows(self, item_id: str) -> bool:
        return item_id in self.model.index

    def identifier(self, item_id: str) -> str:
        return ""  # SETRec identifiers are continuous token sets, not strings

    def restricted_to(self, items: Iterable[str]) -> SETRecBackend:
        return SETRecBackend(self.scorer.restricted_to(items))

    def rank(self, histories: Sequence[Sequence[str]], k: int, beams: int, exclude_history: bool) -> list[Ranked]:
        """The top `k` items by grounded score; the history's items are masked out exactly when asked."""
        return self.scorer.ranked(histories, k, exclude_history)
