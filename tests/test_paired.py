"""Paired bootstrap comparison of two recommenders on the same users."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rlrec.evaluation.paired import bootstrap_mean_interval, format_paired, paired_comparison, per_user_metric


def test_interval_of_a_hand_computed_case():
    """Differences [0, 0, 1]: a resample's mean is k/3 with k ~ Binomial(3, 1/3), so P(mean = 0) = 8/27 and
    P(mean = 1) = 1/27. The 2.5% quantile is 0 (8/27 > 2.5%) and, since P(mean <= 2/3) = 26/27 < 97.5%,
    the 97.5% quantile is 1."""
    stats = bootstrap_mean_interval([0.0, 0.0, 1.0], num_samples=20_000, seed=3)
    assert stats["mean"] == pytest.approx(1 / 3)
    assert stats["low"] == 0.0 and stats["high"] == 1.0
    assert stats["p_below_zero"] == pytest.approx(8 / 27, abs=0.01)
    constant = bootstrap_mean_interval([0.25] * 7)
    assert constant["low"] == constant["high"] == constant["mean"] == 0.25 and constant["p_below_zero"] == 0


def test_interval_matches_the_normal_approximation_on_many_users():
    rng = np.random.default_rng(0)
    diffs = rng.normal(0.01, 0.1, size=2000)
    stats = bootstrap_mean_interval(diffs, seed=1)
    half = 1.96 * diffs.std(ddof=1) / math.sqrt(len(diffs))
    assert stats["low"] == pytest.approx(diffs.mean() - half, abs=0.15 * half)
    assert stats["high"] == pytest.approx(diffs.mean() + half, abs=0.15 * half)


def test_paired_comparison_reads_ranks_per_user():
    ranks = {"a": [0, None, 3, 1], "b": [1, None, None, 1], "c": [0, None, 3, 1]}
    out = paired_comparison(ranks, "a", k=5, num_samples=2000)
    assert set(out) == {"b", "c"}
    hr_a, hr_b = per_user_metric(ranks["a"], "HR", 5), per_user_metric(ranks["b"], "HR", 5)
    assert out["b"]["HR@5"]["mean"] == pytest.approx((hr_a - hr_b).mean()) == pytest.approx(0.25)
    ndcg = per_user_metric(ranks["a"], "NDCG", 5) - per_user_metric(ranks["b"], "NDCG", 5)
    assert out["b"]["NDCG@5"]["mean"] == pytest.approx(ndcg.mean())
    assert out["c"]["NDCG@5"] == {"mean": 0.0, "low": 0.0, "high": 0.0, "p_below_zero": 1.0, "users": 4}
    assert "vs b" in format_paired(out, "a") and "includes 0" in format_paired(out, "a")
    with pytest.raises(ValueError, match="ranked 2 users"):
        paired_comparison({"a": [0, 1, 2], "b": [0, 1]}, "a", k=5)
