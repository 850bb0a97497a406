"""Rewards for what next-item SFT never sees: novelty, the long tail, diversity within a recommended list.

A reward built from the next-item target re-weights what SFT already learned; these say something the SFT
data does not, so GRPO can move a model along a trade-off instead of around its start:

- `novelty`: the candidate's self-information, `-log2` of its share of the train interactions, divided by
  its largest possible value (an item seen once), so it lies in [0, 1] (`rlrec.data.popularity`);
- `long_tail`: 1 for a candidate outside the head (the most popular `head_fraction` of train items, the
  evaluation's head/tail split), 0 for a head item;
- `diversity`: group-aware. A beam group is the policy's own ranked list for a prompt; a candidate earns
  `1 - max(0, cos)` against its most similar higher-ranked sibling (item text embeddings, the space the
  evaluation's `diversity@K` uses), so the best-ranked candidate earns 1 and one that repeats what is
  already above it earns little: GRPO moves the dissimilar candidates up the list.

Each is a bonus to add beside `exact_match` and `ranking` with a weight. Ungated, a popularity bonus pays
for any obscure item whatever the user wants, and the public reports of popularity penalties in RL
describe lists collapsing to junk. `within_rank: N` gates the bonus on relevance: only candidates the
policy itself ranks among the group's top N (beam ranks 0..N-1) earn it, the rest get 0, so the reward
reorders what the model already finds plausible instead of paying for the bottom of the beam.
`target_only: true` gates on relevance itself: only the target earns the bonus when the group holds it, so a
hit on a tail item is worth more than a hit on the head (docs/steering.md measures both gates).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rlrec.data.popularity import DEFAULT_HEAD_FRACTION, SelfInformation, head_items
from rlrec.rewards.context import RewardContext, RewardFunc, candidate_items, column, reward_factory
from rlrec.rewards.exact import match_target
from rlrec.rewards.ranking import candidate_ranks, group_size, infer_group_size, whole_groups
from rlrec.tasks.reward_batch import BEAM_RANK
from rlrec.utils.errors import ConfigError


def _check_within_rank(name: str, within_rank: int | None) -> int | None:
    if within_rank is not None and (isinstance(within_rank, bool) or not isinstance(within_rank, int)
                                    or within_rank < 1):
        raise ConfigError(f"reward '{name}': within_rank must be a positive integer or null, got {within_rank!r}")
    return within_rank


def _gated(name: str, item_value: Callable[[str], float], within_rank: int | None, target_only: bool,
           context: RewardContext) -> RewardFunc:
    """A per-item bonus, paid only to candidates ranked within the group's top `within_rank` (when set), or only
    to the candidate that is the target (`target_only`)."""
    if not isinstance(target_only, bool):
        raise ConfigError(f"reward {name!r}: target_only must be true or false, got {target_only!r}")

    def reward(completions: list[Any], prompts: list[Any] | None = None, **kwargs: Any) -> list[float | None]:
        n = len(completions)
        items = candidate_items(completions, kwargs, context.index)
        keep = [True] * n
        if within_rank is not None:
            size = context.num_generations or infer_group_size(n, column(kwargs, BEAM_RANK, n), prompts)
            keep = [rank < within_rank for rank in candidate_ranks(kwargs, n, size)]
        if target_only:
            keep = [k and hit is True for k, hit in zip(keep, match_target(completions, kwargs, context), strict=True)]
        return [None if item is None else item_value(item) if keep[i] else 0.0 for i, item in enumerate(items)]

    reward.__name__ = name
    return reward


@reward_factory
def novelty(context: RewardContext, within_rank: int | None = None, target_only: bool = False) -> RewardFunc:
    """The candidate's scaled self-information in [0, 1] (module docstring); 0 outside `within_rank`, or for any
    candidate but the target with `target_only`."""
    information = SelfInformation(context.require_popularity("novelty"))
    return _gated("novelty", information.scaled, _check_within_rank("novelty", within_rank), target_only, context)


@reward_factory
def long_tail(context: RewardContext, head_fraction: float = DEFAULT_HEAD_FRACTION, within_rank: int | None = None,
              target_only: bool = False) -> RewardFunc:
    """1 for a candidate outside the train head, 0 for a head item; 0 outside `within_rank`, or for any candidate
    but the target with `target_only`."""
    if isinstance(head_fraction, bool) or not isinstance(head_fraction, (int, float)) \
            or not 0.0 < head_fraction < 1.0:
        raise ConfigError(f"reward 'long_tail': head_fraction must be a number in (0, 1), got {head_fraction!r}")
    head = head_items(context.require_popularity("long_tail"), head_fraction)
    return _gated("long_tail", lambda item: 0.0 if item in head else 1.0,
                  _check_within_rank("long_tail", within_rank), target_only, context)


@reward_factory
def diversity(context: RewardContext, within_rank: int | None = None,
              num_generations: int | None = None) -> RewardFunc:
    """`1 - max(0, cos)` to the most similar higher-ranked candidate of the group (module docstring)."""
    rows, matrix = context.embedding_table("diversity")
    within_rank = _check_within_rank("diversity", within_rank)
    group = group_size("diversity", num_generations, context)

    def diversity(completions: list[Any], prompts: list[Any] | None = None, **kwargs: Any) -> list[float | None]:
        n = len(completions)
        size = whole_groups("diversity", group, n, prompts, kwargs)
        items = candidate_items(completions, kwargs, context.index)
        ranks = candidate_ranks(kwargs, n, size)
        rewards: list[float | None] = [None] * n
        for start in range(0, n, size):
            members = sorted(range(start, start + size), key=lambda i: ranks[i])
            above: list[int] = []  # embedding rows of the better-ranked candidates seen so far
            for i in members:
                item = items[i]
                if item is None or item not in rows:
                    continue
                if within_rank is not None and ranks[i] >= within_rank:
                    rewards[i] = 0.0
                else:
                    closest = float((matrix[above] @ matrix[rows[item]]).max()) if above else 0.0
                    rewards[i] = 1.0 - max(0.0, closest)
                above.append(rows[item])
        return rewards

    diversity.scores_groups = True  # type: ignore[attr-defined]  # checked() must not split its groups
    return diversity

