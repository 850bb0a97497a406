"""What a user thought of an item: ratings, and the one liked / neutral / disliked rule every stage shares.

Next-item data says only that a user met an item; the rating says whether they liked it. `rlrec prepare`
keeps each example's target rating and its history's ratings where the source has them (MovieLens stars,
Amazon review stars), and records in the manifest the rating scale, the counts per rating and the
thresholds below. Evaluation's liked / disliked groups, the `rating` reward, disliked-negative DPO pairs
and the liked-only baselines all read `FeedbackRule.from_manifest`, so "liked" means one thing everywhere.

A rating at or above `liked_threshold` is liked, at or below `disliked_threshold` disliked, anything
between neutral; an example without a rating is unrated (never guessed).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rlrec.utils.errors import ConfigError

DEFAULT_LIKED_THRESHOLD = 4.0  # on a 1-5 star scale: 4 and 5 are liked (PNFRec's rule)
DEFAULT_DISLIKED_THRESHOLD = 2.0  # 1 and 2 are disliked, 3 is neutral
FEEDBACK_LABELS = ("liked", "neutral", "disliked")


@dataclass(frozen=True)
class FeedbackRule:
    """The thresholds that turn a rating into liked / neutral / disliked."""

    liked_threshold: float = DEFAULT_LIKED_THRESHOLD
    disliked_threshold: float = DEFAULT_DISLIKED_THRESHOLD

    def __post_init__(self) -> None:
        if not self.disliked_threshold < self.liked_threshold:
            raise ConfigError(f"disliked_threshold ({self.disliked_threshold:g}) must be below liked_threshold "
                              f"({self.liked_threshold:g}): a rating cannot be both liked and disliked")

    def label(self, rating: float | None) -> str | None:
        """`"liked"`, `"neutral"`, `"disliked"`, or None for an unrated example."""
        if rating is None:
            return None
        if rating >= self.liked_threshold:
            return "liked"
        if rating <= self.disliked_threshold:
            return "disliked"
        return "neutral"

    def to_json(self) -> dict[str, float]:
        return {"liked_threshold": self.liked_threshold, "disliked_threshold": self.disliked_threshold}

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any]) -> FeedbackRule | None:
        """The rule a prepared dataset was labelled with; None when its source had no ratings.

        A folder prepared before ratings were kept has no `ratings` entry and gives None, so every
        feedback feature is simply off for it.
        """
        ratings = manifest.get("ratings")
        if not ratings:
            return None
        return cls(float(ratings.get("liked_threshold", DEFAULT_LIKED_THRESHOLD)),
                   float(ratings.get("disliked_threshold", DEFAULT_DISLIKED_THRESHOLD)))


def rating_key(rating: float) -> str:
    """A rating as a manifest key: `4` for 4.0, `3.5` for 3.5."""
    return f"{rating:g}"


def rating_summary(rule: FeedbackRule, splits: Mapping[str, Sequence[Any]]) -> dict[str, Any] | None:
    """The manifest's `ratings` entry: scale seen, counts per rating (every rated interaction once) and the
    liked / neutral / disliked / unrated count of each split's targets; None when nothing is rated.

    Interactions are counted from the train targets plus each user's first train history item, and the
    valid and test targets: each event once, however many train windows repeat it.
    """
    counts: Counter[float] = Counter()
    first_seen: set[str] = set()
    targets: dict[str, dict[str, int]] = {}
    for name, examples in splits.items():
        by_label: Counter[str] = Counter()
        for ex in examples:
            by_label[rule.label(ex.rating) or "unrated"] += 1
            if ex.rating is not None:
                counts[ex.rating] += 1
            if name == "train" and ex.user_id not in first_seen:
                first_seen.add(ex.user_id)
                counts.update(r for r in (ex.history_ratings or ())[:1] if r is not None)
        targets[name] = {label: by_label[label] for label in (*FEEDBACK_LABELS, "unrated")}
    if not counts:
        return None
    return {**rule.to_json(), "scale": [min(counts), max(counts)],
            "counts": {rating_key(r): counts[r] for r in sorted(counts)}, "targets": targets}


def user_item_ratings(examples: Iterable[Any]) -> dict[str, dict[str, float]]:
    """`{user: {item: rating}}` from examples' targets and histories (a later rating of an item wins)."""
    out: dict[str, dict[str, float]] = {}
    for ex in examples:
        mine = out.setdefault(ex.user_id, {})
        for item, rating in zip(ex.history, ex.history_ratings or (), strict=False):
            if rating is not None:
                mine.setdefault(item, rating)
        if ex.rating is not None:
            mine[ex.target] = ex.rating
    return out


