"""Run any `Ranker` over a split's examples, batch by batch, and return its metrics."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from rlrec.data.feedback import FeedbackRule
from rlrec.data.schema import Example
from rlrec.evaluation.beyond import BeyondAccuracyAccumulator
from rlrec.evaluation.groups import example_groups
from rlrec.evaluation.metrics import DEFAULT_K_VALUES, MetricAccumulator, check_k_values
from rlrec.ranking import Ranker, ranked_ids

EVAL_SPLITS = ("valid", "test")  # the splits a trained model is evaluated on
BASELINES = ("popularity", "sasrec")  # the baselines a report sets beside a model by default
# Also available by name: SASRec trained on liked targets only (rated data; the feedback study's baseline).
OPTIONAL_BASELINES = ("sasrec_liked",)


def evaluate_ranker(ranker: Ranker, examples: Sequence[Example],
                         k_values: Iterable[int] = DEFAULT_K_VALUES, batch_size: int = 256,
                         head: set[str] | None = None,
                         on_batch: Callable[[int], object] | None = None,
                         ranks_out: list[int | None] | None = None,
                         pool: Collection[str] | None = None,
                         beyond: BeyondAccuracyAccumulator | None = None,
                         feedback: FeedbackRule | None = None) -> dict[str, Any]:
    """HR@K / NDCG@K of `ranker` on `examples`, overall and per warm/cold (head/tail given `head`, liked/neutral/
    disliked given the dataset's `feedback` rule).

    The ranker is asked for max(K) items once per example (within `pool` when given, the cold-start
    protocol); every smaller K reads a prefix. The history is not excluded: a SID model decodes over every
    item and may re-recommend one the user has, so every model plays by that rule. `on_batch(n)` is called
    after each batch of `batch_size` examples (e.g. a tqdm bar's `update`). `ranks_out`, when given,
    receives each example's target rank (0-based; None outside the top max(K)) in example order: what a
    paired comparison of two rankers needs. `beyond`, when given, also reads every ranked list: its
    metrics (coverage, tail share, novelty, diversity, popularity at each of its K) join the `all` group.
    """
    ks = check_k_values(k_values)
    acc = MetricAccumulator(ks)
    for start in range(0, len(examples), batch_size):
        batch = examples[start: start + batch_size]
        ranked = ranked_ids(ranker.rank([ex.history for ex in batch], ks[-1], pool=pool))
        ranks = acc.add(ranked, [ex.target for ex in batch], example_groups(batch, head, feedback))
        if beyond is not None:
            beyond.add(ranked)
        if ranks_out is not None:
            ranks_out.extend(ranks)
        if on_batch is not None:
            on_batch(len(batch))
    result = acc.compute()
    if beyond is not None:
        result["all"].update(beyond.compute())
    return result
