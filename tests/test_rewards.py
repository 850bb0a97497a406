"""Reward values on hand-built cases: exact match, MiniOneRec ranking reward, token-level semantic rewards, format."""

import math

import numpy as np
import pytest

from rlrec.rewards import RewardContext, completion_text, load_rewards
from rlrec.sid.index import SIDIndex
from rlrec.utils.errors import ConfigError

IDS = ["m1", "m2", "m3", "m4", "m5"]
CODES = np.array([[0, 1, 2], [0, 1, 0], [0, 2, 1], [2, 0, 0], [2, 0, 3]])
SIZES = [3, 3, 4]
MALFORMED = [None, "", "garbage", 42, b"<a_0><b_1><c_2>", ["<a_0>"], [{"role": "assistant", "content": None}], 3.5]


@pytest.fixture
def index() -> SIDIndex:
    return SIDIndex(IDS, CODES, SIZES)


@pytest.fixture
def context(index) -> RewardContext:
    return RewardContext(index=index)


class Metrics(dict):
    """Stands in for GRPOTrainer's `log_metric`."""

    def __call__(self, name, value):
        self.setdefault(name, []).append(value)


def one(name, context, params=None):
    [fn] = load_rewards([name], context, {name: params} if params else None)
    return fn


def call(fn, completions, target="m1", **extra):
    """Call a reward with the keyword set GRPOTrainer uses; returns (rewards, logged metrics)."""
    n = len(completions)
    metrics = Metrics()
    kwargs = {"target": [target] * n, "target_sid": ["<a_0><b_1><c_2>"] * n, **extra}
    out = fn(
        prompts=["p"] * n,
        completions=completions,
        completion_ids=[[1, 2, 3]] * n,
        trainer_state=object(),
        log_metric=metrics,
        log_extra=lambda column, values: None,
        **kwargs,
    )
    assert len(out) == n and all(isinstance(v, float) for v in out)
    return out, metrics


# -- exact match --------------------------------------------------------------------------------------------------


def test_exact_match_scores_the_target_one_and_other_items_zero(context, index):
    fn = one("exact_match", context)
    assert fn.__name__ == "exact_match"
    out, metrics = call(fn, [index.sid("m1"), index.sid("m2"), " <a_0> <b_1>\n<c_2> ", "garbage"])
    assert out == [1.0, 0.0, 1.0, 0.0]
    assert metrics == {"rewards/exact_match/invalid": [1.0]}  # garbage names no item


def test_exact_match_reads_conversational_completions_and_rollout_item_ids(context, index):
    fn = one("exact_match", context)
    chat = [[{"role": "assistant", "content": index.sid(i)}] for i in ("m2", "m1")]
    assert call(fn, chat)[0] == [0.0, 1.0]
    # The rollout's item_id wins over the text (the text may have lost special tokens); None means "no item".
    out, metrics = call(fn, ["", "", ""], item_id=["m1", "m3", None])
    assert out == [1.0, 0.0, 0.0] and metrics["rewards/exact_match/invalid"] == [1.0]


def test_exact_match_target_from_target_sid_and_without_index(index):
    with_index = one("exact_match", RewardContext(index=index))
    out = with_index(completions=[index.sid("m1"), index.sid("m4")], target_sid=[index.sid("m4")] * 2)
    assert out == [0.0, 1.0]
    bare = one("exact_match", RewardContext())  # no index: compare the text with target_sid, as MiniOneRec does
    out = bare(completions=["<a_0> <b_1><c_2>\n", "<a_2><b_0><c_0>", None], target_sid=["<a_0><b_1><c_2>"] * 3)
    assert out == [1.0, 0.0, 0.0]


# -- ranking ------------------------------------------------------------------------------------------------------

D = [1 / math.log2(r + 2) for r in range(4)]
S = sum(D)


def test_ranking_matches_minionerec_formula(index):
    fn = one("ranking", RewardContext(index=index, num_generations=4))
    # Group 1 holds the target at rank 1; group 2 misses it entirely.
    completions = [index.sid(i) for i in ("m2", "m1", "m3", "m4", "m2", "m3", "m4", "m5")]
    out, _ = call(fn, completions, beam_rank=[0, 1, 2, 3] * 2)
    assert out[:4] == pytest.approx([-D[0] / S, 0.0, -D[2] / S, -D[3] / S])
    assert out[4:] == [0.0] * 4  # no hit in the group: no signal


