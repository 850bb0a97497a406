"""Loading rewards (registry names, `package.module:function`, params, recipes) and the `checked` guard."""

import textwrap

import numpy as np
import pytest

from rlrec.rewards import REWARDS, RewardContext, checked, load_rewards, parse_reward_recipe
from rlrec.rewards.checked import RewardError, RewardOutputError
from rlrec.sid.index import SIDIndex
from rlrec.utils.errors import ConfigError

USER_MODULE = """
from rlrec.rewards import reward_factory

NOT_CALLABLE = 3


def length_reward(completions, **kwargs):
    return [float(len(c)) for c in completions]


@reward_factory
def scaled(context, scale=1.0):
    def scaled_reward(completions, **kwargs):
        return [scale * len(context.index.item_ids)] * len(completions)
    return scaled_reward
"""


@pytest.fixture
def index() -> SIDIndex:
    return SIDIndex(["m1", "m2"], np.array([[0, 1], [1, 0]]), [2, 2])


@pytest.fixture
def user_module(tmp_path, monkeypatch) -> str:
    (tmp_path / "rlrec_test_user_rewards.py").write_text(textwrap.dedent(USER_MODULE))
    (tmp_path / "rlrec_test_broken_rewards.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return "rlrec_test_user_rewards"


def test_every_registered_reward_is_a_named_factory(index):
    from rlrec.data.feedback import FeedbackRule, UserRatings

    context = RewardContext(index=index, item_embeddings={"m1": [1.0], "m2": [1.0]},
                            item_popularity={"m1": 3, "m2": 1},
                            user_ratings=UserRatings.from_train([], FeedbackRule()))
    fns = load_rewards(list(REWARDS), context)
    assert [fn.__name__ for fn in fns] == list(REWARDS)


def test_user_functions_by_dotted_path(index, user_module):
    plain, factory = load_rewards(
        [f"{user_module}:length_reward", f"{user_module}:scaled"],
        RewardContext(index=index),
        {f"{user_module}:scaled": {"scale": 3.0}},
    )
    assert plain.__name__ == "length_reward" and factory.__name__ == "scaled_reward"
    assert plain(prompts=["p", "p"], completions=["ab", "c"]) == [2.0, 1.0]
    assert factory(completions=["x"]) == [6.0]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nope", "unknown reward 'nope'; known rewards: diversity, exact_match, long_tail, ndcg_lambda, novelty, "
                 "ranking, rating, semantic_cosine, token_semantic"),
        ("rlrec_no_such_module:f", "cannot import module 'rlrec_no_such_module'"),
        ("rlrec_test_broken_rewards:f", "importing 'rlrec_test_broken_rewards' failed: RuntimeError: boom"),
        ("rlrec_test_user_rewards:missing", "has no attribute 'missing'"),
        ("rlrec_test_user_rewards:NOT_CALLABLE", "'NOT_CALLABLE' is a int, not a function"),
        ("rlrec_test_user_rewards:", "expected 'package.module:function'"),
        ("", "expected a reward name"),
    ],
)
def test_bad_specs_fail_clearly(user_module, spec, message):
    with pytest.raises(ConfigError, match=message.replace("(", "\\(")):
        load_rewards([spec], RewardContext())


def test_bad_params_fail_clearly(index, user_module):
    context = RewardContext(index=index)
    with pytest.raises(ConfigError, match=r"'ranking': unknown params \['bogus'\]; it accepts: correct_reward"):
        load_rewards(["ranking"], context, {"ranking": {"bogus": 1}})
    with pytest.raises(ConfigError, match="plain reward function and takes no params"):
        load_rewards([f"{user_module}:length_reward"], context, {f"{user_module}:length_reward": {"x": 1}})
    with pytest.raises(ConfigError, match=r"params given for \['ranking'\], which are not in the reward list"):
        load_rewards(["exact_match"], context, {"ranking": {}})
    with pytest.raises(ConfigError, match="invalid_penalty must be a finite number"):
        load_rewards(["exact_match"], context, {"exact_match": {"invalid_penalty": "low"}})
    with pytest.raises(ConfigError, match="num_generations must be a positive integer"):
        load_rewards(["ranking"], context, {"ranking": {"num_generations": 0}})
    with pytest.raises(ConfigError, match="named twice"):
        load_rewards(["exact_match", "exact_match"], context)
    with pytest.raises(ConfigError, match="empty"):
        load_rewards([], context)


