"""Offline evaluation: HR@K / NDCG@K with warm/cold and head/tail breakdowns, baselines, reports."""

from rlrec.evaluation.baselines import (
    BASELINES,
    PopularityRecommender,
    Recommender,
    ScorerRecommender,
    score_to_topk,
)
from rlrec.evaluation.evaluate import EVAL_SPLITS, evaluate_recommender
from rlrec.evaluation.groups import example_groups, head_items, item_popularity
from rlrec.evaluation.metrics import (
    DEFAULT_K_VALUES,
    MetricAccumulator,
    compute_metrics,
    metrics_from_ranks,
    target_rank,
)
from rlrec.evaluation.report import build_report, format_table, plot_metrics, write_report

__all__ = [
    "BASELINES",
    "EVAL_SPLITS",
    "DEFAULT_K_VALUES",
    "MetricAccumulator",
    "PopularityRecommender",
    "Recommender",
    "ScorerRecommender",
    "build_report",
    "compute_metrics",
    "evaluate_recommender",
    "example_groups",
    "format_table",
    "head_items",
    "item_popularity",
    "metrics_from_ranks",
    "plot_metrics",
    "score_to_topk",
    "target_rank",
    "write_report",
]
