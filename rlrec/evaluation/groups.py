"""Group labels of evaluation examples: warm/cold, head/tail (train popularity) and liked/neutral/disliked targets.

A single average hides what generative recommenders are judged on: cold items (never seen in
train, reachable only through their Semantic ID's meaning) and long-tail items (rarely seen, where
popularity bias hurts); and, where the data is rated, whether the user liked the item they went to next
(a model that recommends what a user will watch and then dislike is not serving them: lower HR on disliked
targets is better). Each example gets a tuple of labels that `MetricAccumulator.add` accepts.
"""

from __future__ import annotations

from collections.abc import Sequence

from rlrec.data.feedback import FeedbackRule
from rlrec.data.popularity import head_items, item_popularity
from rlrec.data.schema import Example

__all__ = ["example_groups", "head_items", "item_popularity"]


def example_groups(examples: Sequence[Example], head: set[str] | None = None,
                   feedback: FeedbackRule | None = None) -> list[tuple[str, ...]]:
    """Per example: `"warm"`/`"cold"` (from `Example.cold`, skipped when unset); given `head`, `"head"`/`"tail"`
    by the target's train popularity (cold targets are tail); given `feedback`, `"liked"`/`"neutral"`/
    `"disliked"` by the target's rating (unrated targets get none)."""
    labels = []
    for ex in examples:
        groups: list[str] = []
        if ex.cold is not None:
            groups.append("cold" if ex.cold else "warm")
        if head is not None:
            groups.append("head" if ex.target in head else "tail")
        if feedback is not None and (label := feedback.label(ex.rating)) is not None:
            groups.append(label)
        labels.append(tuple(groups))
    return labels
