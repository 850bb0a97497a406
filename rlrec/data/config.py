"""`PrepareConfig`: every setting of the `rlrec prepare` stage, documented field by field (TRL style).

A recipe YAML (`recipes/<name>/prepare.yaml`) sets these fields and flags override them; the field
help is what `rlrec prepare --help` prints, so it is the reference for each option.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rlrec.data.feedback import DEFAULT_DISLIKED_THRESHOLD, DEFAULT_LIKED_THRESHOLD, FeedbackRule
from rlrec.utils.defaults import DEFAULT_SEED
from rlrec.utils.errors import ConfigError

SOURCES = ("movielens", "amazon2018", "amazon2023", "minionerec_csv")


@dataclass
class PrepareConfig:
    """Settings of the dataset stage: read a raw source, filter it, split it chronologically per user."""

    # Input and output.
    output_dir: str = field(
        default="runs/ml-100k/data",
        metadata={"help": "Folder that receives items.jsonl, train/valid/test.jsonl and manifest.json "
                  "(written atomically: a failed run leaves nothing behind)."},
    )
    overwrite_output_dir: bool = field(
        default=False, metadata={"help": "Replace an output_dir that already holds something (refused otherwise)."}
    )
    source: str = field(
        default="movielens",
        metadata={"help": "Raw data format: `movielens` (RecBole atomic files ml-100k.inter/.item), "
                  "`amazon2018` (reviews_*.json[.gz] or <Category>[_5].json[.gz] + meta_*.json[.gz]; "
                  "2014-style Python-literal lines accepted), `amazon2023` (<Category>.jsonl[.gz] + "
                  "meta_<Category>.jsonl[.gz]) or `minionerec_csv` (MiniOneRec's ready-made "
                  "train/valid/test CSV splits)."},
    )
    data_path: str | None = field(
        default=None,
        metadata={"help": "Folder (or, for Amazon, the reviews file) holding the raw data. None with "
                  "`movielens`: the MovieLens-100k copy inside the recbole wheel."},
    )
    category: str | None = field(
        default=None,
        metadata={"help": "Amazon category (e.g. `Office_Products`) picking the files in `data_path`, or the "
                  "file stem of MiniOneRec CSVs; may be left out when the folder holds only one."},
    )
    reviews_file: str | None = field(
        default=None,
        metadata={"help": "Amazon: the reviews file (relative to `data_path` or absolute), when its name does "
                  "not follow the usual pattern."},
    )
    meta_file: str | None = field(
        default=None,
        metadata={"help": "Amazon: the metadata file (relative to `data_path` or absolute), when its name does "
                  "not follow the usual pattern."},
    )
    item_info_file: str | None = field(
        default=None,
        metadata={"help": "minionerec_csv: item file giving titles (info/*.txt as `sid<TAB>title<TAB>id` or "
                  "`title<TAB>id`, or index/*.item.json); default: found next to the splits when unambiguous."},
    )

    # Item and interaction policies.
    drop_items_without_text: bool = field(
        default=True,
        metadata={"help": "Drop items that have no title (and their interactions), counting them; false: "
                  "fail naming the first such item."},
    )
    drop_unknown_items: bool = field(
        default=True,
        metadata={"help": "Drop interactions whose item is missing from the item/metadata file, counting "
                  "them; false: fail naming the file and line."},
    )

    # Filtering.
    min_timestamp: int | None = field(
        default=None,
        metadata={"help": "Keep interactions at or after this Unix time in seconds (Amazon 2023 milliseconds "
                  "are converted to seconds on reading). None: no lower bound."},
    )
    max_timestamp: int | None = field(
        default=None,
        metadata={"help": "Keep interactions at or before this Unix time in seconds. None: no upper bound."},
    )
    dedupe_consecutive: bool = field(
        default=True,
        metadata={"help": "Collapse a user's repeated consecutive interactions with the same item into the "
                  "first one (duplicate reviews would otherwise make 'repeat the last item' a target)."},
    )
    user_k_core: int = field(
        default=5,
        metadata={"help": "Iterative k-core: every kept user has at least this many interactions."},
    )
    item_k_core: int = field(
        default=5,
        metadata={"help": "Iterative k-core: every kept item has at least this many interactions."},
    )

    # Splitting.
    history_cut: int = field(
        default=20,
        metadata={"help": "Keep the last this many items of a history (oldest dropped first)."},
    )
    cold_item_fraction: float = field(
        default=0.0,
        metadata={"help": "Hold this fraction of the items (drawn with `seed`) out of training, for a cold-start "
                  "split: train examples targeting them are dropped and they are removed from train histories, "
                  "so valid/test examples targeting them are cold. 0: no hold-out (SETRec's cold split: 0.1)."},
    )
    liked_threshold: float = field(
        default=DEFAULT_LIKED_THRESHOLD,
        metadata={"help": "A target rated at least this is `liked` (4 on MovieLens' and Amazon's 1-5 stars); "
                  "recorded in the manifest, so evaluation, the `rating` reward, DPO's disliked pairs and the "
                  "liked-only baselines all read the same rule. Ignored by sources without ratings."},
    )
    disliked_threshold: float = field(
        default=DEFAULT_DISLIKED_THRESHOLD,
        metadata={"help": "A target rated at most this is `disliked` (2 on 1-5 stars); between the two: neutral."},
    )
    seed: int = field(
        default=DEFAULT_SEED,
        metadata={"help": "Random seed of `cold_item_fraction`'s draw, recorded in the manifest (the rest is "
                  "deterministic: ties in time keep file order)."},
    )

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ConfigError(f"prepare: `source` is {self.source!r}; expected one of {', '.join(SOURCES)}")
        if not self.output_dir:
            raise ConfigError("prepare: `output_dir` is empty; expected a folder path")
        if self.source != "movielens" and not self.data_path:
            raise ConfigError(f"prepare: `data_path` is required with source={self.source!r} "
                              "(the folder holding the raw files)")
        for name in ("user_k_core", "item_k_core", "history_cut"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"prepare: `{name}` is {value!r}; expected an integer >= 1")
        if not 0.0 <= self.cold_item_fraction < 1.0:
            raise ConfigError(f"prepare: `cold_item_fraction` is {self.cold_item_fraction!r}; expected a number "
                              "in [0, 1)")
        self.feedback_rule()  # the two thresholds in the right order
        if (self.min_timestamp is not None and self.max_timestamp is not None
                and self.min_timestamp > self.max_timestamp):
            raise ConfigError(f"prepare: `min_timestamp` ({self.min_timestamp}) is after `max_timestamp` "
                              f"({self.max_timestamp}); expected min_timestamp <= max_timestamp")

    def feedback_rule(self) -> FeedbackRule:
        """The liked / disliked rule this dataset's manifest records."""
        try:
            return FeedbackRule(float(self.liked_threshold), float(self.disliked_threshold))
        except ConfigError as err:
            raise ConfigError(f"prepare: {err}") from None
