"""The common raw form every reader returns, and the rules that are the same for every source.

A reader turns one source's files into a `RawData`: the item catalog (`item_id -> Item`) and a flat
list of `Interaction`s. Two policies are shared and applied while reading, where the file and line
are still known: an interaction naming an item the catalog lacks (`drop_unknown_items`), and an item
without a title to embed (`drop_items_without_text`). `InteractionCollector` implements both so
that every reader counts and reports them in the same way.
"""

from __future__ import annotations

import ast
import html
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from tqdm.auto import tqdm

from rlrec.data.schema import Example, Item
from rlrec.utils.errors import DataError
from rlrec.utils.io import json_object_line, open_text

# An item text stays short: it is embedded for Semantic IDs and shown in prompts.
MAX_TEXT_CATEGORIES = 5
# Placeholders some sources put where a title is missing (ML-100k item 267 is titled "unkonwn").
MISSING_TITLES = frozenset({"", "unknown", "unkonwn", "none", "null", "nan", "n/a"})

_TAG = re.compile(r"<[^<>]*>")
_SPACE = re.compile(r"\s+")


class Interaction(NamedTuple):
    """One event: `user_id` met `item_id` at `timestamp` (Unix seconds), with an optional rating."""

    user_id: str
    item_id: str
    timestamp: int
    rating: float | None = None


@dataclass
class RawData:
    """What a reader returns: the catalog, the events, and what was dropped while reading (by reason).

    `raw_counts` describes the interaction file(s) exactly as read, before any drop (`users`, `items`,
    `interactions`, plus `catalog_items`: items with text the catalog offers). Sources that ship
    ready-made splits (MiniOneRec CSVs) fill `splits` instead of `interactions`.
    """

    items: dict[str, Item]
    interactions: list[Interaction]
    raw_counts: dict[str, int]
    dropped: dict[str, int] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    splits: dict[str, list[Example]] | None = None


def clean_text(value: Any) -> str:
    """Unescape HTML entities, strip tags and collapse whitespace (Amazon titles carry all three)."""
    if value is None:
        return ""
    text = html.unescape(str(value))
    text = _TAG.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


def clean_title(value: Any) -> str:
    """A usable title, or "" when the source has none (empty or a placeholder such as "unknown")."""
    title = clean_text(value)
    return "" if title.lower() in MISSING_TITLES else title


def unique_strings(values: Iterable[Any]) -> list[str]:
    """Flatten nested lists of strings (Amazon 2014 categories are lists of paths), clean, dedupe in order."""
    out: list[str] = []
    seen: set[str] = set()

    def visit(value: Any) -> None:
        if isinstance(value, (list, tuple)):
            for v in value:
                visit(v)
            return
        text = clean_text(value)
        if text and text.lower() not in MISSING_TITLES and text not in seen:
            seen.add(text)
            out.append(text)

    visit(list(values))
    return out


def item_text(title: str, *, year: str | None = None, categories: Iterable[str] = (),
              label: str = "Categories", brand: str | None = None) -> str:
    """The text embedded for an item: "Title (year). Genres: a, b. Brand: x" with the parts present."""
    head = f"{title} ({year})" if year else title
    parts = [head]
    categories = list(categories)[:MAX_TEXT_CATEGORIES]
    if categories:
        parts.append(f"{label}: {', '.join(categories)}")
    if brand:
        parts.append(f"Brand: {brand}")
    return ". ".join(parts)


def parse_loose_line(line: str, path: Path, lineno: int) -> dict[str, Any]:
    """Parse one line as strict JSON, else as a Python literal (Amazon 2014/2018 meta files use `{'k': ...}`)."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError:
        try:
            obj = ast.literal_eval(line.strip())
        except (ValueError, SyntaxError, MemoryError, RecursionError) as err:
            raise DataError(
                f"{path}: line {lineno}: neither JSON nor a Python dict literal ({type(err).__name__})"
            ) from err
    if not isinstance(obj, dict):
        raise DataError(f"{path}: line {lineno}: expected an object, got {type(obj).__name__}")
    return obj


def iter_records(path: Path, *, loose: bool, desc: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield `(line_number, record)` for each non-blank line of a JSON-lines file (`.gz` or plain).

    `loose=True` also accepts Python dict literals. A progress bar shows on a terminal: Amazon files
    run to millions of lines.
    """
    with open_text(path) as f:
        for lineno, line in enumerate(tqdm(f, desc=desc, unit=" lines", mininterval=1.0, disable=None),
                                      start=1):
            if not line.strip():
                continue
            yield lineno, parse_loose_line(line, path, lineno) if loose else json_object_line(line, path, lineno)


