"""Re-ranking baselines: any ranker's top N re-ordered for novelty, the long tail, diversity or item ratings.

The cheap alternative to training for a beyond-accuracy objective is to ask the trained model for more
candidates than it will show and re-order them. Any claim that GRPO with a novelty or diversity reward is
worth its cost has to beat this, so the re-rankers wrap any `Ranker` (SID model, SASRec) and rank through
the same protocol:

- `novelty` / `tail` (`bonus_reorder`): re-scores the base's top `top_n` by `score + weight * bonus(item)`, the
  bonus in [0, 1]: the scaled self-information of the item's train popularity, or 1 outside the head;
- `rating` (`bonus_reorder` too): the item's train mean rating shrunk towards the global mean
  (`rlrec.data.feedback.item_mean_ratings`), min-max scaled to [0, 1] over the rated items; an item nobody
  rated in train gets the global mean. What a serving-time re-ranker can know of ratings (the same for every
  user): the baseline a rating reward or rating DPO pairs have to beat;
- `mmr` (`mmr_reorder`): maximal marginal relevance (Carbonell & Goldstein 1998). The base scores are min-max
  scaled to [0, 1] within the user's top N; items are then picked greedily by
  `(1 - weight) * relevance - weight * max cos(item, picked)`, in an item space shared by every model
  compared (the SID index's text embeddings), so `weight` 0 is the base ranking and 1 ignores relevance.

A `Reranker` is a base ranker and a re-ordering; `reorderer(objective, weight, ...)` is the re-ordering alone,
for a study that sweeps `weight`: it ranks the base once and re-orders its lists many times. History exclusion
and the candidate pool are the base's: they hold in its top N, so they hold in any re-ordering of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from rlrec.data.popularity import DEFAULT_HEAD_FRACTION, SelfInformation, head_items
from rlrec.ranking.base import Ranked, Ranker
from rlrec.sid.embeddings import l2_normalize
from rlrec.utils.errors import ConfigError

OBJECTIVES = ("novelty", "tail", "mmr", "rating")
DEFAULT_TOP_N = 50


Reorder = Callable[[Ranked], Ranked]  # a list ranked best first -> the same items re-ordered, with new scores


class Reranker(Ranker):
    """A ranker that asks `base` for its top `top_n` and re-orders them with `reorder` (`make_reranker`)."""

    def __init__(self, base: Ranker, reorder: Reorder, top_n: int = DEFAULT_TOP_N) -> None:
        if isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1:
            raise ConfigError(f"top_n={top_n!r}; expected a positive integer")
        self.base = base
        self.reorder = reorder
        self.top_n = top_n
        self.item_ids = base.item_ids
        self.model = base.model

    @property
    def device(self):
        return self.base.device

    def knows(self, item_id: str) -> bool:
        return self.base.knows(item_id)

    def identifier(self, item_id: str) -> str:
        return self.base.identifier(item_id)

    def _rank(self, histories: list[list[str]], k: int, exclude_history: bool,
              pool: frozenset[str] | None) -> list[Ranked]:
        # k above top_n widens the candidates to k: a re-ranker shows what it re-ordered, never less
        ranked = self.base.rank(histories, max(k, self.top_n), exclude_history=exclude_history, pool=pool)
        return [self.reorder(row)[:k] for row in ranked]


def _check_weight(weight: float, upper: float | None = None) -> float:
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not np.isfinite(weight) or weight < 0 \
            or (upper is not None and weight > upper):
        bound = f"in [0, {upper:g}]" if upper is not None else "finite and >= 0"
        raise ConfigError(f"re-ranking weight={weight!r}; expected a number {bound}")
    return float(weight)


def bonus_reorder(bonus: Callable[[str], float], weight: float) -> Reorder:
    """`score + weight * bonus(item)`, best first (ties keep the base's order)."""
    weight = _check_weight(weight)

    def reorder(ranked: Ranked) -> Ranked:
        rescored = [(item, score + weight * bonus(item)) for item, score in ranked]
        order = sorted(range(len(rescored)), key=lambda i: (-rescored[i][1], i))
        return [rescored[i] for i in order]

    return reorder


def mmr_reorder(vectors: np.ndarray, vector_rows: Mapping[str, int], weight: float) -> Reorder:
    """Maximal marginal relevance (module docstring), `weight` in [0, 1]; the score is `len - position`."""
    weight = _check_weight(weight, upper=1.0)
    unit = l2_normalize(vectors)
    rows_of = dict(vector_rows)

    def reorder(ranked: Ranked) -> Ranked:
        ranked = list(ranked)
        if len(ranked) < 2:
            return ranked
        scores = np.array([score for _, score in ranked], dtype=np.float64)
        spread = scores.max() - scores.min()
        relevance = (scores - scores.min()) / spread if spread > 0 else np.ones_like(scores)
        rows = [rows_of.get(item) for item, _ in ranked]
        known = np.array([r is not None for r in rows])
        vecs = np.zeros((len(ranked), unit.shape[1]), dtype=np.float32)
        vecs[known] = unit[[r for r in rows if r is not None]]
        sims = vecs @ vecs.T  # an item without a vector is similar to nothing
        closest = np.full(len(ranked), -np.inf)
        left = list(range(len(ranked)))
        out: Ranked = []
        for position in range(len(ranked)):
            redundancy = np.where(np.isfinite(closest[left]), closest[left], 0.0)
            value = (1 - weight) * relevance[left] - weight * redundancy
            pick = left.pop(int(np.argmax(value)))  # first among equals: the base's order
            out.append((ranked[pick][0], float(len(ranked) - position)))  # best first, as the protocol asks
            closest = np.maximum(closest, sims[pick])
        return out

    return reorder


def rating_bonus(mean_ratings: Mapping[str, float]) -> Callable[[str], float]:
    """Shrunk mean ratings min-max scaled to [0, 1]; an unrated item gets the scaled mean of the rated ones."""
    if not mean_ratings:
        raise ConfigError("re-ranking objective 'rating' needs item ratings: the dataset has none (its manifest.json "
                          "has no `ratings`)")
    low, high = min(mean_ratings.values()), max(mean_ratings.values())
    spread = high - low
    scaled = {item: (value - low) / spread if spread > 0 else 0.5 for item, value in mean_ratings.items()}
    default = sum(scaled.values()) / len(scaled)
    return lambda item: scaled.get(item, default)


def objective_bonus(objective: str, popularity: Mapping[str, int], head_fraction: float = DEFAULT_HEAD_FRACTION,
                    mean_ratings: Mapping[str, float] | None = None) -> Callable[[str], float]:
    """The [0, 1] bonus of `novelty` (scaled self-information), `tail` (1 outside the head) or `rating`."""
    if objective == "rating":
        return rating_bonus(mean_ratings or {})
    if objective == "novelty":
        return SelfInformation(popularity).scaled
    if objective == "tail":
        head = head_items(popularity, head_fraction)
        return lambda item: 0.0 if item in head else 1.0
    raise ConfigError(f"re-ranking objective {objective!r}; expected novelty, tail or rating (or mmr, with item "
                      "vectors)")


def reorderer(objective: str, weight: float, *, popularity: Mapping[str, int],
              head_fraction: float = DEFAULT_HEAD_FRACTION,
              vectors: np.ndarray | None = None, vector_rows: Mapping[str, int] | None = None,
              mean_ratings: Mapping[str, float] | None = None) -> Reorder:
    """The re-ordering of `objective` (`novelty`, `tail`, `mmr`, `rating`) at `weight`."""
    if objective == "mmr":
        if vectors is None or vector_rows is None:
            raise ConfigError("re-ranking objective 'mmr' needs item vectors (the SID index's item_embeddings.npy)")
        return mmr_reorder(vectors, vector_rows, weight)
    return bonus_reorder(objective_bonus(objective, popularity, head_fraction, mean_ratings), weight)


def make_reranker(base: Ranker, objective: str, weight: float, *, popularity: Mapping[str, int],
                  head_fraction: float = DEFAULT_HEAD_FRACTION, vectors: np.ndarray | None = None,
                  vector_rows: Mapping[str, int] | None = None, top_n: int = DEFAULT_TOP_N,
                  mean_ratings: Mapping[str, float] | None = None) -> Reranker:
    """The re-ranker of `objective` (`novelty`, `tail`, `mmr`, `rating`) around `base`."""
    return Reranker(base, reorderer(objective, weight, popularity=popularity, head_fraction=head_fraction,
                                    vectors=vectors, vector_rows=vector_rows, mean_ratings=mean_ratings), top_n)


def parse_rerank(entry: str) -> tuple[str, float]:
    """`OBJECTIVE=WEIGHT` (e.g. `novelty=0.3`, `mmr=0.2`) as (objective, weight)."""
    objective, sep, value = str(entry).partition("=")
    objective = objective.strip()
    try:
        weight = float(value)
    except ValueError:
        weight = None
    if not sep or objective not in OBJECTIVES or weight is None:
        raise ConfigError(f"rerank: expected OBJECTIVE=WEIGHT with OBJECTIVE one of {', '.join(OBJECTIVES)} and a "
                          f"weight >= 0 (e.g. novelty=0.3), got {entry!r}")
    try:
        return objective, _check_weight(weight, upper=1.0 if objective == "mmr" else None)
    except ConfigError as err:
        raise ConfigError(f"rerank: {entry!r}: {err}") from None
