"""Chronological leave-one-out splits and warm/cold labels.

Per user (sequence sorted oldest first): the last item is the test target, the one before it the
valid target, and every earlier position i >= 1 of the rest is a train example (history = the items
before it). Valid sees the whole training sequence as history; test sees it plus the valid item.
Histories keep only their last `history_cut` items. Ratings travel with their items: an example carries
its target's rating and one rating per history item when the user's events are rated.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TypeVar

from rlrec.data.filtering import Sequences
from rlrec.data.raw import Interaction
from rlrec.data.schema import Example

T = TypeVar("T")
MIN_SPLIT_LENGTH = 3  # one train item (a history), one valid target, one test target


@dataclass
class Splits:
    train: list[Example]
    valid: list[Example]
    test: list[Example]
    short_users: int  # users with fewer than MIN_SPLIT_LENGTH interactions, left out
    short_user_interactions: int


def truncate(history: list[T], history_cut: int) -> list[T]:
    """The last `history_cut` items (the most recent ones matter most for the next item), or their ratings."""
    return history[-history_cut:] if len(history) > history_cut else list(history)


def leave_one_out(sequences: Sequences, history_cut: int) -> Splits:
    """Split each user's chronological sequence; users too short to split are counted and left out."""
    train: list[Example] = []
    valid: list[Example] = []
    test: list[Example] = []
    short_users = short_interactions = 0
    for user, seq in sequences.items():
        if len(seq) < MIN_SPLIT_LENGTH:
            short_users += 1
            short_interactions += len(seq)
            continue
        rated = any(x.rating is not None for x in seq)
        n_train = len(seq) - 2
        train.extend(_example(user, seq, i, history_cut, rated) for i in range(1, n_train))
        valid.append(_example(user, seq, n_train, history_cut, rated))
        test.append(_example(user, seq, n_train + 1, history_cut, rated))
    return Splits(train, valid, test, short_users, short_interactions)


def _example(user: str, seq: list[Interaction], position: int, history_cut: int, rated: bool) -> Example:
    """The example predicting `seq[position]` from the events before it (ratings kept when `rated`)."""
    before = seq[:position]
    return Example(user_id=user, history=truncate([x.item_id for x in before], history_cut),
                   target=seq[position].item_id, timestamp=seq[position].timestamp,
                   rating=seq[position].rating,
                   history_ratings=truncate([x.rating for x in before], history_cut) if rated else None)


def train_items(train: Iterable[Example]) -> set[str]:
    """Every item that occurs in a train example, as history or as target."""
    seen: set[str] = set()
    for ex in train:
        seen.update(ex.history)
        seen.add(ex.target)
    return seen


def cold_items(items: Iterable[str], train: Iterable[Example]) -> list[str]:
    """The items (of `items`, in order) that no train example holds: the candidates of a cold-start ranking."""
    warm = train_items(train)
    return [item for item in items if item not in warm]


def mark_cold(examples: Iterable[Example], warm: set[str]) -> int:
    """Set `cold` on each example (its target is not in `warm`); return how many are cold."""
    cold = 0
    for ex in examples:
        ex.cold = ex.target not in warm
        cold += ex.cold
    return cold


def hold_out_items(train: list[Example], item_ids: Iterable[str], fraction: float,
                   seed: int) -> tuple[list[Example], set[str], int]:
    """Remove a random `fraction` of the items from training: a cold-start split.

    Returns `(train, held_out, dropped_examples)`: train examples whose target is held out are dropped,
    and held-out items are cut out of the remaining train histories (an example left with an empty
    history is dropped too), so no held-out item occurs anywhere in train and `mark_cold` labels every
    valid/test example that targets one as cold. The draw is over the sorted item ids, so it depends
    only on the catalog and the seed.
    """
    import random

    ids = sorted(set(item_ids))
    count = round(len(ids) * fraction)
    held_out = set(random.Random(seed).sample(ids, count)) if count else set()
    if not held_out:
        return train, held_out, 0
    kept: list[Example] = []
    for ex in train:
        if ex.target in held_out:
            continue
        keep = [item not in held_out for item in ex.history]
        if not any(keep):
            continue
        ex.history = [item for item, k in zip(ex.history, keep, strict=True) if k]
        if ex.history_ratings is not None:
            ex.history_ratings = [r for r, k in zip(ex.history_ratings, keep, strict=True) if k]
        kept.append(ex)
    return kept, held_out, len(train) - len(kept)
