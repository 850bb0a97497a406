"""The prepared-dataset folder: the contract between `rlrec prepare` and every later stage.

A prepared dataset is a folder with five files:

- `items.jsonl`: one item per line, `{"item_id": str, "title": str, "text": str, "attributes": {...}}`.
  `text` is what gets embedded for Semantic IDs (title plus categories / genres / brand where
  present); `attributes` keeps the structured fields (categories, brand, year, ...).
- `train.jsonl`, `valid.jsonl`, `test.jsonl`: one example per line,
  `{"user_id": str, "history": [item_id, ...], "target": item_id, "timestamp": int}`; the history is
  chronological (oldest first) and already cut to the configured maximum length. Where the source rates
  interactions, `"rating": float` (the target's) and `"history_ratings": [float | null, ...]` (one per
  history item) are there too; a source without ratings leaves both out (see rlrec/data/feedback.py). Train holds one
  example per position of each user's training sequence; valid and test one per user (leave-one-out).
  Valid and test examples also carry `"cold": bool` (the target never occurs in any train example).
- `manifest.json`: `{"stage": "prepare", "rlrec_version", "config", "counts", "dropped", ...}`.

Item ids are strings everywhere (raw ids from the source, never re-numbered), so a SID index, an
evaluation report or an exported model can always be traced back to the source data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rlrec.data.feedback import FeedbackRule
from rlrec.utils.errors import DataError
from rlrec.utils.io import read_json, read_jsonl, write_json, write_jsonl
from rlrec.utils.output_dirs import MANIFEST

SPLITS = ("train", "valid", "test")


@dataclass
class Item:
    item_id: str
    title: str
    text: str
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class Example:
    """One next-item prediction: the user's history (oldest first) and the item that came next."""

    user_id: str
    history: list[str]
    target: str
    timestamp: int = 0
    cold: bool | None = None  # set on valid/test: the target never appears in train
    rating: float | None = None  # the user's rating of the target, where the source has one
    history_ratings: list[float | None] | None = None  # one per history item; None: the source has no ratings

    def to_json(self) -> dict[str, Any]:
        # Built by hand rather than with `asdict` (which deep-copies): train splits run to millions of rows.
        row: dict[str, Any] = {"user_id": self.user_id, "history": list(self.history), "target": self.target,
                               "timestamp": self.timestamp}
        if self.cold is not None:
            row["cold"] = self.cold
        if self.rating is not None:
            row["rating"] = self.rating
        if self.history_ratings is not None:
            row["history_ratings"] = list(self.history_ratings)
        return row


@dataclass
class PreparedDataset:
    items: dict[str, Item]
    train: list[Example]
    valid: list[Example]
    test: list[Example]
    manifest: dict[str, Any] = field(default_factory=dict)
    # Where `load` read it from, so a stage's error can name the file (None: built in memory).
    folder: Path | None = field(default=None, repr=False, compare=False)

    def split(self, name: str) -> list[Example]:
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r}; expected one of {', '.join(SPLITS)}")
        return getattr(self, name)

    def split_path(self, name: str) -> str:
        """The file split `name` was read from, for messages (`the NAME split` for a dataset built in memory)."""
        return str(self.folder / f"{name}.jsonl") if self.folder is not None else f"the {name} split"

    def require_examples(self, *names: str) -> None:
        """Raise DataError naming the file of the first split of `names` that holds no example.

        A stage that trains or evaluates on a split calls this first: an empty split otherwise fails deep inside
        a trainer (TRL's `next(iter(dataset))`) or after minutes of loading, without saying which file is empty.
        """
        for name in names:
            if not self.split(name):
                raise DataError(f"{self.split_path(name)}: the {name} split is empty; expected at least one "
                                "example (were the users filtered away? see the counts in manifest.json)")

    def item_texts(self) -> tuple[list[str], list[str]]:
        """Item ids and their texts, in the catalog's order."""
        ids = list(self.items)
        return ids, [self.items[i].text for i in ids]

    def save(self, folder: str | Path) -> None:
        """Write the five files into `folder` (the caller makes it atomic, see `atomic_output_dir`)."""
        folder = Path(folder)
        write_jsonl(folder / "items.jsonl", (asdict(item) for item in self.items.values()))
        for name in SPLITS:
            write_jsonl(folder / f"{name}.jsonl", (ex.to_json() for ex in self.split(name)))
        write_json(folder / MANIFEST, self.manifest)

    @classmethod
    def load(cls, folder: str | Path) -> PreparedDataset:
        """Read a prepared folder, checking that every example points at a known item."""
        folder = Path(folder)
        if not folder.is_dir():
            raise DataError(f"{folder}: prepared dataset folder not found (run `rlrec prepare` first)")
        missing = [n for n in ("items.jsonl", *(f"{s}.jsonl" for s in SPLITS), MANIFEST)
                   if not (folder / n).is_file()]
        if missing:
            raise DataError(f"{folder}: not a prepared dataset, missing {', '.join(missing)}")
        items = _load_items(folder / "items.jsonl")
        splits = {name: list(_load_examples(folder / f"{name}.jsonl", items)) for name in SPLITS}
        return cls(items=items, manifest=read_json(folder / MANIFEST), folder=folder, **splits)

    def feedback(self) -> FeedbackRule | None:
        """The liked / disliked rule the dataset was prepared with; None when it has no ratings."""
        return FeedbackRule.from_manifest(self.manifest)


def _load_items(path: Path) -> dict[str, Item]:
    items: dict[str, Item] = {}
    for lineno, row in read_jsonl(path):
        try:
            item = Item(item_id=str(row["item_id"]), title=str(row["title"]), text=str(row["text"]),
                        attributes=dict(row.get("attributes") or {}))
        except KeyError as err:
            raise DataError(f"{path}: line {lineno}: missing field {err.args[0]!r}") from err
        except (TypeError, ValueError) as err:
            raise DataError(f"{path}: line {lineno}: field 'attributes' is {row.get('attributes')!r}; "
                            "expected an object") from err
        if item.item_id in items:
            raise DataError(f"{path}: line {lineno}: duplicate item_id {item.item_id!r}")
        items[item.item_id] = item
    return items


def _optional_rating(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"rating {value!r} is not a number")
    return float(value)


def _load_examples(path: Path, items: dict[str, Item]) -> Iterable[Example]:
    for lineno, row in read_jsonl(path):
        try:
            ex = Example(user_id=str(row["user_id"]), history=[str(i) for i in row["history"]],
                         target=str(row["target"]), timestamp=int(row.get("timestamp", 0)),
                         cold=row.get("cold"), rating=_optional_rating(row.get("rating")),
                         history_ratings=None if row.get("history_ratings") is None
                         else [_optional_rating(r) for r in row["history_ratings"]])
        except (KeyError, TypeError, ValueError) as err:
            raise DataError(
                f"{path}: line {lineno}: expected user_id, history (list), target, timestamp (integer), optional "
                f"rating (number) and history_ratings (list of numbers or null): {err}"
            ) from err
        if isinstance(row["history"], str):
            raise DataError(f"{path}: line {lineno}: field 'history' is the string {row['history']!r}; expected a "
                            "list of item ids")
        if ex.history_ratings is not None and len(ex.history_ratings) != len(ex.history):
            raise DataError(f"{path}: line {lineno}: history_ratings has {len(ex.history_ratings)} entries but "
                            f"history has {len(ex.history)}; expected one rating (or null) per history item")
        for item_id in (*ex.history, ex.target):
            if item_id not in items:
                raise DataError(f"{path}: line {lineno}: item {item_id!r} is not in items.jsonl")
        yield ex