def test_parse_reward_recipe():
    recipe = parse_reward_recipe(
        [
            "exact_match",
            {"name": "ranking", "weight": 0.5},
            {"name": "token_semantic", "weight": 2, "level_weights": [0.5, 0.3, 0.2]},
        ]
    )
    assert recipe.specs == ["exact_match", "ranking", "token_semantic"]
    assert recipe.weights == [1.0, 0.5, 2.0]
    assert recipe.params == {"token_semantic": {"level_weights": [0.5, 0.3, 0.2]}}
    with pytest.raises(ConfigError, match=r"rewards\[0\] \(ranking\): weight must be a finite number"):
        parse_reward_recipe([{"name": "ranking", "weight": "high"}])
    with pytest.raises(ConfigError, match=r"rewards\[1\]: expected a reward name"):
        parse_reward_recipe(["ranking", {"weight": 1}])
    with pytest.raises(ConfigError, match="expected a list"):
        parse_reward_recipe("ranking")


# -- checked ------------------------------------------------------------------------------------------------------


def test_checked_replaces_unusable_values_and_counts_them():
    def sloppy(completions, **kwargs):
        return [1, None, float("nan"), float("inf"), "x", True]

    logged = []
    fn = checked(sloppy, penalty=-1.0)
    out = fn(completions=list("abcdef"), log_metric=lambda name, value: logged.append((name, value)))
    assert out == [1.0, -1.0, -1.0, -1.0, -1.0, 1.0]
    assert logged == [("rewards/sloppy/invalid", 4.0)]
    assert checked(lambda completions, **kw: np.zeros(2))(completions=["a", "b"]) == [0.0, 0.0]


def test_checked_isolates_the_completion_that_raises():
    def picky(completions, target, **kwargs):
        if any(c == "bad" for c in completions):
            raise RuntimeError("cannot score")
        return [float(c == t) for c, t in zip(completions, target, strict=True)]

    logged = []
    out = checked(picky)(
        prompts=["p"] * 3,
        completions=["a", "bad", "c"],
        target=["a", "b", "x"],
        log_metric=lambda name, value: logged.append(value),
    )
    assert out == [1.0, 0.0, 0.0] and logged == [1.0]


def test_checked_does_not_split_group_rewards():
    calls = []

    def grouped(completions, **kwargs):
        calls.append(len(completions))
        raise RuntimeError("boom")

    grouped.scores_groups = True
    # Called once on the whole batch (not split); failing on all of it means the reward is broken.
    with pytest.raises(RewardError, match="'grouped' failed on all 2 completions.*RuntimeError: boom"):
        checked(grouped, penalty=-0.1)(completions=["a", "b"])
    assert calls == [2]


def test_a_reward_that_fails_on_every_completion_is_a_clear_error():
    def broken(completions, **kwargs):
        return [float("nan")] * len(completions)

    with pytest.raises(RewardError, match="'broken' failed on all 3 completions.*returned nan"):
        checked(broken)(completions=["a", "b", "c"])

    def crashes(completions, **kwargs):
        raise KeyError("target")

    with pytest.raises(RewardError, match="'crashes'.*KeyError"):
        checked(crashes)(completions=["a", "b"])
    # None for every completion is the reward saying none is a valid item: scored, not an error.
    assert checked(lambda completions, **kw: [None] * len(completions), penalty=-1.0)(completions=["a"]) == [-1.0]


def test_checked_raises_on_wiring_bugs():
    with pytest.raises(RewardOutputError, match="'short' returned 1 values for 2 completions"):
        checked(lambda completions, **kw: [1.0], name="short")(completions=["a", "b"])
    with pytest.raises(RewardOutputError, match="returned float"):
        checked(lambda completions, **kw: 1.0, name="scalar")(completions=["a"])

    def miswired(completions, **kwargs):
        raise ConfigError("column missing")

    with pytest.raises(ConfigError, match="column missing"):
        checked(miswired)(completions=["a"])
