"""Item popularity in the train split, and what is read off it: the head/tail split and self-information.

These are properties of the data, used by evaluation (head/tail groups, novelty and tail share of a list),
by the popularity baseline, by the re-ranking baselines and by the rewards that steer GRPO away from the
head, so they live in the lowest layer and every one of those reads the same numbers.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping

from rlrec.data.schema import Example

DEFAULT_HEAD_FRACTION = 0.2  # the most popular fifth of the train items is the `head`, the rest the `tail`

def item_popularity(train: Iterable[Example]) -> Counter[str]:
    """How many train interactions each item has.

    Train holds one example per position of a user's sequence, so counting every history would
    count an item once per later position. Instead count every target, plus the history of each
    user's earliest example (its shortest history): together they are the user's training sequence.
    """
    counts: Counter[str] = Counter()
    first: dict[str, list[str]] = {}
    for ex in train:
        counts[ex.target] += 1
        seen = first.get(ex.user_id)
        if seen is None or len(ex.history) < len(seen):
            first[ex.user_id] = ex.history
    for history in first.values():
        counts.update(history)
    return counts


def head_items(popularity: Mapping[str, int], head_fraction: float = DEFAULT_HEAD_FRACTION) -> set[str]:
    """The most popular `head_fraction` of the items that occur in train (ties at the cut go to head)."""
    if not 0.0 < head_fraction < 1.0:
        raise ValueError(f"head_fraction must be in (0, 1), got {head_fraction!r}")
    counts = sorted((c for c in popularity.values() if c > 0), reverse=True)
    if not counts:
        return set()
    threshold = counts[max(1, math.ceil(head_fraction * len(counts))) - 1]
    return {item for item, c in popularity.items() if c >= threshold and c > 0}


class SelfInformation:
    """Novelty of an item: `-log2` of its share of the train interactions, in bits.

    An item with no train interaction is counted as if it had one (its share would be 0 and its
    information infinite), so the most novel item is worth `max_bits = log2(total)`. `scaled(item)`
    divides by that bound, giving the [0, 1] value a reward or a re-ranking bonus adds to a score.
    """

    def __init__(self, popularity: Mapping[str, int]) -> None:
        self.popularity = popularity
        self.total = sum(max(int(c), 0) for c in popularity.values())
        if self.total < 1:
            raise ValueError("item popularity is empty: no train interactions to measure novelty against")
        self.max_bits = math.log2(self.total) if self.total > 1 else 1.0

    def bits(self, item: str) -> float:
        return math.log2(self.total / max(int(self.popularity.get(item, 0)), 1))

    def scaled(self, item: str) -> float:
        return self.bits(item) / self.max_bits
