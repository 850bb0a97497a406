"""HR@K and NDCG@K for single-target, leave-one-out next-item recommendation.

Each evaluated example has exactly one relevant item (its target), so the metrics depend only on
the target's 0-based position `rank` in the ranked list:

- HR@K = 1 if rank < K else 0 (did the target make the top K?);
- NDCG@K = 1 / log2(rank + 2) if rank < K else 0 (the ideal DCG of one relevant item is 1, so this
  is already normalised).

Both are averaged over examples. A ranked list is taken as given: a slot is a slot, so a list that
repeats an item or holds padding (`None` or `-1`, written by decoders that found fewer than K
candidates) spends those slots, and the target counts at its first occurrence. A list shorter than K
simply cannot hit beyond its length. This scores a generative model for what it actually emitted.

`MetricAccumulator` gathers ranks batch by batch and breaks the averages down by group labels
(`warm`/`cold`, `head`/`tail`, ...), so a whole split never has to sit in memory as ranked lists.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

DEFAULT_K_VALUES: tuple[int, ...] = (1, 3, 5, 10, 20)
# Groups listed first, in this order, in results; any other label follows alphabetically.
GROUP_ORDER: tuple[str, ...] = ("warm", "cold", "cold_pool", "head", "tail", "liked", "neutral", "disliked")

GroupLabels = str | Iterable[str] | None


def is_padding(value: Any) -> bool:
    """Padding slots (`None`, or `-1` in lists of integer item indices) never match a target."""
    return value is None or (isinstance(value, numbers.Integral) and not isinstance(value, bool) and value == -1)


def target_rank(ranked: Sequence[Hashable], target: Hashable, max_k: int | None = None) -> int | None:
    """0-based position of the first occurrence of `target` in `ranked` (first `max_k` slots), or None."""
    if hasattr(ranked, "tolist"):  # torch tensor / numpy row of item indices
        ranked = ranked.tolist()
    if hasattr(target, "item"):
        target = target.item()
    limit = len(ranked) if max_k is None else min(len(ranked), max_k)
    for position in range(limit):
        value = ranked[position]
        if not is_padding(value) and value == target:
            return position
    return None


def hit_at_k(rank: int | None, k: int) -> float:
    return 1.0 if rank is not None and rank < k else 0.0


def ndcg_at_k(rank: int | None, k: int) -> float:
    return 1.0 / math.log2(rank + 2) if rank is not None and rank < k else 0.0


def check_k_values(k_values: Iterable[int]) -> tuple[int, ...]:
    """Sorted, de-duplicated positive cut-offs; a bad one raises naming it."""
    ks = tuple(sorted({int(k) for k in k_values}))
    if not ks or ks[0] < 1:
        raise ValueError(f"k_values must be positive integers, got {list(k_values)!r}")
    return ks


def metrics_from_ranks(ranks: Sequence[int | None], k_values: Iterable[int] = DEFAULT_K_VALUES) -> dict[str, float]:
    """Mean HR@K and NDCG@K over target ranks (None = target not in the list); empty input gives 0.0."""
    ks = check_k_values(k_values)
    n = len(ranks)
    out: dict[str, float] = {}
    for k in ks:
        out[f"HR@{k}"] = sum(hit_at_k(r, k) for r in ranks) / n if n else 0.0
    for k in ks:
        out[f"NDCG@{k}"] = sum(ndcg_at_k(r, k) for r in ranks) / n if n else 0.0
    return out


def compute_metrics(ranked_lists: Sequence[Sequence[Hashable]], targets: Sequence[Hashable],
                    k_values: Iterable[int] = DEFAULT_K_VALUES) -> dict[str, float]:
    """HR@K and NDCG@K of ranked lists against their targets (one call, no grouping)."""
    acc = MetricAccumulator(k_values)
    acc.add(ranked_lists, targets)
    return acc.compute()["all"]


def _labels(groups: GroupLabels) -> tuple[str, ...]:
    if groups is None:
        return ()
    if isinstance(groups, str):
        return (groups,)
    return tuple(groups)


def order_groups(names: Iterable[str]) -> list[str]:
    """Known groups in `GROUP_ORDER`, then the others alphabetically."""
    names = set(names)
    return [g for g in GROUP_ORDER if g in names] + sorted(names - set(GROUP_ORDER))


@dataclass
class MetricAccumulator:
    """Collects target ranks batch by batch; `compute()` averages them overall and per group.

    Only ranks within the largest K are kept (one small int per example), so memory does not grow
    with the length of the ranked lists.
    """

    k_values: Iterable[int] = DEFAULT_K_VALUES
    _ranks: list[int | None] = field(default_factory=list, init=False, repr=False)
    _groups: dict[str, list[int]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.k_values = check_k_values(self.k_values)

    def __len__(self) -> int:
        return len(self._ranks)

    def add(self, ranked_lists: Sequence[Sequence[Hashable]], targets: Sequence[Hashable],
            groups: Sequence[GroupLabels] | None = None) -> list[int | None]:
        """Add a batch; `groups[i]` is a label (`"cold"`), several labels (`("cold", "tail")`) or None.

        Returns the batch's ranks (None where the target is outside the top max(K)), handy for logging.
        """
        if len(ranked_lists) != len(targets):
            raise ValueError(f"got {len(ranked_lists)} ranked lists but {len(targets)} targets")
        if groups is not None and len(groups) != len(targets):
            raise ValueError(f"got {len(groups)} group labels but {len(targets)} targets")
        max_k = self.k_values[-1]
        ranks = [target_rank(ranked, target, max_k) for ranked, target in zip(ranked_lists, targets, strict=True)]
        start = len(self._ranks)
        self._ranks.extend(ranks)
        if groups is not None:
            for offset, labels in enumerate(groups):
                for label in _labels(labels):
                    self._groups.setdefault(label, []).append(start + offset)
        return ranks

    def compute(self) -> dict[str, Any]:
        """`{"all": {"HR@1": .., "NDCG@1": ..}, "<group>": {...}, "counts": {"all": n, "<group>": n}}`."""
        result: dict[str, Any] = {"all": metrics_from_ranks(self._ranks, self.k_values)}
        counts = {"all": len(self._ranks)}
        for name in order_groups(self._groups):
            members = self._groups[name]
            result[name] = metrics_from_ranks([self._ranks[i] for i in members], self.k_values)
            counts[name] = len(members)
        result["counts"] = counts
        return result
