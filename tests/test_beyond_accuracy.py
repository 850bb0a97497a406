"""Beyond-accuracy metrics (coverage, tail share, novelty, diversity, popularity) on hand-computed lists."""

import math

import numpy as np
import pytest

from rlrec.data.popularity import SelfInformation
from rlrec.evaluation.beyond import BeyondAccuracyAccumulator, ItemSpace
from rlrec.evaluation.paired import format_paired, paired_values

POPULARITY = {"a": 8, "b": 4, "c": 2, "d": 1}  # 15 train interactions; "e" and "f" have none
VECTORS = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])  # a, b, c, d (normalised by the space)


def space(vectors: bool = True) -> ItemSpace:
    return ItemSpace.build(POPULARITY, catalog_size=6, head_fraction=0.25,
                           vectors=VECTORS if vectors else None, vector_ids=list("abcd") if vectors else None)


def test_self_information_counts_an_unseen_item_as_seen_once():
    info = SelfInformation(POPULARITY)
    assert info.bits("a") == pytest.approx(math.log2(15 / 8))
    assert info.bits("e") == pytest.approx(math.log2(15)) == pytest.approx(info.max_bits)
    assert info.scaled("e") == pytest.approx(1.0)
    assert info.scaled("a") == pytest.approx(math.log2(15 / 8) / math.log2(15))
    with pytest.raises(ValueError, match="empty"):
        SelfInformation({})


def test_hand_computed_lists():
    acc = BeyondAccuracyAccumulator(space(), k_values=[2, 3])
    acc.add([["a", "b", "e"], ["c", None, "d"]])  # the padding slot counts towards K but holds no item
    m = acc.compute()
    assert space().head == {"a"}
    # K=2: user 1 shows a, b; user 2 shows c (its second slot is padding)
    assert m["coverage@2"] == pytest.approx(3 / 6)
    assert m["tail_share@2"] == pytest.approx((0.5 + 1.0) / 2)
    novelty_1 = (math.log2(15 / 8) + math.log2(15 / 4)) / 2
    assert m["novelty@2"] == pytest.approx((novelty_1 + math.log2(15 / 2)) / 2)
    assert m["popularity@2"] == pytest.approx((6 + 2) / 2)
    assert m["diversity@2"] == pytest.approx(1.0)  # a ⟂ b; user 2 has one item: left out of the average
    # K=3: user 1 adds e (unseen: tail, no vector), user 2 adds d
    assert m["coverage@3"] == pytest.approx(5 / 6)
    assert m["tail_share@3"] == pytest.approx((2 / 3 + 1.0) / 2)
    assert m["diversity@3"] == pytest.approx((1.0 + (1 - 1 / math.sqrt(2))) / 2)
    per_user = acc.per_user(2)
    assert per_user["tail_share"] == [0.5, 1.0] and math.isnan(per_user["diversity"][1])


def test_without_vectors_or_head_those_metrics_are_absent():
    no_vectors = BeyondAccuracyAccumulator(space(vectors=False), k_values=[2])
    no_vectors.add([["a", "b"]])
    assert "diversity@2" not in no_vectors.compute() and "tail_share@2" in no_vectors.compute()
    no_head = ItemSpace.build(POPULARITY, catalog_size=6, head_fraction=None)
    acc = BeyondAccuracyAccumulator(no_head, k_values=[2])
    acc.add([["a", "b"]])
    assert "tail_share@2" not in acc.compute() and acc.compute()["novelty@2"] > 0


def test_paired_values_skip_undefined_users():
    values = {"main": {"tail_share@10": [1.0, 0.5, float("nan")]},
              "other": {"tail_share@10": [0.0, 0.5, 1.0]}}
    out = paired_values(values, "main", num_samples=200)
    stats = out["other"]["tail_share@10"]
    assert stats["users"] == 2 and stats["mean"] == pytest.approx(0.5)
    text = format_paired({"other": {"NDCG@10": stats, **out["other"]}}, "main")
    assert text.count("\n") == 2 and "tail_share@10 +0.5000" in text.splitlines()[2]
