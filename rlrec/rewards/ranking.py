"""`ranking`: MiniOneRec's ranking-aware reward - a wrong item costs more the higher the policy ranked it.

MiniOneRec (`rl.py`, `ndcg_rule_reward`) scores each group of G candidates of one prompt, in beam order. With the
NDCG discount `d(r) = 1 / log2(r + 2)` of 0-based rank `r` and its sum over the group `S = Σ_{r<G} d(r)`:

    candidate is the target                      →  correct_reward         (MiniOneRec: 0.0)
    candidate is another item, group has a hit   →  -d(r) / S
    group holds no target (require_hit=True)     →  0.0 for every candidate

so the penalties of a group sum to at most -1, and the top-ranked wrong item gets the largest one. MiniOneRec's
`reward_type: ranking` adds its rule reward (1 for the target) to this: list `exact_match` and `ranking`
together to reproduce it, or set `correct_reward: 1.0` to have `ranking` alone reward the hit. Without a hit in
the group it gives no signal: every candidate missed alike, and exact match already scores them 0.

`r` is the rollout's `beam_rank` when given (constrained beam search, best first); otherwise (sampling, or no
rank) the candidate's position in its group, which is MiniOneRec's `i % num_generations`. Groups are consecutive
runs of `num_generations` completions, as GRPOTrainer lays them out; `num_generations` comes from the params, the
context, or, failing both, from the batch (the count of `beam_rank == 0`, else the runs of repeated prompts).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from numbers import Integral
from typing import Any

from rlrec.rewards.context import RewardContext, RewardFunc, column, reward_factory
from rlrec.rewards.exact import match_target
from rlrec.tasks.reward_batch import BEAM_RANK
from rlrec.utils.errors import ConfigError


def discount(rank: int) -> float:
    """The NDCG discount of 0-based rank `rank`."""
    return 1.0 / math.log2(rank + 2)


def infer_group_size(n: int, ranks: Sequence[Any] | None, prompts: Sequence[Any] | None) -> int:
    """Completions per prompt, read from the batch when no config says it.

    Beam search gives every group one candidate of rank 0; otherwise GRPOTrainer repeats each prompt
    `num_generations` times in a row, so the group size is the gcd of the lengths of runs of equal prompts
    (equal neighbouring prompts merge two runs, the gcd still finds it). With neither, the batch is one group.
    """
    if ranks is not None and all(isinstance(r, Integral) for r in ranks):
        groups = sum(1 for r in ranks if r == 0)
        if groups and n % groups == 0:
            return n // groups
    if prompts is not None and len(prompts) == n and n:
        size, run = 0, 1
        for prev, cur in zip(prompts, prompts[1:], strict=False):
            if cur == prev:
                run += 1
            else:
                size, run = math.gcd(size, run), 1
        return math.gcd(size, run)
    return max(n, 1)


def scored_groups(name: str, group: int | None, completions: list[Any], prompts: list[Any] | None,
                  kwargs: dict[str, Any], context: RewardContext) -> list[tuple[list[bool | None], list[int]]]:
    """Each group's target matches (None: not an item) and 0-based ranks, in batch order (module docstring)."""
    n = len(completions)
    size = whole_groups(name, group, n, prompts, kwargs)
    hits = match_target(completions, kwargs, context)
    all_ranks = candidate_ranks(kwargs, n, size)
    return [(hits[start: start + size], all_ranks[start: start + size]) for start in range(0, n, size)]


def whole_groups(name: str, group: int | None, n: int, prompts: list[Any] | None, kwargs: dict[str, Any]) -> int:
    """The group size of a batch of `n` completions (`group`, else read from the batch); a ConfigError unless the
    batch holds whole groups, which a reward that scores a group together needs."""
    size = group or infer_group_size(n, column(kwargs, BEAM_RANK, n), prompts)
    if n % size:
        raise ConfigError(
            f"reward '{name}': {n} completions do not split into groups of {size} (num_generations); "
            "each process must score whole groups"
        )
    return size


def candidate_ranks(kwargs: dict[str, Any], n: int, size: int) -> list[int]:
    """Each completion's 0-based rank in its group: the rollout's `beam_rank` where it is a rank, else the
    completion's position in its group of `size` (MiniOneRec's `i % num_generations`)."""
    given = column(kwargs, BEAM_RANK, n)
    out = []
    for i in range(n):
        rank = given[i] if given is not None else None
        ok = isinstance(rank, Integral) and not isinstance(rank, bool) and rank >= 0
        out.append(int(rank) if ok else i % size)
    return out


def group_size(name: str, num_generations: int | None, context: RewardContext) -> int | None:
    group = num_generations if num_generations is not None else context.num_generations
    if group is not None and (not isinstance(group, int) or group < 1):
        raise ConfigError(f"reward '{name}': num_generations must be a positive integer, got {group!r}")
    return group


@reward_factory
def ranking(
    context: RewardContext,
    correct_reward: float = 0.0,
    require_hit: bool = True,
    num_generations: int | None = None,
) -> RewardFunc:
    """MiniOneRec's ranking reward (formula in the module docstring); None (→ penalty) for a non-item."""
    group = group_size("ranking", num_generations, context)
    correct_reward = float(correct_reward)

    def ranking(completions: list[Any], prompts: list[Any] | None = None, **kwargs: Any) -> list[float | None]:
        rewards: list[float | None] = []
        for hits, ranks in scored_groups("ranking", group, completions, prompts, kwargs, context):
            total = sum(discount(r) for r in range(len(hits)))
            has_hit = any(h is True for h in hits)
            for hit, rank in zip(hits, ranks, strict=True):
                if hit is None:
                    rewards.append(None)
                elif hit:
                    rewards.append(correct_reward)
                elif has_hit or not require_hit:
                    rewards.append(-discount(rank) / total)
                else:
                    rewards.append(0.0)
        return rewards

    ranking.scores_groups = True  # type: ignore[attr-defined]  # checked() must not split its groups
    return ranking


@reward_factory
def ndcg_lambda(context: RewardContext, num_generations: int | None = None) -> RewardFunc:
    """A listwise reward: each candidate's share of the NDCG the group loses by not ranking the target first.

    With the target at rank t, every wrong candidate ranked above it costs `-(d(r) - d(t))`, what swapping
    it with the target would gain (LambdaRank's |ΔNDCG|), and the target gets the sum of those swaps; items
    ranked below the target, and every candidate of a group whose target is first or absent, get 0. Unlike
    `ranking`, it never pushes down the items under the target, and a group already ranked right carries no
    gradient, so GRPO spends its step only on the orderings that cost NDCG. Needs the target in the group to
    say anything (`rollout_add_target`, or beams that hit).
    """
    group = group_size("ndcg_lambda", num_generations, context)

    def ndcg_lambda(completions: list[Any], prompts: list[Any] | None = None, **kwargs: Any) -> list[float | None]:
        rewards: list[float | None] = []
        for hits, ranks in scored_groups("ndcg_lambda", group, completions, prompts, kwargs, context):
            target = min((rank for hit, rank in zip(hits, ranks, strict=True) if hit is True), default=None)
            lambdas = [discount(rank) - discount(target) if target is not None and hit is False and rank < target
                       else 0.0 for hit, rank in zip(hits, ranks, strict=True)]
            gained = sum(lambdas)
            rewards.extend(None if hit is None else gained if hit else -lam
                           for hit, lam in zip(hits, lambdas, strict=True))
        return rewards

    ndcg_lambda.scores_groups = True  # type: ignore[attr-defined]
    return ndcg_lambda
