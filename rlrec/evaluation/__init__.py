"""Offline evaluation: HR@K / NDCG@K with warm/cold and head/tail breakdowns, and reports.

What is evaluated is any `rlrec.ranking.Ranker` (SID models, SETRec, popularity, SASRec)."""

from rlrec.evaluation.evaluate import BASELINES, EVAL_SPLITS, evaluate_ranker
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
    "build_report",
    "compute_metrics",
    "evaluate_ranker",
    "example_groups",
    "format_table",
    "head_items",
    "item_popularity",
    "metrics_from_ranks",
    "plot_metrics",
    "target_rank",
    "write_report",
]
