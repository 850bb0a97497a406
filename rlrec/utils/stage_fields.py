"""The fields many stages share, declared once: each stage's config inherits them instead of repeating them.

`DatasetArguments` is every stage that reads a prepared dataset (`rlrec prepare`'s output): `sid`, `sft`, `grpo`,
`dpo`, `rewards`, `evaluate`, `setrec`. `ModelDataArguments` adds the SID index of a stage that starts from a
trained model (`grpo`, `dpo`, `rewards`, `evaluate`): that model's own `sid/` unless another is named. The stages
whose dataset is optional (`export`, `recommend`, `cache`: None reads it from the model's manifest) declare
their own `dataset_dir`, since None means something different there.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEFAULT_DATASET_DIR = "runs/ml-100k/data"


@dataclass
class DatasetArguments:
    """The prepared dataset a stage reads."""

    dataset_dir: str = field(
        default=DEFAULT_DATASET_DIR,
        metadata={"help": "Prepared dataset folder written by `rlrec prepare` (items.jsonl, splits, manifest)."},
    )


@dataclass
class ModelDataArguments(DatasetArguments):
    """The prepared dataset and the SID index of a stage that starts from a trained model."""

    sid_dir: str | None = field(
        default=None,
        metadata={"help": "SID index folder the model was trained with; None: the `sid/` saved in the model folder."},
    )