@dataclass
class UserRatings:
    """Each user's train events in time order with their ratings: how a user rated an item at or after a prompt.

    A train prompt is the user's history up to one event and that event's item (its target). `rated_from`
    returns the ratings of the target and of the user's next `window` train events: the `rating` reward's
    lookup. Train ends before the valid target, so the window never reaches past the valid cutoff. A user who
    met the same item twice is looked up at its first event.
    """

    rule: FeedbackRule
    sequences: dict[str, list[tuple[str, float | None]]]
    positions: dict[tuple[str, str], int]

    @classmethod
    def from_train(cls, train: Iterable[Any], rule: FeedbackRule) -> UserRatings:
        events: dict[str, list[tuple[int, int, str, float | None]]] = {}
        for order, ex in enumerate(train):
            events.setdefault(ex.user_id, []).append((ex.timestamp, order, ex.target, ex.rating))
        sequences = {user: [(item, rating) for _, _, item, rating in sorted(rows)] for user, rows in events.items()}
        positions: dict[tuple[str, str], int] = {}
        for user, seq in sequences.items():
            for position, (item, _) in enumerate(seq):
                positions.setdefault((user, item), position)
        return cls(rule, sequences, positions)

    def rated_from(self, user_id: str, target: str, window: int = 0) -> dict[str, float]:
        """`{item: rating}` of the target event and the next `window` events (rated ones only; {} if unknown)."""
        position = self.positions.get((user_id, target))
        if position is None:
            return {}
        out: dict[str, float] = {}
        for item, rating in self.sequences[user_id][position: position + window + 1]:
            if rating is not None:
                out.setdefault(item, rating)
        return out

    def nearest(self, user_id: str, target: str, label: str, count: int) -> list[str]:
        """Up to `count` items of the user's train events labelled `label` (liked / neutral / disliked), nearest in
        time to the target's event first (earlier before later at equal distance); the target never."""
        position = self.positions.get((user_id, target))
        if position is None or count < 1:
            return []
        candidates = [(abs(p - position), p, item) for p, (item, rating) in enumerate(self.sequences[user_id])
                      if item != target and self.rule.label(rating) == label]
        out: list[str] = []
        for _, _, item in sorted(candidates):
            if item not in out:
                out.append(item)
            if len(out) == count:
                break
        return out


DEFAULT_RATING_SHRINKAGE = 10.0  # pseudo-ratings at the global mean: an item rated twice says little


def item_mean_ratings(train: Iterable[Any], shrinkage: float = DEFAULT_RATING_SHRINKAGE) -> dict[str, float]:
    """Each item's train mean rating shrunk towards the global mean: `(sum + m * global) / (count + m)`.

    The item-level rating signal a serving-time re-ranker can know (it is the same for every user). Counted over
    the train targets and each user's first train history event, each rated event once, as the manifest counts.
    """
    if shrinkage < 0:
        raise ConfigError(f"rating shrinkage={shrinkage!r}; expected a number >= 0")
    sums: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    seen_users: set[str] = set()
    for ex in train:
        events = [(ex.target, ex.rating)]
        if ex.user_id not in seen_users:
            seen_users.add(ex.user_id)
            events += list(zip(ex.history[:1], (ex.history_ratings or [None])[:1], strict=False))
        for item, rating in events:
            if rating is not None:
                sums[item] += rating
                counts[item] += 1
    total = sum(counts.values())
    if not total:
        return {}
    overall = sum(sums.values()) / total
    return {item: (sums[item] + shrinkage * overall) / (counts[item] + shrinkage) for item in counts}
