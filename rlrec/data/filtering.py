"""Filters applied to interactions before splitting: time window, consecutive duplicates, iterative k-core.

They run in that order on per-user chronological sequences (`group_by_user`), and each reports how
much it removed so the manifest can account for every dropped interaction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from rlrec.data.raw import Interaction

Sequences = dict[str, list[Interaction]]


def in_time_window(interactions: Iterable[Interaction], min_timestamp: int | None,
                   max_timestamp: int | None) -> tuple[list[Interaction], int]:
    """Keep interactions with `min_timestamp <= timestamp <= max_timestamp` (None: unbounded).

    Returns the kept interactions and how many were dropped.
    """
    interactions = list(interactions)
    if min_timestamp is None and max_timestamp is None:
        return interactions, 0
    lo = float("-inf") if min_timestamp is None else min_timestamp
    hi = float("inf") if max_timestamp is None else max_timestamp
    kept = [x for x in interactions if lo <= x.timestamp <= hi]
    return kept, len(interactions) - len(kept)


def group_by_user(interactions: Iterable[Interaction]) -> Sequences:
    """Each user's interactions, oldest first. The sort is stable: events at the same time keep file order.

    Users appear in the order of their first interaction in the input, so the output is deterministic.
    """
    sequences: Sequences = {}
    for x in interactions:
        sequences.setdefault(x.user_id, []).append(x)
    for seq in sequences.values():
        seq.sort(key=lambda x: x.timestamp)
    return sequences


def dedupe_consecutive(sequences: Sequences) -> tuple[Sequences, int]:
    """Collapse runs of the same item in a user's sequence into their first event; return the count dropped."""
    out: Sequences = {}
    dropped = 0
    for user, seq in sequences.items():
        kept = [x for i, x in enumerate(seq) if i == 0 or x.item_id != seq[i - 1].item_id]
        dropped += len(seq) - len(kept)
        out[user] = kept
    return out, dropped


@dataclass
class KCoreResult:
    sequences: Sequences
    passes: int
    dropped_users: int
    dropped_items: int
    dropped_interactions: int


def k_core(sequences: Sequences, user_k: int, item_k: int) -> KCoreResult:
    """Iterative k-core: repeat until every user has >= `user_k` and every item >= `item_k` interactions.

    One pass is not enough in general: removing a rare item can push a user under `user_k`, whose
    removal can push another item under `item_k`, and so on; the loop stops at the fixed point.
    """
    users_before = len(sequences)
    items_before = len({x.item_id for seq in sequences.values() for x in seq})
    interactions_before = sum(len(seq) for seq in sequences.values())
    current = sequences
    passes = 0
    while True:
        passes += 1
        item_counts = Counter(x.item_id for seq in current.values() for x in seq)
        rare = {item for item, n in item_counts.items() if n < item_k}
        changed = bool(rare)
        nxt: Sequences = {}
        for user, seq in current.items():
            if rare:
                seq = [x for x in seq if x.item_id not in rare]
            if len(seq) < user_k:
                changed = True
                continue
            nxt[user] = seq
        current = nxt
        if not changed:
            break
    items_after = len({x.item_id for seq in current.values() for x in seq})
    return KCoreResult(
        sequences=current,
        passes=passes,
        dropped_users=users_before - len(current),
        dropped_items=items_before - items_after,
        dropped_interactions=interactions_before - sum(len(seq) for seq in current.values()),
    )
