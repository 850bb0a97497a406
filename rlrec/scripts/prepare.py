"""`rlrec prepare`: read a raw source, filter it, split it per user in time, write the dataset folder.

    rlrec prepare --config recipes/ml-100k/prepare.yaml [--output_dir runs/ml-100k/data] [--user_k_core 10]

The folder (`rlrec.data.schema` describes it) is written to a temporary sibling and renamed into
place only when complete, so a failed run never leaves a half-written dataset behind.
"""

from __future__ import annotations

import logging
import time

from trl import TrlParser

from rlrec.data.config import PrepareConfig
from rlrec.data.pipeline import build_dataset
from rlrec.data.schema import PreparedDataset
from rlrec.utils.io import atomic_output_dir
from rlrec.utils.output_dirs import check_output_dir

logger = logging.getLogger(__name__)


def make_parser() -> TrlParser:
    return TrlParser((PrepareConfig,))


def main(config: PrepareConfig) -> PreparedDataset:
    start = time.perf_counter()
    check_output_dir(config.output_dir, overwrite=config.overwrite_output_dir, stage="prepare")
    dataset = build_dataset(config)
    with atomic_output_dir(config.output_dir) as tmp:
        dataset.save(tmp)
    print(format_stats(dataset.manifest, config.output_dir, time.perf_counter() - start), flush=True)
    return dataset


def format_stats(manifest: dict, output_dir: str, seconds: float | None = None) -> str:
    """A small table of what was read, what survived filtering, the splits and every drop by reason."""
    c = manifest["counts"]
    source = manifest["config"]["source"]
    took = f" in {seconds:.1f}s" if seconds is not None else ""
    rows = [
        ("", "users", "items", "interactions"),
        ("raw", c["raw_users"], c["raw_items"], c["raw_interactions"]),
        ("after filtering", c["users"], c["items"], c["interactions"]),
    ]
    widths = [max(len(str(r[i])) for r in rows) for i in range(4)]
    lines = [f"rlrec prepare: {source} -> {output_dir}{took}"]
    for label, *values in rows:
        cells = "".join(f"  {str(v):>{w}}" for v, w in zip(values, widths[1:], strict=True))
        lines.append(f"  {label:<{widths[0]}}{cells}")
    lines.append(f"  examples: train {c['train_examples']}, valid {c['valid_examples']} "
                 f"({c['cold_valid_targets']} cold), test {c['test_examples']} ({c['cold_test_targets']} cold)")
    ratings = manifest.get("ratings")
    if ratings:
        test = ratings["targets"]["test"]
        lines.append(f"  ratings {ratings['scale'][0]:g}-{ratings['scale'][1]:g}; test targets: {test['liked']} liked "
                     f"(>= {ratings['liked_threshold']:g}), {test['neutral']} neutral, {test['disliked']} disliked "
                     f"(<= {ratings['disliked_threshold']:g}), {test['unrated']} unrated")
    else:
        lines.append("  ratings: none in the source (the feedback metrics and rewards are off)")
    dropped = manifest.get("dropped") or {}
    if dropped:
        lines.append("  dropped:")
        width = max(len(k) for k in dropped)
        lines += [f"    {k:<{width}}  {v}" for k, v in dropped.items()]
    else:
        lines.append("  dropped: nothing")
    return "\n".join(lines)


if __name__ == "__main__":  # `python rlrec/scripts/prepare.py ...` runs as `rlrec prepare ...`: the same checks
    from rlrec.cli import run_script

    run_script("prepare")
