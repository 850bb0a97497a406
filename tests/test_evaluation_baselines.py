"""Popularity counts, head/tail labels, the popularity and score rankers, and the evaluation loop."""

from collections import Counter

import pytest
import torch

from rlrec.data.schema import Example
from rlrec.evaluation import evaluate_ranker, example_groups, head_items, item_popularity
from rlrec.ranking import PopularityRanker, ScoreRanker, ranked_ids


def toy_train() -> list[Example]:
    """Train examples of four users, one per position >= 1, as leave-one-out builds them."""
    sequences = {"u1": ["a", "b", "c", "d"], "u2": ["b", "c", "d"], "u3": ["c", "d"], "u4": ["e", "c"]}
    return [Example(user_id=u, history=seq[:i], target=seq[i]) for u, seq in sequences.items()
            for i in range(1, len(seq))]


def test_item_popularity_counts_each_interaction_once():
    assert item_popularity(toy_train()) == Counter({"c": 4, "d": 3, "b": 2, "a": 1, "e": 1})


def test_item_popularity_matches_train_sequences_of_prepared_data():
    from rlrec.data.synthetic import synthetic_dataset

    data = synthetic_dataset(40, 50, seed=1, history_cut=1000)
    # The test history is the whole sequence but the test target; dropping the valid item leaves train.
    expected = Counter(i for ex in data.test if len(ex.history) >= 3 for i in ex.history[:-1])
    assert item_popularity(data.train) == expected


def test_head_items_and_example_groups():
    popularity = {"c": 4, "d": 3, "b": 2, "a": 1, "e": 1, "z": 0}
    assert head_items(popularity, 0.2) == {"c"}  # ceil(0.2 * 5 items seen) = 1
    assert head_items(popularity, 0.5) == {"c", "d", "b"}
    assert head_items({"a": 2, "b": 2, "c": 1}, 0.3) == {"a", "b"}  # a tie at the cut goes to head
    with pytest.raises(ValueError):
        head_items(popularity, 1.0)
    examples = [Example("u", ["a"], "c", cold=False), Example("u", ["a"], "z", cold=True), Example("u", [], "a")]
    assert example_groups(examples, {"c"}) == [("warm", "head"), ("cold", "tail"), ("tail",)]
    assert example_groups(examples) == [("warm",), ("cold",), ()]


def test_popularity_ranker():
    rec = PopularityRanker.from_examples(toy_train())
    assert rec.rank([[]], 2) == [[("c", 4.0), ("d", 3.0)]]  # the score is the train count
    assert ranked_ids(rec.rank([["c"], []], 3)) == [["c", "d", "b"], ["c", "d", "b"]]  # history kept by default
    assert ranked_ids(rec.rank([[]], 10)) == [["c", "d", "b", "a", "e"]]  # a/e tie broken by id; catalog < k


def test_popularity_ranker_excluding_history():
    rec = PopularityRanker.from_examples(toy_train())
    ranked = rec.rank([["c", "b"], ["x"], []], 2, exclude_history=True)
    assert ranked_ids(ranked) == [["d", "a"], ["c", "d"], ["c", "d"]]
    assert ranked_ids(rec.rank([["c", "d", "b", "a"]], 3, exclude_history=True)) == [["e"]]


def score_next(ids: list[str]):
    def score(histories: list[list[str]]) -> torch.Tensor:  # prefers the item after the last one seen
        out = torch.zeros(len(histories), len(ids))
        for row, history in enumerate(histories):
            out[row, (ids.index(history[-1]) + 1) % len(ids)] = 1.0
        return out
    return score


def test_score_ranker_top_k_drops_minus_infinity_and_checks_shapes():
    ids = ["a", "b", "c", "d"]
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.0], [1.0, float("-inf"), float("-inf"), float("-inf")]])
    rows = iter([scores[:1], scores[1:]])
    rec = ScoreRanker(lambda histories: next(rows), ids, batch_size=1)
    assert rec.rank([[], []], 2) == [[("b", pytest.approx(0.9)), ("c", 0.5)], [("a", 1.0)]]
    rows = iter([scores])
    assert ranked_ids(ScoreRanker(lambda h: next(rows), ids).rank([["b", "unknown"], []], 2, exclude_history=True)) \
        == [["c", "a"], ["a"]]
    with pytest.raises(ValueError, match="shape"):
        ScoreRanker(lambda histories: scores[:, :3], ids).rank([[], []], 2)


def test_score_ranker_and_evaluate_loop():
    ids = ["a", "b", "c"]
    rec = ScoreRanker(score_next(ids), ids)
    assert [r[0] for r in ranked_ids(rec.rank([["a"], ["c"]], 2))] == ["b", "a"]
    assert ranked_ids(rec.rank([["a", "b"]], 3, exclude_history=True))[0][:1] == ["c"]

    test = [Example("u1", ["a"], "b", cold=False), Example("u2", ["b"], "a", cold=True),
            Example("u3", ["c"], "a", cold=False)]
    result = evaluate_ranker(rec, test, k_values=(1, 3), batch_size=2)
    assert result["counts"] == {"all": 3, "warm": 2, "cold": 1}
    assert result["warm"]["HR@1"] == 1.0 and result["cold"]["HR@1"] == 0.0
    assert result["all"]["HR@3"] == 1.0


def test_baselines_rank_within_a_candidate_pool():
    """A pool ranks only its items; items unknown to the baseline (or unpopular) never appear."""
    popular = PopularityRanker.from_examples(toy_train())
    assert ranked_ids(popular.rank([["c"]], 3, pool=["a", "e", "z"])) == [["a", "e"]]
    assert ranked_ids(popular.rank([["a"]], 3, pool=["a", "e"], exclude_history=True)) == [["e"]]
    assert ranked_ids(popular.rank([[]], 2)) == [["c", "d"]]  # no state left behind
    assert popular.rank([[]], 2, pool=["z"]) == [[]]  # never seen in train: never ranked
    ids = ["a", "b", "c", "d"]
    scorer = ScoreRanker(lambda histories: torch.tensor([[0.4, 0.3, 0.2, 0.1]] * len(histories)), ids)
    assert ranked_ids(scorer.rank([["a"], []], 3, pool=["d", "b", "unknown"])) == [["b", "d"], ["b", "d"]]
    assert ranked_ids(scorer.rank([[]], 2)) == [["a", "b"]]


def test_evaluate_popularity_with_head_tail():
    train = toy_train()
    test = [Example("u1", ["a", "b"], "c", cold=False), Example("u2", ["b"], "e", cold=False),
            Example("u3", ["c"], "f", cold=True)]
    head = head_items(item_popularity(train), 0.2)
    result = evaluate_ranker(PopularityRanker.from_examples(train), test, k_values=(1, 5), head=head)
    assert result["counts"] == {"all": 3, "warm": 2, "cold": 1, "head": 1, "tail": 2}
    assert result["head"]["HR@1"] == 1.0
    assert result["tail"]["HR@5"] == pytest.approx(0.5)  # e at rank 4, f never
    assert result["tail"]["NDCG@5"] == pytest.approx(0.5 / 2.584962500721156)  # 1/log2(6), halved
