"""`rating`: a candidate the user rated earns that rating: liked pays, disliked costs, neutral and unrated are 0.

Every reward built from the next-item target pays for writing the item the user met next, whether they then
liked it or not; so does SFT. The rating is what neither knows: a group whose target the user rated 1 star
should push that target down, not up. The reward looks up the candidate among the user's rated train events
from the prompt's target on (`rlrec.data.feedback.UserRatings.rated_from`): the target itself and, with
`future_window: W`, the next W events, so a group that misses the target can still find an item the user
went on to rate (never past the valid cutoff: train ends before it). A rating becomes a reward through the
dataset's liked / disliked rule (`liked`, `neutral`, `disliked`: +1, 0, -1 by default) or, with `values`,
through a table of its own (`values: {5: 1.0, 4: 0.5, 3: 0.0, 2: -0.5, 1: -1.0}`; a rating it does not list
earns 0). Use it alone or beside `exact_match`, with a weight.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from rlrec.rewards.context import RewardContext, RewardFunc, candidate_items, column, reward_factory, target_items
from rlrec.tasks.reward_batch import USER_ID
from rlrec.utils.errors import ConfigError


def _finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"reward 'rating': {name} must be a finite number, got {value!r}")
    return float(value)


def _value_table(values: Mapping[Any, Any] | None) -> dict[float, float] | None:
    if values is None:
        return None
    if not isinstance(values, Mapping) or not values:
        raise ConfigError(f"reward 'rating': values must map ratings to rewards (e.g. {{5: 1.0, 1: -1.0}}), "
                          f"got {values!r}")
    table = {}
    for rating, reward in values.items():
        try:
            key = float(rating)
        except (TypeError, ValueError):
            raise ConfigError(f"reward 'rating': values has the key {rating!r}; expected a rating (a number)") \
                from None
        table[key] = _finite(f"values[{rating}]", reward)
    return table


@reward_factory
def rating(context: RewardContext, liked: float = 1.0, neutral: float = 0.0, disliked: float = -1.0,
           future_window: int = 0, values: Mapping[Any, Any] | None = None) -> RewardFunc:
    """The user's rating of each candidate as a reward; 0 for an item the user did not rate in the window."""
    ratings = context.require_user_ratings("rating")
    if isinstance(future_window, bool) or not isinstance(future_window, int) or future_window < 0:
        raise ConfigError(f"reward 'rating': future_window must be an integer >= 0, got {future_window!r}")
    by_label = {"liked": _finite("liked", liked), "neutral": _finite("neutral", neutral),
                "disliked": _finite("disliked", disliked)}
    table = _value_table(values)

    def value(score: float) -> float:
        if table is not None:
            return table.get(float(score), 0.0)
        return by_label[ratings.rule.label(score)]

    def rating(completions: list[Any], **kwargs: Any) -> list[float | None]:
        n = len(completions)
        users = column(kwargs, USER_ID, n)
        if users is None:
            raise ConfigError("reward 'rating' needs the `user_id` column (rlrec grpo's prompts carry it)")
        items = candidate_items(completions, kwargs, context.index)
        targets = target_items(n, kwargs, context.index)
        out: list[float | None] = []
        windows: dict[tuple[str, str], dict[str, float]] = {}
        for item, user, target in zip(items, users, targets, strict=True):
            if item is None:
                out.append(None)
                continue
            key = (str(user), str(target))
            if key not in windows:
                windows[key] = ratings.rated_from(key[0], key[1], future_window) if target is not None else {}
            score = windows[key].get(item)
            out.append(0.0 if score is None else value(score))
        return out

    return rating


def rated_items_lookup(window: int, recipe: Any, train: Any, feedback: Any, group_size: int,
                       add_target: bool) -> Callable[[Any, Any], list[str]] | None:
    """GRPO's `rollout_add_rated` lookup: `(user, target) -> items of the user's next `window` rated train events
    after the target` (`SIDRollout.rated_items`), or None at 0.

    Refused where the `rating` reward of `recipe` (a `RewardRecipe`) could not score what it adds (absent, or its
    `future_window` shorter than `window`), where the data has no ratings, or where the group of `group_size`
    would keep no beam candidate.
    """
    if not window:
        return None
    from rlrec.data.feedback import UserRatings

    if "rating" not in recipe.specs:
        raise ConfigError("rollout_add_rated puts the items the `rating` reward scores into the groups; add the "
                          "`rating` reward to `rewards`")
    reward_window = recipe.params.get("rating", {}).get("future_window", 0)
    if window > reward_window:
        raise ConfigError(f"rollout_add_rated={window} adds items the `rating` reward does not look at: its "
                          f"future_window is {reward_window}; set future_window >= {window}")
    if window + int(add_target) >= group_size:
        raise ConfigError(f"rollout_add_rated={window} (with add_target={add_target}) leaves no beam candidate "
                          f"in groups of {group_size}")
    if feedback is None:
        raise ConfigError("rollout_add_rated needs ratings: the dataset_dir was prepared without them")
    ratings = UserRatings.from_train(train, feedback)

    def rated_items(user_id: Any, target: Any) -> list[str]:
        return list(ratings.rated_from(str(user_id), str(target), window))

    return rated_items
