"""Run any `Recommender` over a split's examples, batch by batch, and return its metrics."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from rlrec.data.schema import Example
from rlrec.evaluation.baselines import Recommender
from rlrec.evaluation.groups import example_groups
from rlrec.evaluation.metrics import DEFAULT_K_VALUES, MetricAccumulator, check_k_values

EVAL_SPLITS = ("valid", "test")  # the splits a trained model is evaluated on


def evaluate_recommender(recommender: Recommender, examples: Sequence[Example],
                         k_values: Iterable[int] = DEFAULT_K_VALUES, batch_size: int = 256,
                         head: set[str] | None = None,
                         on_batch: Callable[[int], object] | None = None,
                         ranks_out: list[int | None] | None = None) -> dict[str, Any]:
    """HR@K / NDCG@K of `recommender` on `examples`, overall and per warm/cold (and head/tail, given `head`).

    The recommender is asked for max(K) items once per example; every smaller K reads a prefix.
    `on_batch(n)` is called after each batch with its number of examples (e.g. a tqdm bar's `update`):
    decoding a split with an LLM takes minutes, and a stage should show that it is moving.
    `ranks_out`, when given, receives each example's target rank (0-based; None outside the top max(K)) in
    example order: what a paired comparison of two recommenders needs.
    """
    ks = check_k_values(k_values)
    acc = MetricAccumulator(ks)
    for start in range(0, len(examples), batch_size):
        batch = examples[start: start + batch_size]
        ranked = recommender.recommend([ex.history for ex in batch], ks[-1])
        ranks = acc.add(ranked, [ex.target for ex in batch], example_groups(batch, head))
        if ranks_out is not None:
            ranks_out.extend(ranks)
        if on_batch is not None:
            on_batch(len(batch))
    return acc.compute()
