"""The `rating` reward: a candidate the user rated earns that rating, looked up from the prompt's target on."""

from __future__ import annotations

import pytest

from rlrec.data.feedback import FeedbackRule, UserRatings
from rlrec.data.schema import Example
from rlrec.rewards import load_rewards
from rlrec.rewards.context import RewardContext
from rlrec.rewards.registry import recipe_context
from rlrec.utils.errors import ConfigError

# User u's train events in time order: a (5), b (1), c (3), d (2), e (4); v rated only x (1).
TRAIN = [Example("u", ["h"], item, timestamp=t, rating=r)
         for t, (item, r) in enumerate([("a", 5.0), ("b", 1.0), ("c", 3.0), ("d", 2.0), ("e", 4.0)])]
TRAIN.append(Example("v", ["h"], "x", timestamp=0, rating=1.0))


def _context() -> RewardContext:
    return RewardContext(user_ratings=UserRatings.from_train(list(reversed(TRAIN)), FeedbackRule()))


def _score(reward, user, target, items):
    n = len(items)
    return reward(completions=[""] * n, item_id=items, user_id=[user] * n, target=[target] * n)


def test_target_only_window_pays_the_targets_rating():
    [reward] = load_rewards(["rating"], _context())
    # Prompt u -> b (rated 1): the target costs, every other candidate (even ones u rated later) is 0.
    assert _score(reward, "u", "b", ["b", "a", "e", "z"]) == [-1.0, 0.0, 0.0, 0.0]
    assert _score(reward, "u", "a", ["a", "b"]) == [1.0, 0.0]
    assert _score(reward, "u", "c", ["c"]) == [0.0]          # neutral
    assert _score(reward, "v", "x", ["x", "a"]) == [-1.0, 0.0]  # another user's ratings are not this one's
    assert _score(reward, "w", "q", ["q"]) == [0.0]          # a user without train events


def test_future_window_reads_the_next_events_and_no_earlier_ones():
    [reward] = load_rewards(["rating"], _context(), {"rating": {"future_window": 2}})
    # Prompt u -> b: the window is b, c, d; a was before the prompt, e beyond the window.
    assert _score(reward, "u", "b", ["b", "c", "d", "a", "e"]) == [-1.0, 0.0, -1.0, 0.0, 0.0]
    [wide] = load_rewards(["rating"], _context(), {"rating": {"future_window": 10}})
    assert _score(wide, "u", "d", ["e", "a"]) == [1.0, 0.0]   # the window stops at the last train event


def test_values_table_and_label_rewards_are_configurable():
    [table] = load_rewards(["rating"], _context(), {"rating": {"values": {5: 1.0, "4": 0.5, 1: -2.0},
                                                               "future_window": 4}})
    assert _score(table, "u", "a", ["a", "e", "b", "c"]) == [1.0, 0.5, -2.0, 0.0]
    [labels] = load_rewards(["rating"], _context(), {"rating": {"liked": 2.0, "disliked": -0.5}})
    assert _score(labels, "u", "a", ["a"]) == [2.0] and _score(labels, "u", "b", ["b"]) == [-0.5]


def test_a_completion_naming_no_item_gets_the_invalid_penalty():
    [reward] = load_rewards(["rating"], _context(), {"rating": {"invalid_penalty": -0.3}})
    assert _score(reward, "u", "a", [None, "a"]) == [-0.3, 1.0]


@pytest.mark.parametrize(("params", "match"), [
    ({"future_window": -1}, "future_window must be an integer >= 0"),
    ({"liked": "lots"}, "liked must be a finite number"),
    ({"values": {"five": 1.0}}, "values has the key 'five'"),
    ({"values": []}, "values must map ratings to rewards"),
])
def test_bad_params_are_clear_errors(params, match):
    with pytest.raises(ConfigError, match=match):
        load_rewards(["rating"], _context(), {"rating": params})


def test_without_ratings_the_reward_refuses_to_build():
    with pytest.raises(ConfigError, match="needs the users' ratings"):
        load_rewards(["rating"], RewardContext())
    with pytest.raises(ConfigError, match="prepared from rated data"):
        recipe_context(["rating"], index=None, train=TRAIN, invalid_penalty=0.0, num_generations=4)
    context = recipe_context(["rating"], index=None, train=TRAIN, invalid_penalty=0.0, num_generations=4,
                             feedback=FeedbackRule())
    assert context.user_ratings.rated_from("u", "d", 1) == {"d": 2.0, "e": 4.0}


def test_the_reward_needs_the_user_column():
    [reward] = load_rewards(["rating"], _context())
    with pytest.raises(ConfigError, match="user_id"):
        reward(completions=[""], item_id=["a"], target=["a"])


def test_nearest_rated_items_by_hand():
    ratings = _context().user_ratings
    assert ratings.nearest("u", "c", "disliked", 2) == ["b", "d"]  # both one event away: the earlier first
    assert ratings.nearest("u", "c", "disliked", 1) == ["b"]
    assert ratings.nearest("u", "b", "liked", 5) == ["a", "e"]
    assert ratings.nearest("u", "b", "disliked", 5) == ["d"]      # never the target itself
    assert ratings.nearest("u", "zz", "liked", 3) == [] and ratings.nearest("v", "x", "liked", 3) == []
