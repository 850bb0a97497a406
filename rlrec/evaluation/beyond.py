"""Beyond-accuracy metrics of ranked lists: what a recommender shows, not only whether it hits the target.

HR and NDCG reward a model for finding the one held-out item; a model that learns to recommend the most
watched movies to everyone can score well and still be a poor recommender. These metrics describe the
lists themselves, at each cut-off K, so a model steered towards novelty or diversity (GRPO with such a
reward, or a re-ranked list) shows what it bought and what it cost:

- `coverage@K`: distinct items recommended in any user's top K, as a share of the catalog (one number for
  the whole split: it has no per-user value and no paired interval);
- `tail_share@K`: the share of a user's top K outside the head (the most popular `head_fraction` of train
  items, the evaluation's head/tail split);
- `novelty@K`: the mean self-information of a user's top K, `-log2` of each item's share of the train
  interactions, in bits (`rlrec.data.popularity.SelfInformation`);
- `diversity@K`: intra-list diversity, the mean pairwise cosine distance `1 - cos` between a user's top K
  in one item space shared by every model compared (the SID index's item text embeddings, which
  `rlrec sid` keeps beside `index.json`); absent when no such space is given;
- `popularity@K`: the mean train interaction count of a user's top K (average recommendation popularity).

Per-user metrics are averaged over users; a padding slot counts towards K but holds no item, and a user
with too few items for a metric (fewer than two embedded items for diversity) is left out of that metric's
average. The per-user values at one K feed the paired bootstrap, as NDCG does.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from rlrec.data.popularity import DEFAULT_HEAD_FRACTION, SelfInformation, head_items
from rlrec.evaluation.metrics import check_k_values, is_padding
from rlrec.sid.embeddings import l2_normalize

PER_USER_METRICS = ("tail_share", "novelty", "diversity", "popularity")
BEYOND_METRICS = ("coverage", *PER_USER_METRICS)


@dataclass
class ItemSpace:
    """What the beyond-accuracy metrics read about items: train popularity, the head, the catalog size and
    (optionally) unit-norm item vectors for diversity."""

    popularity: Mapping[str, int]
    catalog_size: int
    head: set[str] | None = None
    vectors: np.ndarray | None = None  # (n, d), unit-norm rows
    vector_rows: dict[str, int] = field(default_factory=dict)
    vector_source: str | None = None  # what the vectors are, for the report

    def __post_init__(self) -> None:
        if self.catalog_size < 1:
            raise ValueError(f"catalog_size={self.catalog_size}; expected a positive number of items")
        self.information = SelfInformation(self.popularity)

    @classmethod
    def build(cls, popularity: Mapping[str, int], catalog_size: int,
              head_fraction: float | None = DEFAULT_HEAD_FRACTION,
              vectors: np.ndarray | None = None, vector_ids: Sequence[str] | None = None,
              vector_source: str | None = None) -> ItemSpace:
        """The space of one split's evaluation; `vectors[i]` is the vector of `vector_ids[i]` (normalised here)."""
        head = head_items(popularity, head_fraction) if head_fraction is not None else None
        rows: dict[str, int] = {}
        unit = None
        if vectors is not None:
            if vector_ids is None or len(vector_ids) != len(vectors):
                raise ValueError("item vectors need one id per row (vector_ids)")
            unit = l2_normalize(vectors)
            rows = {str(item): row for row, item in enumerate(vector_ids)}
        return cls(popularity, catalog_size, head, unit, rows, vector_source)

    def list_values(self, items: Sequence[str]) -> dict[str, float]:
        """The per-user metrics of one list (already cut to K, padding removed); NaN where undefined."""
        if not items:
            return dict.fromkeys(PER_USER_METRICS, float("nan"))
        out = {
            "tail_share": (float(np.mean([item not in self.head for item in items]))
                           if self.head is not None else float("nan")),
            "novelty": float(np.mean([self.information.bits(item) for item in items])),
            "popularity": float(np.mean([self.popularity.get(item, 0) for item in items])),
            "diversity": float("nan"),
        }
        if self.vectors is not None:
            rows = [self.vector_rows[item] for item in items if item in self.vector_rows]
            if len(rows) >= 2:
                v = self.vectors[rows]
                sims = v @ v.T
                n = len(rows)
                out["diversity"] = float(1.0 - (sims.sum() - np.trace(sims)) / (n * (n - 1)))
        return out


class BeyondAccuracyAccumulator:
    """Collects ranked lists batch by batch; `compute()` gives `{"coverage@K": .., "tail_share@K": .., ...}`.

    Keeps one float per user, metric and K (and the set of recommended items per K for coverage).
    """

    def __init__(self, space: ItemSpace, k_values: Sequence[int]) -> None:
        self.space = space
        self.k_values = check_k_values(k_values)
        self._values: dict[int, dict[str, list[float]]] = {
            k: {m: [] for m in PER_USER_METRICS} for k in self.k_values}
        self._covered: dict[int, set[str]] = {k: set() for k in self.k_values}

    def __len__(self) -> int:
        return len(self._values[self.k_values[0]]["novelty"])

    def add(self, ranked_lists: Sequence[Sequence[Hashable]]) -> None:
        for ranked in ranked_lists:
            ranked = list(ranked)
            for k in self.k_values:
                top = [str(item) for item in ranked[:k] if not is_padding(item)]  # padding spends its slot
                self._covered[k].update(top)
                for name, value in self.space.list_values(top).items():
                    self._values[k][name].append(value)

    def metrics(self) -> list[str]:
        """The per-user metrics this space defines: diversity needs item vectors, tail share a head."""
        undefined = {"diversity"} if self.space.vectors is None else set()
        if self.space.head is None:
            undefined.add("tail_share")
        return [name for name in PER_USER_METRICS if name not in undefined]

    def per_user(self, k: int) -> dict[str, list[float]]:
        """Each user's value of every per-user metric at `k` (NaN where undefined), in the order added."""
        return {name: list(values) for name, values in self._values[k].items()}

    def compute(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for k in self.k_values:
            out[f"coverage@{k}"] = len(self._covered[k]) / self.space.catalog_size
            for name in self.metrics():
                array = np.asarray(self._values[k][name], dtype=np.float64)
                defined = array[~np.isnan(array)]
                out[f"{name}@{k}"] = float(defined.mean()) if len(defined) else float("nan")
        return out
