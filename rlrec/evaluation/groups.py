"""Group labels of evaluation examples: warm/cold targets and head/tail (train popularity) targets.

A single average hides what generative recommenders are judged on: cold items (never seen in
train, reachable only through their Semantic ID's meaning) and long-tail items (rarely seen, where
popularity bias hurts). Each example gets a tuple of labels that `MetricAccumulator.add` accepts.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from rlrec.data.schema import Example


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


def head_items(popularity: Mapping[str, int], head_fraction: float = 0.2) -> set[str]:
    """The most popular `head_fraction` of the items that occur in train (ties at the cut go to head)."""
    if not 0.0 < head_fraction < 1.0:
        raise ValueError(f"head_fraction must be in (0, 1), got {head_fraction!r}")
    counts = sorted((c for c in popularity.values() if c > 0), reverse=True)
    if not counts:
        return set()
    threshold = counts[max(1, math.ceil(head_fraction * len(counts))) - 1]
    return {item for item, c in popularity.items() if c >= threshold and c > 0}


def example_groups(examples: Sequence[Example], head: set[str] | None = None) -> list[tuple[str, ...]]:
    """Per example: `"warm"`/`"cold"` (from `Example.cold`, skipped when unset) and, given `head`,
    `"head"`/`"tail"` by the target's train popularity (cold targets are tail)."""
    labels = []
    for ex in examples:
        groups: list[str] = []
        if ex.cold is not None:
            groups.append("cold" if ex.cold else "warm")
        if head is not None:
            groups.append("head" if ex.target in head else "tail")
        labels.append(tuple(groups))
    return labels
