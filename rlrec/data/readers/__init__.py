"""Readers of raw sources. Each returns the common raw form (`rlrec.data.raw.RawData`)."""

from __future__ import annotations

from rlrec.data.config import PrepareConfig
from rlrec.data.raw import RawData
from rlrec.data.readers.amazon2018 import read_amazon2018
from rlrec.data.readers.amazon2023 import read_amazon2023
from rlrec.data.readers.minionerec import read_minionerec_csv
from rlrec.data.readers.movielens import read_movielens

__all__ = ["read_amazon2018", "read_amazon2023", "read_minionerec_csv", "read_movielens", "read_source"]


def read_source(config: PrepareConfig) -> RawData:
    """Read the source `config.source` names, with the shared item policies of `config`."""
    policies = {
        "drop_unknown_items": config.drop_unknown_items,
        "drop_items_without_text": config.drop_items_without_text,
    }
    if config.source == "movielens":
        return read_movielens(config.data_path, **policies)
    if config.source in ("amazon2018", "amazon2023"):
        reader = read_amazon2018 if config.source == "amazon2018" else read_amazon2023
        return reader(config.data_path, category=config.category, reviews_file=config.reviews_file,
                      meta_file=config.meta_file, **policies)
    if config.source == "minionerec_csv":
        return read_minionerec_csv(config.data_path, category=config.category,
                                   item_info_file=config.item_info_file, **policies)
    raise AssertionError(f"unhandled source {config.source!r}")  # PrepareConfig validates `source`