def require(record: dict[str, Any], key: str, path: Path, lineno: int) -> Any:
    """`record[key]`, or a DataError naming the file, the line and the missing field."""
    value = record.get(key)
    if value is None or value == "":
        raise DataError(f"{path}: line {lineno}: missing field {key!r}")
    return value


def to_int(value: Any, key: str, path: Path, lineno: int) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError) as err:
        raise DataError(f"{path}: line {lineno}: field {key!r} should be a number, got {value!r}") from err


def to_rating(value: Any, path: Path, lineno: int) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError) as err:
        raise DataError(f"{path}: line {lineno}: rating should be a number, got {value!r}") from err


class Catalog:
    """Items read from a metadata file, with those that have no usable title set aside.

    An item without text is kept out of `items` but remembered with where it came from, so that the
    error (`drop_items_without_text=False`) can name it only if some interaction actually uses it:
    metadata files list many items nobody reviewed.
    """

    def __init__(self) -> None:
        self.items: dict[str, Item] = {}
        self.without_text: dict[str, str] = {}  # item_id -> "file: line n"

    def add(self, item_id: str, title: str, text: str, attributes: dict[str, Any], where: str) -> None:
        if item_id in self.items or item_id in self.without_text:
            return  # the first record of an item wins (metadata files repeat a few)
        if not title:
            self.without_text[item_id] = where
        else:
            self.items[item_id] = Item(item_id=item_id, title=title, text=text, attributes=attributes)


class InteractionCollector:
    """Collect interactions while applying the unknown-item and item-without-text policies."""

    def __init__(self, catalog: Catalog, *, catalog_name: str, drop_unknown_items: bool,
                 drop_items_without_text: bool) -> None:
        self.catalog = catalog
        self.catalog_name = catalog_name
        self.drop_unknown_items = drop_unknown_items
        self.drop_items_without_text = drop_items_without_text
        self.interactions: list[Interaction] = []
        self.users: set[str] = set()
        self.items_seen: set[str] = set()
        self.lines = 0
        self.dropped: Counter[str] = Counter()
        self.textless_used: set[str] = set()
        self.unknown_used: set[str] = set()

    def add(self, user_id: str, item_id: str, timestamp: int, rating: float | None,
            path: Path, lineno: int) -> None:
        self.lines += 1
        self.users.add(user_id)
        self.items_seen.add(item_id)
        if item_id in self.catalog.items:
            self.interactions.append(Interaction(user_id, item_id, timestamp, rating))
            return
        if item_id in self.catalog.without_text:
            if not self.drop_items_without_text:
                raise DataError(
                    f"item {item_id!r} ({self.catalog.without_text[item_id]}) has no title to build its text "
                    f"from, and {path}: line {lineno} uses it; set drop_items_without_text=true to drop such "
                    f"items and their interactions"
                )
            self.textless_used.add(item_id)
            self.dropped["interactions_of_items_without_text"] += 1
            return
        if not self.drop_unknown_items:
            raise DataError(
                f"{path}: line {lineno}: item {item_id!r} is not in {self.catalog_name}; set "
                f"drop_unknown_items=true to drop interactions with unknown items"
            )
        self.unknown_used.add(item_id)
        self.dropped["interactions_of_unknown_items"] += 1

    def result(self, files: list[Path]) -> RawData:
        dropped = dict(self.dropped)
        if self.textless_used:
            dropped["items_without_text"] = len(self.textless_used)
        if self.unknown_used:
            dropped["unknown_items"] = len(self.unknown_used)
        raw_counts = {
            "users": len(self.users),
            "items": len(self.items_seen),
            "interactions": self.lines,
            "catalog_items": len(self.catalog.items),
        }
        if self.lines == 0:
            raise DataError(f"{', '.join(map(str, files))}: no interactions found")
        return RawData(items=self.catalog.items, interactions=self.interactions, raw_counts=raw_counts,
                       dropped=dropped, files=[str(f) for f in files])