def test_ranking_penalises_wrong_items_more_the_higher_they_rank(index):
    fn = one("ranking", RewardContext(index=index), {"correct_reward": 1.0, "num_generations": 4})
    # Beam ranks given out of order: the rank, not the position, decides the penalty.
    completions = [index.sid(i) for i in ("m3", "m1", "m2", "m4")]
    out, _ = call(fn, completions, beam_rank=[3, 2, 0, 1])
    wrong_rank0, wrong_rank3, correct = out[2], out[0], out[1]
    assert correct == 1.0 > 0 > wrong_rank3 > wrong_rank0
    assert wrong_rank0 == pytest.approx(-1 / S) and wrong_rank3 == pytest.approx(-D[3] / S)


def test_ranking_without_beam_rank_uses_position_and_require_hit_false(index):
    fn = one("ranking", RewardContext(index=index, num_generations=4), {"require_hit": False})
    out, _ = call(fn, [index.sid(i) for i in ("m2", "m3", "m4", "m5")], beam_rank=[None] * 4)
    assert out == pytest.approx([-d / S for d in D]) and sum(out) == pytest.approx(-1.0)


def test_ranking_infers_group_size_from_the_batch(index):
    fn = one("ranking", RewardContext(index=index))
    completions = [index.sid(i) for i in ("m2", "m1", "m2", "m3")]
    by_rank, _ = call(fn, completions, beam_rank=[0, 1, 0, 1])  # two groups of 2
    d2 = 1 + 1 / math.log2(3)
    assert by_rank == pytest.approx([-1 / d2, 0.0, 0.0, 0.0])
    by_prompt = fn(prompts=["a", "a", "b", "b"], completions=completions, target=["m1"] * 4)
    assert by_prompt == by_rank


def test_ranking_refuses_batches_that_split_groups(index):
    fn = one("ranking", RewardContext(index=index, num_generations=4))
    with pytest.raises(ConfigError, match="do not split into groups of 4"):
        call(fn, [index.sid("m1")] * 6)


def test_ranking_scores_malformed_completions_the_penalty(index):
    fn = one("ranking", RewardContext(index=index, num_generations=4), {"invalid_penalty": -2.0})
    out, metrics = call(fn, [index.sid("m1"), "junk", None, index.sid("m2")])
    assert out[:3] == [0.0, -2.0, -2.0] and out[3] == pytest.approx(-D[3] / S)
    assert metrics == {"rewards/ranking/invalid": [2.0]}


def test_ndcg_lambda_credits_only_the_swaps_that_cost_ndcg(index):
    fn = one("ndcg_lambda", RewardContext(index=index, num_generations=4))
    # Group 1: target (m1) at rank 2, so ranks 0 and 1 cost d(r) - d(2) each and rank 3 nothing; the target
    # gets their sum. Group 2: the target is first, a right ordering: no signal. Group 3: no target: no signal.
    completions = [index.sid(i) for i in ("m2", "m3", "m1", "m4", "m1", "m2", "m3", "m4", "m2", "m3", "m4", "m5")]
    out, _ = call(fn, completions, beam_rank=[0, 1, 2, 3] * 3)
    swaps = [D[0] - D[2], D[1] - D[2]]
    assert out[:4] == pytest.approx([-swaps[0], -swaps[1], sum(swaps), 0.0])
    assert out[4:] == [0.0] * 8
    # the group sums to zero: the target gains exactly what the items above it lose
    assert sum(out[:4]) == pytest.approx(0.0)


# -- token-level semantic rewards ---------------------------------------------------------------------------------


def test_token_semantic_gives_partial_credit_from_the_left(context, index):
    completions = [index.sid(i) for i in ("m1", "m2", "m3", "m4")]  # target m1 = (0, 1, 2)
    out, _ = call(one("token_semantic", context), completions)
    assert out == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0])
    weighted, _ = call(one("token_semantic", context, {"level_weights": [0.5, 0.3, 0.2]}), completions)
    assert weighted == pytest.approx([1.0, 0.8, 0.5, 0.0])
    unnormalised, _ = call(one("token_semantic", context, {"level_weights": [2, 1, 1]}), completions)
    assert unnormalised == pytest.approx([1.0, 0.75, 0.5, 0.0])


@pytest.mark.parametrize("weights", [[1, 1], [1, -1, 1], [0, 0, 0], ["a", 1, 1], [1, float("nan"), 1]])
def test_token_semantic_rejects_bad_level_weights(context, weights):
    with pytest.raises(ConfigError, match="level_weights"):
        one("token_semantic", context, {"level_weights": weights})


