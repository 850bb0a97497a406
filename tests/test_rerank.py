"""Re-ranking baselines: hand-computed re-orderings, and the ranker protocol (k items, exclusion, pool)."""

import numpy as np
import pytest
import torch

from rlrec.ranking import ScoreRanker, ranked_ids
from rlrec.ranking.rerank import Reranker, bonus_reorder, make_reranker, mmr_reorder, objective_bonus, parse_rerank
from rlrec.utils.errors import ConfigError

IDS = ["a", "b", "c", "d", "e"]
SCORES = [5.0, 4.0, 3.0, 2.0, 1.0]  # the base ranks a > b > c > d > e for everyone
POPULARITY = {"a": 50, "b": 40, "c": 30, "d": 2, "e": 1}  # head (top 20%) = {a}
VECTORS = np.array([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [1.0, 0.0], [0.7, 0.7]])


def base() -> ScoreRanker:
    return ScoreRanker(lambda histories: torch.tensor([SCORES] * len(histories)), IDS)


def test_bonus_reranking_by_hand():
    tail = make_reranker(base(), "tail", 1.5, popularity=POPULARITY, top_n=5)
    # a 5 + 0, b 4 + 1.5, c 3 + 1.5, d 2 + 1.5, e 1 + 1.5
    assert tail.rank([[]], 3) == [[("b", 5.5), ("a", 5.0), ("c", 4.5)]]
    assert ranked_ids(make_reranker(base(), "tail", 0.0, popularity=POPULARITY).rank([[]], 5)) == [IDS]
    novelty = objective_bonus("novelty", POPULARITY)
    assert novelty("e") == pytest.approx(1.0) and 0 < novelty("a") < novelty("d") < 1
    # top_n bounds what can come up: with top 2 only, e can never be shown
    assert "e" not in ranked_ids(Reranker(base(), bonus_reorder(novelty, 100.0), top_n=2).rank([[]], 2))[0]


def test_mmr_by_hand():
    rows = {item: i for i, item in enumerate(IDS)}
    assert ranked_ids(Reranker(base(), mmr_reorder(VECTORS, rows, 0.0), top_n=5).rank([[]], 5)) == [IDS]
    # weight 0.5, relevance scaled to a 1, b .75, c .5, d .25, e 0; value = .5 * relevance - .5 * closest cos.
    # a first (nothing picked). Then c: .25 - 0 beats b (.375 - .5 * .995), e (0 - .5 * .707), d (.125 - .5).
    # Then b (-.12) over e (-.35) and d (-.375). Last, d: .125 - .5 * 1 = -.375 beats e: 0 - .5 * cos(b, e) = -.387.
    mmr = Reranker(base(), mmr_reorder(VECTORS, rows, 0.5), top_n=5)
    ranked = mmr.rank([[]], 5)[0]
    assert [item for item, _ in ranked] == ["a", "c", "b", "d", "e"]
    assert [score for _, score in ranked] == sorted((score for _, score in ranked), reverse=True)


@pytest.mark.parametrize("objective", ["novelty", "tail", "mmr"])
def test_rerankers_keep_the_ranker_protocol(objective):
    rows = {item: i for i, item in enumerate(IDS)}
    ranker = make_reranker(base(), objective, 0.5, popularity=POPULARITY, vectors=VECTORS, vector_rows=rows,
                           top_n=3)
    out = ranker.rank([[], ["a", "b"]], 4, exclude_history=True)
    assert [len(row) for row in out] == [4, 3]  # asks the base for max(k, top_n); fewer only when none are left
    assert not {"a", "b"} & set(ranked_ids(out)[1])
    assert set(ranked_ids(ranker.rank([[]], 2, pool=["c", "e", "unknown"]))[0]) == {"c", "e"}
    assert ranker.knows("a") and not ranker.knows("z") and ranker.item_ids == IDS


def test_bad_reranking_settings():
    for entry in ("novelty", "popular=0.3", "novelty=-1", "mmr=1.5", "tail=x"):
        with pytest.raises(ConfigError, match="rerank"):
            parse_rerank(entry)
    assert parse_rerank("mmr=0.25") == ("mmr", 0.25)
    with pytest.raises(ConfigError, match="needs item vectors"):
        make_reranker(base(), "mmr", 0.3, popularity=POPULARITY)
    with pytest.raises(ConfigError, match="top_n"):
        make_reranker(base(), "tail", 0.3, popularity=POPULARITY, top_n=0)


def test_rating_reranking_by_hand():
    from rlrec.data.feedback import item_mean_ratings
    from rlrec.data.schema import Example

    # Train ratings: c 5, 5; d 1; e never rated. Global mean (5 + 5 + 1 + 3) / 4 = 3.5 with b's 3.
    train = [Example("u", ["c"], "c", rating=5.0, history_ratings=[5.0]), Example("u", ["c"], "d", rating=1.0),
             Example("v", ["x"], "b", rating=3.0, history_ratings=[None])]
    means = item_mean_ratings(train, shrinkage=2)
    # c: (10 + 2 * 3.5) / 4 = 4.25; d: (1 + 7) / 3 = 2.667; b: (3 + 7) / 3 = 3.333
    assert means == pytest.approx({"c": 4.25, "d": 8 / 3, "b": 10 / 3})
    assert item_mean_ratings(train, shrinkage=0) == pytest.approx({"c": 5.0, "d": 1.0, "b": 3.0})
    rating = make_reranker(base(), "rating", 2.0, popularity=POPULARITY, mean_ratings=means, top_n=5)
    # scaled over [2.667, 4.25]: c 1, b 0.421, d 0; a and e unrated get the mean of those, 0.474.
    # a 5 + .947 = 5.947, b 4 + .842 = 4.842, c 3 + 2 = 5, d 2, e 1 + .947
    assert ranked_ids(rating.rank([[]], 5)) == [["a", "c", "b", "d", "e"]]
    with pytest.raises(ConfigError, match="needs item ratings"):
        make_reranker(base(), "rating", 1.0, popularity=POPULARITY)
    assert parse_rerank("rating=0.5") == ("rating", 0.5)
