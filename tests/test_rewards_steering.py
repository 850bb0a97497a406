"""The rewards that steer away from accuracy alone (novelty, long_tail, diversity), on hand-computed groups."""

import math

import pytest

from rlrec.rewards import RewardContext, load_rewards
from rlrec.rewards.registry import recipe_context
from rlrec.utils.errors import ConfigError

POPULARITY = {"a": 8, "b": 4, "c": 2, "d": 1}  # 15 interactions; head (top 25%) = {a}
EMBEDDINGS = {"a": [1.0, 0.0], "b": [0.0, 1.0], "c": [2.0, 0.0], "d": [1.0, 1.0]}


def context(**kw) -> RewardContext:
    return RewardContext(item_popularity=POPULARITY, item_embeddings=EMBEDDINGS, num_generations=4, **kw)


def batch(items, ranks=None):
    kw = {"completions": ["x"] * len(items), "item_id": items, "prompts": ["p"] * len(items)}
    if ranks is not None:
        kw["beam_rank"] = ranks
    return kw


def test_novelty_is_scaled_self_information():
    (novelty,) = load_rewards(["novelty"], context())
    out = novelty(**batch(["a", "d", "e", None]))
    assert out[0] == pytest.approx(math.log2(15 / 8) / math.log2(15))
    assert out[1] == pytest.approx(1.0) and out[2] == pytest.approx(1.0)  # seen once, or never: the most novel
    assert out[3] == 0.0  # not an item: the invalid penalty


def test_long_tail_is_one_outside_the_head():
    (tail,) = load_rewards(["long_tail"], context(), {"long_tail": {"head_fraction": 0.25}})
    assert tail(**batch(["a", "b", "c", "e"])) == [0.0, 1.0, 1.0, 1.0]


def test_within_rank_pays_the_bonus_only_near_the_top():
    (tail,) = load_rewards(["long_tail"], context(), {"long_tail": {"head_fraction": 0.25, "within_rank": 2}})
    # beam ranks 3, 0, 1, 2: only ranks 0 and 1 may earn it
    assert tail(**batch(["b", "c", "a", "d"], ranks=[3, 0, 1, 2])) == [0.0, 1.0, 0.0, 0.0]


def test_target_only_pays_the_bonus_to_the_target_alone():
    (novelty,) = load_rewards(["novelty"], context(), {"novelty": {"target_only": True}})
    out = novelty(**batch(["a", "d", "b", "c"]), target=["d"] * 4)
    assert out == [0.0, pytest.approx(1.0), 0.0, 0.0]  # d (seen once) is the target: the most novel hit
    (tail,) = load_rewards(["long_tail"], context(), {"long_tail": {"head_fraction": 0.25, "target_only": True}})
    assert tail(**batch(["a", "b"]), target=["a", "a"]) == [0.0, 0.0]  # a head target earns nothing either
    with pytest.raises(ConfigError, match="target_only must be true or false"):
        load_rewards(["novelty"], context(), {"novelty": {"target_only": "yes"}})


def test_diversity_scores_each_candidate_against_the_better_ranked_ones():
    (div,) = load_rewards(["diversity"], context())
    # in beam order: a (first: 1), c (same direction as a: 0), b (orthogonal to both: 1), d (45° to all: 1 - cos)
    out = div(**batch(["b", "a", "d", "c"], ranks=[2, 0, 3, 1]))
    assert out == pytest.approx([1.0, 1.0, 1 - 1 / math.sqrt(2), 0.0])
    # two groups of four are scored separately
    two = div(**batch(["a", "c", "b", "d"] * 2, ranks=[0, 1, 2, 3] * 2))
    assert two[:4] == two[4:] == pytest.approx([1.0, 0.0, 1.0, 1 - 1 / math.sqrt(2)])
    (gated,) = load_rewards(["diversity"], context(), {"diversity": {"within_rank": 2}})
    assert gated(**batch(["a", "c", "b", "d"], ranks=[0, 1, 2, 3])) == pytest.approx([1.0, 0.0, 0.0, 0.0])


def test_what_the_rewards_need_is_a_clear_error():
    with pytest.raises(ConfigError, match="needs the train popularity"):
        load_rewards(["novelty"], RewardContext())
    with pytest.raises(ConfigError, match="needs item text embeddings"):
        load_rewards(["diversity"], RewardContext())
    with pytest.raises(ConfigError, match="within_rank must be a positive integer"):
        load_rewards(["novelty"], context(), {"novelty": {"within_rank": 0}})
    with pytest.raises(ConfigError, match="head_fraction must be a number in"):
        load_rewards(["long_tail"], context(), {"long_tail": {"head_fraction": 1.5}})
    with pytest.raises(ConfigError, match="need the train split's item popularity"):
        recipe_context(["novelty"], index=None, train=None, invalid_penalty=0.0, num_generations=4)
