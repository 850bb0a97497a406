"""`PopularityRanker`: the most popular train items, the floor every model must beat."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from rlrec.data.popularity import item_popularity
from rlrec.data.schema import Example
from rlrec.ranking.base import Ranked, Ranker


class PopularityRanker(Ranker):
    """Items by train popularity, ties broken by item id so the ranking is deterministic; the score is the
    item's count. Items no train example holds have no popularity and are never ranked."""

    def __init__(self, popularity: Mapping[str, int]) -> None:
        ordered = sorted(((item, count) for item, count in popularity.items() if count > 0),
                         key=lambda kv: (-kv[1], kv[0]))
        self.ranking: list[tuple[str, float]] = [(item, float(count)) for item, count in ordered]
        self.item_ids = [item for item, _ in ordered]
        self.counts = {item: count for item, count in ordered}

    def knows(self, item_id: str) -> bool:
        return item_id in self.counts

    @classmethod
    def from_examples(cls, train: Sequence[Example]) -> PopularityRanker:
        """Popularity counted as in `item_popularity` (each train interaction once)."""
        return cls(item_popularity(train))

    def _rank(self, histories: list[list[str]], k: int, exclude_history: bool,
              pool: frozenset[str] | None) -> list[Ranked]:
        ranking = self.ranking if pool is None else [(item, s) for item, s in self.ranking if item in pool]
        if not exclude_history:
            return [list(ranking[:k]) for _ in histories]
        out = []
        for history in histories:
            seen = set(history)
            out.append([entry for entry in ranking[: k + len(seen)] if entry[0] not in seen][:k])
        return out
