"""`rlrec evaluate`: rank the items of a split with a trained model and its baselines, write a report.

    rlrec evaluate --config recipes/ml-100k/evaluate.yaml [--model_path runs/ml-100k/sft --split test ...]

The model decodes by constrained beam search over the SID trie (`rlrec.ranking.SIDRanker`), so every candidate
is a real item; the popularity and SASRec baselines rank the same examples of the same split, so the
numbers compare like for like. HR@K and NDCG@K come out overall, for warm and cold targets and for
head and tail (train popularity) targets. `output_dir` receives:

- `report.json`: `rlrec.evaluation.report` describes it; `models` holds `model`, `popularity`, `sasrec`;
  `metadata` records the checkpoint, the SID index, the split, the settings and the seconds per model;
- `metrics.png`: the metrics against K and per group.

The two files are renamed into place together, so a failed run leaves no report behind. The work is
`rlrec.evaluation.run.run_evaluation`, which the training stages' end-of-training evaluation calls too.
"""

from __future__ import annotations

from typing import Any

from trl import TrlParser

from rlrec.evaluation.run import EvaluateConfig, run_evaluation


def make_parser() -> TrlParser:
    return TrlParser((EvaluateConfig,))


def main(config: EvaluateConfig) -> dict[str, Any]:
    return run_evaluation(config)


if __name__ == "__main__":  # `python rlrec/scripts/evaluate.py ...` runs as `rlrec evaluate ...`: the same checks
    from rlrec.cli import run_script

    run_script("evaluate")
