"""Paired comparison of two recommenders on the same users: per-user differences and a bootstrap interval.

Two models ranked on the same users are not two independent samples: a user whose target is easy is
easy for both. The per-user difference of a metric removes that shared part, so its mean has a much
narrower interval than the two means' separate intervals would suggest, and "A beats B" is a claim
about that mean. The interval is the percentile bootstrap over users (resample users with replacement,
recompute the mean difference), seeded so that a report is reproducible.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from rlrec.evaluation.metrics import hit_at_k, ndcg_at_k

DEFAULT_SAMPLES = 10_000
PAIRED_METRICS = ("NDCG", "HR")


def per_user_metric(ranks: Sequence[int | None], metric: str, k: int) -> np.ndarray:
    """HR@k or NDCG@k of every user from the 0-based rank of their target (None: not ranked)."""
    score = {"HR": hit_at_k, "NDCG": ndcg_at_k}[metric]
    return np.array([score(rank, k) for rank in ranks], dtype=np.float64)


def bootstrap_mean_interval(differences: Sequence[float], num_samples: int = DEFAULT_SAMPLES,
                            confidence: float = 0.95, seed: int = 0) -> dict[str, float]:
    """Mean of `differences` and its percentile-bootstrap interval; `p_below_zero` is the bootstrap share <= 0."""
    values = np.asarray(differences, dtype=np.float64)
    if values.ndim != 1 or not len(values):
        raise ValueError("expected a non-empty 1-d sequence of per-user differences")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence}; expected a number in (0, 1)")
    rng = np.random.default_rng(seed)
    means = np.empty(num_samples)
    for start in range(0, num_samples, 1000):  # chunks keep the index matrix small for large test sets
        stop = min(start + 1000, num_samples)
        means[start:stop] = values[rng.integers(0, len(values), size=(stop - start, len(values)))].mean(axis=1)
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(means, [tail, 1.0 - tail], method="inverted_cdf")
    return {"mean": float(values.mean()), "low": float(low), "high": float(high),
            "p_below_zero": float((means <= 0).mean()), "users": int(len(values))}


def paired_comparison(ranks: Mapping[str, Sequence[int | None]], main: str, k: int,
                      metrics: Sequence[str] = PAIRED_METRICS, seed: int = 0,
                      num_samples: int = DEFAULT_SAMPLES) -> dict[str, dict[str, Any]]:
    """`{other: {"NDCG@k": interval, "HR@k": interval}}` of `main - other` per user, for every other model.

    `ranks[name]` holds each user's target rank in one shared user order (the caller's duty).
    """
    base = ranks[main]
    out: dict[str, dict[str, Any]] = {}
    for name, other in ranks.items():
        if name == main:
            continue
        if len(other) != len(base):
            raise ValueError(f"{name!r} ranked {len(other)} users but {main!r} ranked {len(base)}")
        out[name] = {
            f"{metric}@{k}": bootstrap_mean_interval(
                per_user_metric(base, metric, k) - per_user_metric(other, metric, k), num_samples, seed=seed)
            for metric in metrics
        }
    return out


def bootstrap_gap_interval(first: Sequence[float], second: Sequence[float], num_samples: int = DEFAULT_SAMPLES,
                           confidence: float = 0.95, seed: int = 0) -> dict[str, float]:
    """mean(first) - mean(second) of two disjoint groups of users, each resampled on its own (stratified).

    The liked - disliked gap of one model, or how two models' gaps differ (each user's difference between
    the models, liked users against disliked users), is a difference of two group means: resampling
    within each group keeps the group sizes the data has.
    """
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1 or not len(a) or not len(b):
        raise ValueError("expected two non-empty 1-d sequences of per-user values")
    rng = np.random.default_rng(seed)
    gaps = np.empty(num_samples)
    for start in range(0, num_samples, 1000):
        stop = min(start + 1000, num_samples)
        draws = stop - start
        gaps[start:stop] = (a[rng.integers(0, len(a), size=(draws, len(a)))].mean(axis=1)
                            - b[rng.integers(0, len(b), size=(draws, len(b)))].mean(axis=1))
    tail = (1.0 - confidence) / 2
    low, high = np.quantile(gaps, [tail, 1.0 - tail], method="inverted_cdf")
    return {"mean": float(a.mean() - b.mean()), "low": float(low), "high": float(high),
            "p_below_zero": float((gaps <= 0).mean()), "users": int(len(a) + len(b))}


def paired_feedback(ranks: Mapping[str, Sequence[int | None]], main: str, k: int,
                    members: Mapping[str, Sequence[int]], metrics: Sequence[str] = PAIRED_METRICS,
                    seed: int = 0, num_samples: int = DEFAULT_SAMPLES) -> dict[str, dict[str, Any]]:
    """`{other: {"NDCG@k liked": interval, ..., "HR@k gap": interval}}` of `main - other` per user, within each
    feedback group of `members` (`{"liked": [user positions], "disliked": [...]}`) and, with both groups, of
    the liked - disliked gap (`bootstrap_gap_interval`)."""
    base = ranks[main]
    out: dict[str, dict[str, Any]] = {}
    for name, other in ranks.items():
        if name == main:
            continue
        out[name] = {}
        for metric in metrics:
            diff = per_user_metric(base, metric, k) - per_user_metric(other, metric, k)
            for group, positions in members.items():
                if len(positions):
                    out[name][f"{metric}@{k} {group}"] = bootstrap_mean_interval(diff[list(positions)],
                                                                                 num_samples, seed=seed)
            if len(members.get("liked", ())) and len(members.get("disliked", ())):
                out[name][f"{metric}@{k} gap"] = bootstrap_gap_interval(
                    diff[list(members["liked"])], diff[list(members["disliked"])], num_samples, seed=seed)
    return out


def paired_values(values: Mapping[str, Mapping[str, Sequence[float]]], main: str, seed: int = 0,
                  num_samples: int = DEFAULT_SAMPLES) -> dict[str, dict[str, Any]]:
    """`{other: {metric: interval}}` of `main - other` for per-user values of any metric (tail share, novelty, ...).

    `values[name][metric]` holds one value per user in the shared user order; a user whose value is NaN for
    either model (a metric undefined on that list) is left out of that metric's pairs.
    """
    base = values[main]
    out: dict[str, dict[str, Any]] = {}
    for name, other in values.items():
        if name == main:
            continue
        out[name] = {}
        for metric, mine in base.items():
            if metric not in other:
                continue
            a, b = np.asarray(mine, dtype=np.float64), np.asarray(other[metric], dtype=np.float64)
            if len(a) != len(b):
                raise ValueError(f"{name!r} has {len(b)} values of {metric} but {main!r} has {len(a)}")
            both = ~(np.isnan(a) | np.isnan(b))
            if both.any():
                out[name][metric] = bootstrap_mean_interval(a[both] - b[both], num_samples, seed=seed)
    return out


def format_paired(paired: Mapping[str, Mapping[str, Mapping[str, float]]], main: str) -> str:
    """One line per compared model: `main - other` with its 95% interval, and whether it excludes 0."""
    lines = [f"paired difference per user ({main} - other), bootstrap 95% interval:"]
    for name, by_metric in paired.items():
        accuracy, feedback, beyond = [], [], []
        for metric, stats in by_metric.items():
            verdict = "above 0" if stats["low"] > 0 else "below 0" if stats["high"] < 0 else "includes 0"
            cell = f"{metric} {stats['mean']:+.4f} [{stats['low']:+.4f}, {stats['high']:+.4f}] ({verdict})"
            if metric.partition("@")[0] not in PAIRED_METRICS:
                beyond.append(cell)
            else:
                (feedback if " " in metric else accuracy).append(cell)  # `HR@10 liked`: a feedback group
        lines.append(f"  vs {name}: " + "   ".join(accuracy))
        indent = " " * len(f"  vs {name}: ")
        lines.extend(indent + "   ".join(feedback[i:i + 3]) for i in range(0, len(feedback), 3))
        if beyond:
            lines.append(indent + "   ".join(beyond))
    return "\n".join(lines)
