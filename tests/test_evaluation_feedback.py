"""Feedback-aware evaluation: HR/NDCG on liked and on disliked targets, their gap, and paired intervals."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rlrec.data.schema import Example, Item, PreparedDataset
from rlrec.evaluation.paired import bootstrap_gap_interval, format_paired, paired_feedback
from rlrec.evaluation.report import format_feedback_table
from rlrec.evaluation.run import evaluate_rankers
from rlrec.evaluation.settings import EvalSettings
from rlrec.ranking import ScoreRanker

ITEMS = ["a", "b", "c", "d", "e"]


def _fixed(order: list[str]) -> ScoreRanker:
    """Ranks `order` for every history."""
    scores = torch.tensor([float(len(order) - order.index(item)) for item in ITEMS])
    return ScoreRanker(lambda histories: scores.expand(len(histories), -1), ITEMS)


def _dataset(ratings: dict[str, float] | None) -> PreparedDataset:
    """Four test users: u1 -> a (5 stars), u2 -> c (4), u3 -> b (1), u4 -> e (3)."""
    targets = {"u1": "a", "u2": "c", "u3": "b", "u4": "e"}
    items = {i: Item(i, f"title {i}", f"title {i}") for i in ITEMS}
    test = [Example(user, ["d"], target, rating=None if ratings is None else ratings[user])
            for user, target in targets.items()]
    train = [Example(user, ["d"], "a") for user in targets]
    manifest = {} if ratings is None else {"ratings": {"liked_threshold": 4.0, "disliked_threshold": 2.0}}
    return PreparedDataset(items=items, train=train, valid=list(test), test=test, manifest=manifest)


RATINGS = {"u1": 5.0, "u2": 4.0, "u3": 1.0, "u4": 3.0}


def test_liked_and_disliked_metrics_by_hand(tmp_path, capsys):
    settings = EvalSettings(split="test", k_values=[1, 3], baselines=[], beyond_accuracy=False, head_fraction=None)
    forward, backward = _fixed(ITEMS), _fixed(ITEMS[::-1])
    report = evaluate_rankers("forward", forward, _dataset(RATINGS), settings, output_dir=tmp_path,
                              show_progress=False, others={"backward": lambda: backward})
    fwd, bwd = report["models"]["forward"], report["models"]["backward"]
    # forward ranks a, b, c first: u1 rank 0, u2 rank 2 (liked); u3 rank 1 (disliked); u4 rank 4 (neutral).
    assert fwd["counts"] == {"all": 4, "liked": 2, "neutral": 1, "disliked": 1}
    assert fwd["liked"]["HR@3"] == 1.0 and fwd["liked"]["NDCG@3"] == pytest.approx((1 + 0.5) / 2)
    assert fwd["liked"]["HR@1"] == 0.5
    assert fwd["disliked"]["HR@3"] == 1.0 and fwd["disliked"]["NDCG@3"] == pytest.approx(1 / math.log2(3))
    assert fwd["neutral"]["HR@3"] == 0.0
    # backward ranks e, d, c first: u2 rank 2 is its only hit among the rated targets that matter.
    assert bwd["liked"]["HR@3"] == 0.5 and bwd["liked"]["NDCG@3"] == pytest.approx(0.25)
    assert bwd["disliked"]["HR@3"] == 0.0 and bwd["neutral"]["NDCG@1"] == 1.0

    feedback = report["feedback"]
    assert feedback["counts"] == {"liked": 2, "disliked": 1} and feedback["k"] == 3
    assert feedback["gap"]["forward"]["HR@3"]["mean"] == pytest.approx(0.0)
    assert feedback["gap"]["forward"]["NDCG@3"]["mean"] == pytest.approx(0.75 - 1 / math.log2(3), abs=1e-6)
    assert feedback["gap"]["backward"]["HR@3"]["mean"] == pytest.approx(0.5)
    paired = report["paired"]["against"]["backward"]
    assert paired["HR@3 liked"]["mean"] == pytest.approx(0.5)
    assert paired["HR@3 disliked"]["mean"] == pytest.approx(1.0)
    assert paired["HR@3 gap"]["mean"] == pytest.approx(0.5 - 1.0)
    on_disk = json.loads((tmp_path / "report.json").read_text())
    assert on_disk["feedback"]["gap"]["backward"]["HR@3"]["mean"] == pytest.approx(0.5)
    assert (tmp_path / "metrics.png").stat().st_size > 0

    table = format_feedback_table(report)
    assert "HR@3 liked" in table and "HR@3 gap" in table
    forward_row = next(line for line in table.splitlines() if line.startswith("forward"))
    assert forward_row.split()[1:5] == ["1.0000", "0.7500", "1.0000", "0.6309"]
    assert "liked=2 (rated >= 4), disliked=1 (rated <= 2)" in table
    assert "HR@3 disliked +1.0000" in format_paired(report["paired"]["against"], "forward")


def test_unrated_data_has_no_feedback_groups():
    settings = EvalSettings(split="test", k_values=[1, 3], baselines=[], beyond_accuracy=False, head_fraction=None)
    report = evaluate_rankers("forward", _fixed(ITEMS), _dataset(None), settings, show_progress=False)
    assert "feedback" not in report and "liked" not in report["models"]["forward"]
    assert format_feedback_table(report) == ""


def test_gap_interval_resamples_each_group_on_its_own():
    stats = bootstrap_gap_interval([1.0, 1.0], [0.0, 0.0, 0.0], num_samples=500)
    assert stats["mean"] == stats["low"] == stats["high"] == 1.0 and stats["users"] == 5
    # One group with spread: the gap's interval is that group's mean interval, shifted.
    spread = bootstrap_gap_interval([0.0, 1.0], [0.0], num_samples=4000, seed=1)
    assert spread["low"] == 0.0 and spread["high"] == 1.0 and spread["mean"] == 0.5
    with pytest.raises(ValueError, match="non-empty"):
        bootstrap_gap_interval([], [1.0])


def test_paired_feedback_leaves_out_a_missing_group():
    ranks = {"a": [0, 5, None], "b": [None, 0, 0]}
    out = paired_feedback(ranks, "a", 10, {"liked": [0, 1]}, num_samples=200)
    assert set(out["b"]) == {"NDCG@10 liked", "HR@10 liked"}
    assert out["b"]["HR@10 liked"]["mean"] == pytest.approx(0.5)
    assert out["b"]["NDCG@10 liked"]["mean"] == pytest.approx((1 + 1 / math.log2(7) - 0 - 1) / 2)


def test_sasrec_on_liked_targets_is_a_baseline_by_name():
    from rlrec.evaluation.run import baseline_rankers
    from rlrec.utils.errors import ConfigError

    settings = EvalSettings(baselines=["sasrec_liked"], sasrec_epochs=1, sasrec_valid_patience=0, sasrec_max_len=4,
                            sasrec_hidden_size=8)
    dataset = _dataset(RATINGS)
    dataset.train = [Example(ex.user_id, ex.history, ex.target, rating=5.0, history_ratings=[4.0])
                     for ex in dataset.train]
    ranker = baseline_rankers(dataset, settings, device="cpu", show_progress=False)["sasrec_liked"]
    assert ranker.model.config.liked_targets_only and len(ranker.rank([["d"]], 3)[0]) == 3
    assert "sasrec" in EvalSettings().baselines and "sasrec_liked" not in EvalSettings().baselines
    with pytest.raises(ConfigError, match="sasrec_liked"):
        EvalSettings(baselines=["sasrec_loved"])
