"""Datasets: readers of raw sources, filtering, chronological splits, the prepared-folder format."""

from rlrec.data.schema import Example, Item, PreparedDataset

__all__ = ["Example", "Item", "PreparedDataset"]
