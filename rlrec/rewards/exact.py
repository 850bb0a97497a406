"""`exact_match`: 1 when the completion names the target item, 0 when it names another item.

The rule reward of MiniOneRec (its `rule_reward`). The item is the rollout's `item_id` or the SID parsed from the
text (see `context.candidate_items`); a completion that names no item is None, scored the invalid penalty and
counted by `checked`. Without an index and without `item_id`, the completion's text is compared with the
`target_sid` column (whitespace ignored), as MiniOneRec compares strings: then any other text counts as a miss,
since nothing can tell a wrong item from garbage.
"""

from __future__ import annotations

from typing import Any

from rlrec.rewards.context import (
    RewardContext,
    RewardFunc,
    candidate_items,
    column,
    completion_text,
    normalize_sid,
    reward_factory,
    target_items,
)
from rlrec.tasks.reward_batch import ITEM_ID, TARGET_SID


def match_target(completions: list[Any], kwargs: dict[str, Any], context: RewardContext) -> list[bool | None]:
    """Per completion: True if it names the target, False if it names another item, None if it names no item."""
    n = len(completions)
    index = context.index
    if index is None and column(kwargs, ITEM_ID, n) is None:
        sids = column(kwargs, TARGET_SID, n) or [None] * n
        out: list[bool | None] = []
        for completion, sid in zip(completions, sids, strict=True):
            text, target = normalize_sid(completion_text(completion)), normalize_sid(sid)
            out.append(None if text is None or target is None else text == target)
        return out
    candidates = candidate_items(completions, kwargs, index)
    targets = target_items(n, kwargs, index)
    return [None if c is None or t is None else c == t for c, t in zip(candidates, targets, strict=True)]


@reward_factory
def exact_match(context: RewardContext) -> RewardFunc:
    """1.0 for the target item, 0.0 for another item, None (→ penalty) for a completion that names no item."""

    def exact_match(completions: list[Any], **kwargs: Any) -> list[float | None]:
        return [None if hit is None else float(hit) for hit in match_target(completions, kwargs, context)]

    return exact_match
