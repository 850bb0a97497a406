"""Group labels of evaluation examples: warm/cold targets and head/tail (train popularity) targets.

A single average hides what generative recommenders are judged on: cold items (never seen in
train, reachable only through their Semantic ID's meaning) and long-tail items (rarely seen, where
popularity bias hurts). Each example gets a tuple of labels that `MetricAccumulator.add` accepts.
"""

from __future__ import annotations

from collections.abc import Sequence

from rlrec.data.popularity import head_items, item_popularity
from rlrec.data.schema import Example

__all__ = ["example_groups", "head_items", "item_popularity"]


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
