"""Datasets: readers of raw sources, filtering, chronological splits, the prepared-folder format."""

from rlrec.data.config import PrepareConfig
from rlrec.data.pipeline import build_dataset
from rlrec.data.raw import Interaction, RawData
from rlrec.data.schema import Example, Item, PreparedDataset

__all__ = ["Example", "Interaction", "Item", "PrepareConfig", "PreparedDataset", "RawData", "build_dataset"]