def test_rewards_that_need_the_index_say_so():
    for name in ("token_semantic", "valid_format"):
        with pytest.raises(ConfigError, match=f"{name!r} needs the SID index"):
            one(name, RewardContext())


EMB = {"m1": [1.0, 0.0], "m2": [0.0, 2.0], "m3": [1.0, 1.0], "m4": [-3.0, 0.0], "m5": [0.0, 0.0]}


def test_semantic_cosine_scores_embedding_similarity(index):
    fn = one("semantic_cosine", RewardContext(index=index, item_embeddings={k: np.array(v) for k, v in EMB.items()}))
    out, _ = call(fn, [index.sid(i) for i in IDS])
    assert out == pytest.approx([1.0, 0.0, math.sqrt(0.5), -1.0, 0.0])
    # An array in index order, rescaled to [0, 1].
    array_ctx = RewardContext(index=index, item_embeddings=np.array([EMB[i] for i in IDS]))
    rescaled, _ = call(one("semantic_cosine", array_ctx, {"rescale": True}), [index.sid("m2"), index.sid("m4")])
    assert rescaled == pytest.approx([0.5, 0.0])


def test_semantic_cosine_missing_embeddings(index):
    fn = one("semantic_cosine", RewardContext(index=index, item_embeddings=np.eye(2), item_embedding_ids=["m1", "m2"]))
    out, metrics = call(fn, [index.sid("m2"), index.sid("m3")])
    assert out == [0.0, 0.0] and metrics["rewards/semantic_cosine/invalid"] == [1.0]
    with pytest.raises(ConfigError, match="needs item text embeddings"):
        one("semantic_cosine", RewardContext(index=index))
    with pytest.raises(ConfigError, match="expected \\(5 items"):
        one("semantic_cosine", RewardContext(index=index, item_embeddings=np.ones((3, 4))))


# -- format -------------------------------------------------------------------------------------------------------


def test_valid_format(context):
    fn = one("valid_format", context)
    texts = ["<a_0><b_1><c_2>", " <a_0> <b_1>\n<c_2>\n", "<a_1><b_1><c_1>", "<a_0><b_1><c_9>", "Sure: <a_0><b_1><c_2>"]
    out, metrics = call(fn, texts)
    assert out == [1.0, 1.0, 0.0, 0.0, 0.0] and metrics["rewards/valid_format/invalid"] == [3.0]
    loose = one("valid_format", context, {"require_item": False, "allow_extra_text": True, "invalid_penalty": -1})
    assert call(loose, texts)[0] == [1.0, 1.0, 1.0, -1.0, 1.0]


# -- malformed completions, every reward --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["exact_match", "ranking", "token_semantic", "semantic_cosine", "valid_format"])
def test_malformed_completions_score_the_penalty_and_are_counted(index, name):
    context = RewardContext(index=index, item_embeddings=EMB, invalid_penalty=-0.5, num_generations=len(MALFORMED))
    fn = one(name, context)
    out, metrics = call(fn, list(MALFORMED))
    assert out == [-0.5] * len(MALFORMED)
    assert metrics == {f"rewards/{name}/invalid": [float(len(MALFORMED))]}
    # Called outside the trainer: no hooks, no extras but the columns.
    assert fn(completions=list(MALFORMED), target=["m1"] * len(MALFORMED)) == [-0.5] * len(MALFORMED)


def test_completion_text_forms():
    assert completion_text("x") == "x"
    assert completion_text([{"role": "assistant", "content": "y"}]) == "y"
    assert completion_text({"role": "assistant", "content": "z"}) == "z"
    assert completion_text([{"role": "assistant", "content": [{"type": "text", "text": "a"}, {"text": "b"}]}]) == "ab"
    for junk in (None, 1, [], [1], b"x", [{"role": "assistant", "content": 3}]):
        assert completion_text(junk) is None


def test_rollout_columns_as_arrays_and_mis_sized_columns(index):
    fn = one("ranking", RewardContext(index=index, num_generations=2))
    out, _ = call(fn, ["", ""], item_id=np.array(["m2", "m1"]), beam_rank=np.array([1, 0]))
    assert out == pytest.approx([-1 / math.log2(3) / (1 + 1 / math.log2(3)), 0.0])
    with pytest.raises(ConfigError, match="column 'item_id' has 3 values for 2 completions"):
        call(fn, ["", ""], item_id=["m1", "m2", "m3"])
