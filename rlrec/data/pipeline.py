"""From raw data to a `PreparedDataset`: filter, split, label cold targets, account for every drop.

`build_dataset(config)` reads the source and returns the dataset in memory with its manifest;
`rlrec prepare` (rlrec/scripts/prepare.py) only adds writing it to disk and printing the statistics.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

import rlrec
from rlrec.data.config import PrepareConfig
from rlrec.data.feedback import rating_summary
from rlrec.data.filtering import Sequences, dedupe_consecutive, group_by_user, in_time_window, k_core
from rlrec.data.raw import RawData
from rlrec.data.readers import read_source
from rlrec.data.schema import Example, Item, PreparedDataset
from rlrec.data.split import MIN_SPLIT_LENGTH, hold_out_items, leave_one_out, mark_cold, train_items, truncate
from rlrec.utils.errors import DataError

logger = logging.getLogger(__name__)


def build_dataset(config: PrepareConfig) -> PreparedDataset:
    """Read `config.source` and turn it into train/valid/test examples plus the item catalog."""
    raw = read_source(config)
    logger.info("read %s: %d users, %d items, %d interactions", config.source, raw.raw_counts["users"],
                raw.raw_counts["items"], raw.raw_counts["interactions"])
    return process_raw(raw, config)


def process_raw(raw: RawData, config: PrepareConfig) -> PreparedDataset:
    """Filter and split data already in the common raw form (what any reader, or a test, produces)."""
    if raw.splits is not None:
        return _from_splits(raw, config)
    return _from_interactions(raw, config)


def _from_interactions(raw: RawData, config: PrepareConfig) -> PreparedDataset:
    dropped = dict(raw.dropped)
    interactions, n = in_time_window(raw.interactions, config.min_timestamp, config.max_timestamp)
    if n:
        dropped["outside_time_window"] = n
    sequences = group_by_user(interactions)
    if config.dedupe_consecutive:
        sequences, n = dedupe_consecutive(sequences)
        if n:
            dropped["consecutive_duplicates"] = n
    before = _describe(sequences)
    core = k_core(sequences, config.user_k_core, config.item_k_core)
    if core.dropped_interactions:
        dropped["k_core_interactions"] = core.dropped_interactions
        dropped["k_core_users"] = core.dropped_users
        dropped["k_core_items"] = core.dropped_items
    splits = leave_one_out(core.sequences, config.history_cut)
    if splits.short_users:
        dropped["users_too_short_to_split"] = splits.short_users
        dropped["interactions_of_users_too_short"] = splits.short_user_interactions
    if not splits.test:
        raise DataError(
            f"{', '.join(raw.files)}: empty histories after filtering: no user keeps the {MIN_SPLIT_LENGTH} "
            f"interactions a leave-one-out split needs ({before} before k-core, "
            f"{_describe(core.sequences)} after user_k_core={config.user_k_core}, "
            f"item_k_core={config.item_k_core}); lower the k-cores or widen the time window"
        )
    kept_sequences = {u: s for u, s in core.sequences.items() if len(s) >= MIN_SPLIT_LENGTH}
    used = {x.item_id for seq in kept_sequences.values() for x in seq}
    items = {item_id: item for item_id, item in raw.items.items() if item_id in used}
    counts = {
        "users": len(kept_sequences),
        "items": len(items),
        "interactions": sum(len(s) for s in kept_sequences.values()),
        "k_core_passes": core.passes,
    }
    return _finish(raw, config, items, splits.train, splits.valid, splits.test, counts, dropped)


def _from_splits(raw: RawData, config: PrepareConfig) -> PreparedDataset:
    """Pre-made splits (MiniOneRec) are kept as they are: only histories are cut to `history_cut`."""
    ignored = [name for name, value in (("min_timestamp", config.min_timestamp),
                                        ("max_timestamp", config.max_timestamp)) if value is not None]
    if ignored:
        logger.warning("source %s ships ready-made splits: %s not applied", config.source, ", ".join(ignored))
    logger.info("source %s ships ready-made splits: kept as they are (no k-core, dedupe or leave-one-out)",
                config.source)
    assert raw.splits is not None
    splits: dict[str, list[Example]] = {}
    for name, examples in raw.splits.items():
        for ex in examples:
            ex.history = truncate(ex.history, config.history_cut)
            if ex.history_ratings is not None:
                ex.history_ratings = truncate(ex.history_ratings, config.history_cut)
        splits[name] = examples
    if not splits["test"]:
        raise DataError(f"{', '.join(raw.files)}: empty test split after dropping items (see the counts above)")
    users = {ex.user_id for examples in splits.values() for ex in examples}
    counts = {
        "users": len(users),
        "items": len(raw.items),
        "interactions": sum(len(examples) for examples in splits.values()),
    }
    return _finish(raw, config, raw.items, splits["train"], splits["valid"], splits["test"], counts,
                   dict(raw.dropped))


def _finish(raw: RawData, config: PrepareConfig, items: dict[str, Item], train: list[Example],
            valid: list[Example], test: list[Example], counts: dict[str, int],
            dropped: dict[str, int]) -> PreparedDataset:
    """Label cold targets and assemble the manifest (counts are flat: `raw_*`, kept, split sizes)."""
    held_out: set[str] = set()
    if config.cold_item_fraction:
        train, held_out, n = hold_out_items(train, items, config.cold_item_fraction, config.seed)
        dropped = {**dropped, "train_examples_of_held_out_items": n}
        logger.info("held %d items (%.0f%%) out of training: %d train examples dropped", len(held_out),
                    100 * config.cold_item_fraction, n)
    warm = train_items(train)
    cold_valid = mark_cold(valid, warm)
    cold_test = mark_cold(test, warm)
    all_counts = {f"raw_{k}": v for k, v in raw.raw_counts.items()}
    all_counts.update(counts)
    all_counts.update({
        "train_examples": len(train),
        "valid_examples": len(valid),
        "test_examples": len(test),
        "cold_valid_targets": cold_valid,
        "cold_test_targets": cold_test,
    })
    if config.cold_item_fraction:
        all_counts["held_out_items"] = len(held_out)
    manifest = {
        "stage": "prepare",
        "rlrec_version": rlrec.__version__,
        "config": asdict(config),
        "source_files": raw.files,
        "presplit": raw.splits is not None,
        "counts": all_counts,
        "dropped": dropped,
    }
    ratings = rating_summary(config.feedback_rule(), {"train": train, "valid": valid, "test": test})
    if ratings is not None:
        manifest["ratings"] = ratings
        logger.info("ratings %s..%s; test targets: %s", *ratings["scale"],
                    ", ".join(f"{n} {label}" for label, n in ratings["targets"]["test"].items()))
    return PreparedDataset(items=items, train=train, valid=valid, test=test, manifest=manifest)


def _describe(sequences: Sequences) -> str:
    n_items = len({x.item_id for seq in sequences.values() for x in seq})
    n = sum(len(seq) for seq in sequences.values())
    return f"{len(sequences)} users / {n_items} items / {n} interactions"
