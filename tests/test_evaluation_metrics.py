"""HR@K / NDCG@K against hand-computed values, and the warm/cold accumulator."""

import math

import pytest
import torch

from rlrec.evaluation.metrics import MetricAccumulator, compute_metrics, metrics_from_ranks, target_rank


def ndcg(rank: int) -> float:
    return 1.0 / math.log2(rank + 2)


@pytest.mark.parametrize(
    ("ranked", "target", "expected"),
    [
        (["a", "b", "c"], "a", 0),
        (["a", "b", "c"], "c", 2),
        (["a", "b", "c"], "z", None),  # absent
        ([], "a", None),
        (["a", "a", "b"], "b", 2),  # a repeated item still spends its slot
        (["b", "a", "b"], "b", 0),  # first occurrence counts
        ([None, "x", None, "b"], "b", 3),  # padding spends slots but never matches
        ([-1, 7, 3], 3, 2),
        ([-1, 7, 3], -1, None),
        (torch.tensor([4, 2, -1]), torch.tensor(2), 1),
    ],
)
def test_target_rank(ranked, target, expected):
    assert target_rank(ranked, target) == expected


def test_target_rank_respects_max_k():
    assert target_rank(["a", "b", "c"], "c", max_k=2) is None
    assert target_rank(["a", "b", "c"], "b", max_k=2) == 1


def test_single_example_values():
    m = compute_metrics([["a", "b", "c", "d"]], ["c"], k_values=(1, 3, 5))
    assert m["HR@1"] == 0.0 and m["NDCG@1"] == 0.0
    assert m["HR@3"] == 1.0 and m["NDCG@3"] == pytest.approx(0.5)  # rank 2 -> 1/log2(4)
    assert m["HR@5"] == 1.0 and m["NDCG@5"] == pytest.approx(0.5)


def test_list_shorter_than_k_and_target_beyond_k():
    # 2-item list, K=20: a hit at rank 1 still counts.
    assert compute_metrics([["a", "b"]], ["b"], k_values=(20,)) == {"HR@20": 1.0,
                                                                    "NDCG@20": pytest.approx(ndcg(1))}
    # target at rank 3: outside K=3, inside K=5.
    m = compute_metrics([["a", "b", "c", "d"]], ["d"], k_values=(3, 5))
    assert m["HR@3"] == 0.0 and m["NDCG@3"] == 0.0
    assert m["HR@5"] == 1.0 and m["NDCG@5"] == pytest.approx(1 / math.log2(5))


def test_averages_over_examples_including_ties_and_misses():
    ranked = [["a", "b", "c"], ["b", "a", "c"], ["x", "y", "a"], ["c", "b", "a"], ["x", None]]
    targets = ["a", "a", "a", "b", "a"]  # ranks 0, 1, 2, 1 (tie with #2), absent
    m = compute_metrics(ranked, targets, k_values=(1, 2, 3))
    assert m["HR@1"] == pytest.approx(1 / 5)
    assert m["HR@2"] == pytest.approx(3 / 5)
    assert m["HR@3"] == pytest.approx(4 / 5)
    assert m["NDCG@1"] == pytest.approx(1 / 5)
    assert m["NDCG@2"] == pytest.approx((1 + 2 * ndcg(1)) / 5)
    assert m["NDCG@3"] == pytest.approx((1 + 2 * ndcg(1) + ndcg(2)) / 5)
    assert list(m) == ["HR@1", "HR@2", "HR@3", "NDCG@1", "NDCG@2", "NDCG@3"]


def test_metrics_from_ranks_empty_and_bad_k():
    assert metrics_from_ranks([], (1,)) == {"HR@1": 0.0, "NDCG@1": 0.0}
    with pytest.raises(ValueError, match="positive"):
        metrics_from_ranks([0], (0, 5))


def test_accumulator_groups_across_batches():
    acc = MetricAccumulator(k_values=(1, 10))
    acc.add([["a"], ["b", "c"]], ["a", "c"], ["warm", "cold"])  # ranks 0, 1
    acc.add([["x"], ["d", "e"]], ["y", "d"], [("warm", "tail"), ("cold", "head")])  # absent, 0
    result = acc.compute()
    assert list(result) == ["all", "warm", "cold", "head", "tail", "counts"]
    assert result["counts"] == {"all": 4, "warm": 2, "cold": 2, "head": 1, "tail": 1}
    assert result["all"]["HR@1"] == pytest.approx(2 / 4)
    assert result["all"]["HR@10"] == pytest.approx(3 / 4)
    assert result["warm"] == {"HR@1": 0.5, "HR@10": 0.5, "NDCG@1": 0.5, "NDCG@10": 0.5}
    assert result["cold"]["HR@1"] == pytest.approx(0.5)
    assert result["cold"]["NDCG@10"] == pytest.approx((ndcg(1) + 1) / 2)
    assert result["tail"]["HR@10"] == 0.0 and result["head"]["HR@10"] == 1.0
    assert len(acc) == 4


def test_accumulator_without_groups_and_length_checks():
    acc = MetricAccumulator(k_values=(5,))
    assert acc.add([["a", "b"]], ["b"]) == [1]
    assert acc.compute()["counts"] == {"all": 1}
    with pytest.raises(ValueError, match="targets"):
        acc.add([["a"]], ["a", "b"])
    with pytest.raises(ValueError, match="group labels"):
        acc.add([["a"]], ["a"], ["warm", "cold"])
