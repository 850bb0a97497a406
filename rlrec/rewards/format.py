"""`valid_format`: 1 for a completion that is a well-formed SID, for the unconstrained-sampling ablation.

Constrained decoding only ever writes real items; sampling without the trie can write anything, and this reward
is what teaches it the format. A completion is valid when its text (stripped) is exactly one SID of the index's
levels, codes within the codebooks (`allow_extra_text: true` accepts text around the first SID), and, with
`require_item: true` (default), that SID names a catalog item. Anything else is None, scored the invalid
penalty and counted: set `invalid_penalty` (e.g. -1) to punish bad format rather than merely not reward it.
"""

from __future__ import annotations

import re
from typing import Any

from rlrec.rewards.context import RewardContext, RewardFunc, completion_text, reward_factory


@reward_factory
def valid_format(context: RewardContext, require_item: bool = True, allow_extra_text: bool = False) -> RewardFunc:
    """1.0 for a well-formed SID (a catalog item with `require_item`), None (→ penalty) otherwise."""
    index = context.require_index("valid_format")
    pattern = re.compile(r"\s*".join(rf"<{p}_(0|[1-9][0-9]{{0,9}})>" for p in index.token_prefixes))
    sizes = index.codebook_sizes

    def score(completion: Any) -> float | None:
        text = completion_text(completion)
        if text is None:
            return None
        match = pattern.search(text) if allow_extra_text else pattern.fullmatch(text.strip())
        if match is None:
            return None
        codes = tuple(int(g) for g in match.groups())
        if any(c >= s for c, s in zip(codes, sizes, strict=True)):
            return None
        if require_item and index.item_for_codes(codes) is None:
            return None
        return 1.0

    def valid_format(completions: list[Any], **kwargs: Any) -> list[float | None]:
        return [score(c) for c in completions]

    return valid_format
