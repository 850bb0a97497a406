"""MiniOneRec's ready-made CSV splits (github.com/AkaliKong/MiniOneRec, `data/Amazon/{train,valid,test}/*.csv`).

Each row is already one next-item example: `user_id`, `history_item_id` (a Python list literal such
as `[926, 38]`), `item_id`, and usually `history_item_title` / `item_title` (list literal / string)
and `history_item_sid` / `item_sid`; the older `process.py` output adds `timestamp`. Copies that carry ratings
give them as `rating` (the target's) and `history_rating` (a list literal, one per history item); the released
CSVs have none, and then the prepared examples have none either.
MiniOneRec splits all examples 8:1:1 by time, so a user may have several valid or test rows: the
splits are kept as they are (no leave-one-out). Item titles come from the CSVs, completed and
overridden by an item file when there is one: `info/<stem>.txt` (`sid<TAB>title<TAB>id` or
`title<TAB>id`) or `index/<Category>.item.json` (`{id: {"title", "brand", "categories", ...}}`).
Copies without train CSVs (the repository's own, for one) get train windows rebuilt from the valid/test
histories (`rebuild_train_rows`), counted in the manifest as `raw_train_windows_rebuilt`.
"""

from __future__ import annotations

import ast
import csv
import logging
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from rlrec.data.raw import RawData, clean_text, clean_title, item_text, to_int, to_rating, unique_strings
from rlrec.data.readers.files import existing_folder, explicit_file, single_match
from rlrec.data.schema import SPLITS, Example, Item
from rlrec.utils.errors import ConfigError, DataError
from rlrec.utils.io import open_text, read_json

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("user_id", "history_item_id", "item_id")
# Optional: the target's rating and the history's (a list literal); MiniOneRec's released CSVs have neither.
RATING_COLUMN = "rating"
HISTORY_RATING_COLUMN = "history_rating"


@dataclass
class _Row:
    user_id: str
    history: list[str]
    target: str
    timestamp: int
    where: str
    rating: float | None = None
    history_ratings: list[float | None] | None = None


def read_minionerec_csv(data_path: str | Path, *, category: str | None = None, item_info_file: str | None = None,
                        drop_unknown_items: bool = True, drop_items_without_text: bool = True) -> RawData:
    """Read `train`, `valid` and `test` CSVs (in `<split>/` sub-folders or as `<split>.csv`) and an item file."""
    folder = existing_folder(data_path, "MiniOneRec data folder")
    split_paths = {name: path for name in SPLITS
                   if (path := _split_file(folder, name, category, required=name != "train")) is not None}
    stem = split_paths["valid"].stem

    titles: dict[str, str] = {}
    sids: dict[str, str] = {}
    rows: dict[str, list[_Row]] = {}
    for name, path in split_paths.items():
        rows[name] = _read_split(path, titles, sids)
    rebuilt = 0
    if "train" not in split_paths:
        rows["train"] = rebuild_train_rows(rows["valid"], rows["test"])
        rebuilt = len(rows["train"])
        logger.warning("%s: no train split; rebuilt %d train windows from the histories of each user's earliest "
                       "valid/test row", folder, rebuilt)
        rows = {name: rows[name] for name in SPLITS}

    info_path = _item_file(folder, stem, item_info_file)
    catalog: dict[str, Item] = {}
    if info_path is not None:
        catalog = _read_item_file(info_path, sids)
    listed = set(catalog)  # items the item file names, even without a title
    for item_id, title in titles.items():
        if item_id not in catalog or not catalog[item_id].title:
            catalog[item_id] = Item(item_id=item_id, title=title, text=item_text(title))
    for item_id, sid in sids.items():
        if item_id in catalog:
            catalog[item_id].attributes.setdefault("minionerec_sid", sid)

    dropped: Counter[str] = Counter()
    used = {item for split in rows.values() for row in split for item in (*row.history, row.target)}
    unknown = {i for i in used if i not in catalog and info_path is not None and i not in listed}
    textless = {i for i in used if i not in unknown and (i not in catalog or not catalog[i].title)}
    first_use = {}
    for split in rows.values():
        for row in split:
            for item in (*row.history, row.target):
                first_use.setdefault(item, row.where)
    for bad, allowed, reason in ((sorted(unknown), drop_unknown_items, "unknown"),
                                 (sorted(textless), drop_items_without_text, "without_text")):
        if bad and not allowed:
            item = bad[0]
            if reason == "unknown":
                raise DataError(f"{first_use[item]}: item {item!r} is not in {info_path}; set "
                                f"drop_unknown_items=true to drop the examples that use unknown items")
            raise DataError(f"item {item!r} (used at {first_use[item]}) has no title to build its text from; "
                            f"set drop_items_without_text=true to drop such items and their examples")
    if unknown:
        dropped["unknown_items"] = len(unknown)
    if textless:
        dropped["items_without_text"] = len(textless)

    splits: dict[str, list[Example]] = {}
    bad_items = unknown | textless
    for name, split_rows in rows.items():
        kept = []
        for row in split_rows:
            if bad_items and (row.target in bad_items or any(i in bad_items for i in row.history)):
                reason = "unknown_items" if (row.target in unknown or set(row.history) & unknown) \
                    else "items_without_text"
                dropped[f"examples_with_{reason}"] += 1
                continue
            kept.append(Example(user_id=row.user_id, history=row.history, target=row.target,
                                timestamp=row.timestamp, rating=row.rating, history_ratings=row.history_ratings))
        splits[name] = kept

    items = {i: item for i, item in catalog.items() if i not in bad_items}
    raw_counts = {
        "users": len({row.user_id for split in rows.values() for row in split}),
        "items": len(used),
        "interactions": sum(len(split) for split in rows.values()),  # one target event per row
        "catalog_items": len(items),
    }
    if rebuilt:
        raw_counts["train_windows_rebuilt"] = rebuilt
    files = [str(p) for p in split_paths.values()] + ([str(info_path)] if info_path else [])
    return RawData(items=items, interactions=[], raw_counts=raw_counts, dropped=dict(dropped), files=files,
                   splits=splits)


def rebuild_train_rows(valid: list[_Row], test: list[_Row]) -> list[_Row]:
    """Train windows rebuilt from histories, for copies of MiniOneRec's data that ship without train CSVs.

    Every valid/test row carries the user's recent history, all of it older than the row's target. The
    history of each user's earliest row (valid before test, then by timestamp, then file order) lies wholly
    before that user's valid/test period, so its prefixes are leak-free next-item examples: `h[:i] -> h[i]`
    for i >= 1. Later rows are not used, since their histories can contain valid/test targets. What lies
    before the earliest row's (capped) history is not in the files and stays lost.
    """
    earliest: dict[str, tuple[tuple[int, int, int], _Row]] = {}
    for order, row in enumerate((*valid, *test)):
        key = (0 if order < len(valid) else 1, row.timestamp, order)
        best = earliest.get(row.user_id)
        if best is None or key < best[0]:
            earliest[row.user_id] = (key, row)
    rows = []
    for _, row in earliest.values():
        for i in range(1, len(row.history)):
            ratings = row.history_ratings
            rows.append(_Row(row.user_id, row.history[:i], row.history[i], 0, f"{row.where} (rebuilt train window)",
                             rating=ratings[i] if ratings is not None else None,
                             history_ratings=ratings[:i] if ratings is not None else None))
    return rows


def _split_file(folder: Path, split: str, category: str | None, *, required: bool = True) -> Path | None:
    sub = folder / split
    if sub.is_dir():
        patterns = [f"{category}*.csv"] if category else ["*.csv"]
        return single_match(sub, patterns, f"{split} CSV", "set `category` to the file stem to choose")
    flat = folder / f"{split}.csv"
    if flat.is_file():
        return flat
    if not required:
        return None
    raise DataError(f"{folder}: no {split} split; expected {split}/*.csv or {split}.csv")


def _read_split(path: Path, titles: dict[str, str], sids: dict[str, str]) -> list[_Row]:
    """Parse one split CSV; remember every title and SID it shows (first one wins)."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    rows = []
    with open_text(path) as f:
        reader = csv.DictReader(f)
        try:
            fieldnames = reader.fieldnames or []
        except csv.Error as err:
            raise DataError(f"{path}: line 1: not a valid CSV header ({err})") from err
        missing = [c for c in REQUIRED_COLUMNS if c not in fieldnames]
        if missing:
            raise DataError(f"{path}: line 1: header lacks column(s) {', '.join(missing)}; expected MiniOneRec "
                            f"columns {', '.join(REQUIRED_COLUMNS)}, history_item_title, item_title, ...")
        for record in tqdm(_csv_records(reader, path), desc=f"reading {path.name}", unit=" rows", mininterval=1.0,
                           disable=None):
            lineno = reader.line_num
            where = f"{path}: line {lineno}"
            user = (record.get("user_id") or "").strip()
            target = (record.get("item_id") or "").strip()
            if not user or not target:
                raise DataError(f"{where}: empty user_id or item_id")
            history = [str(i) for i in _parse_list(record["history_item_id"], "history_item_id", where)]
            _remember(titles, [target], [record.get("item_title")])
            if record.get("history_item_title") not in (None, ""):
                hist_titles = _parse_list(record["history_item_title"], "history_item_title", where)
                if len(hist_titles) != len(history):
                    raise DataError(f"{where}: history_item_title has {len(hist_titles)} entries but "
                                    f"history_item_id has {len(history)}; expected one title per item")
                _remember(titles, history, hist_titles)
            _remember(sids, [target], [record.get("item_sid")], raw=True)
            if record.get("history_item_sid") not in (None, ""):
                hist_sids = _parse_list(record["history_item_sid"], "history_item_sid", where)
                if len(hist_sids) == len(history):
                    _remember(sids, history, hist_sids, raw=True)
            timestamp = record.get("timestamp")
            timestamp = to_int(timestamp, "timestamp", path, lineno) if timestamp not in (None, "") else 0
            rating = to_rating(record.get(RATING_COLUMN), path, lineno)
            history_ratings = None
            if record.get(HISTORY_RATING_COLUMN) not in (None, ""):
                history_ratings = [to_rating(r, path, lineno) for r in
                                   _parse_list(record[HISTORY_RATING_COLUMN], HISTORY_RATING_COLUMN, where)]
                if len(history_ratings) != len(history):
                    raise DataError(f"{where}: {HISTORY_RATING_COLUMN} has {len(history_ratings)} entries but "
                                    f"history_item_id has {len(history)}; expected one rating per item")
            rows.append(_Row(user, history, target, timestamp, where, rating, history_ratings))
    return rows


def _csv_records(reader: csv.DictReader, path: Path) -> Iterator[dict[str, Any]]:
    """The reader's records; a line the csv module cannot parse raises a DataError naming the file and line."""
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            raise DataError(f"{path}: line {reader.line_num}: not valid CSV ({err}); expected comma-separated "
                            "MiniOneRec rows") from err
        yield record


def _remember(table: dict[str, str], ids: list[str], values: list[Any], *, raw: bool = False) -> None:
    """Record the first non-empty value per item: titles cleaned, SIDs (`raw`, they look like tags) as is."""
    for item_id, value in zip(ids, values, strict=True):
        text = (str(value).strip() if value is not None else "") if raw else clean_title(value)
        if text and item_id not in table:
            table[item_id] = text


def _parse_list(value: str, column: str, where: str) -> list[Any]:
    """`"[1, 2]"` or `"['a', 'b']"` (Python literals, as pandas writes lists), or `"1 2"` (space-separated)."""
    value = value.strip()
    if not value:
        return []
    if value.startswith("["):
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError) as err:
            raise DataError(f"{where}: column {column!r} is not a valid list literal ({err})") from err
        if not isinstance(parsed, (list, tuple)):
            raise DataError(f"{where}: column {column!r} should be a list, got {type(parsed).__name__}")
        return list(parsed)
    return value.replace(",", " ").split()


def _item_file(folder: Path, stem: str, item_info_file: str | None) -> Path | None:
    """The explicit item file, else `info/<stem>.txt`, else the `index/<X>.item.json` whose X starts `stem`."""
    if item_info_file:
        return explicit_file(folder, item_info_file, "item info file")
    info = folder / "info" / f"{stem}.txt"
    if info.is_file():
        return info
    index = folder / "index"
    if index.is_dir():
        matches = [p for p in index.glob("*.item.json") if stem.startswith(p.name[: -len(".item.json")])]
        if len(matches) > 1:
            names = ", ".join(p.name for p in matches)
            raise ConfigError(f"{index}: several item files match {stem!r} ({names}); set `item_info_file`")
        if matches:
            return matches[0]
    return None


def _read_item_file(path: Path, sids: dict[str, str]) -> dict[str, Item]:
    if path.name.endswith(".json") or path.name.endswith(".json.gz"):
        return _read_item_json(path)
    catalog: dict[str, Item] = {}
    with open_text(path) as f:
        for lineno, line in enumerate(f, start=1):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) not in (2, 3):
                raise DataError(f"{path}: line {lineno}: expected `sid<TAB>title<TAB>item_id` or "
                                f"`title<TAB>item_id`, found {len(fields)} tab-separated fields")
            item_id, title = fields[-1].strip(), clean_title(fields[-2])
            if len(fields) == 3 and fields[0].strip():
                sids.setdefault(item_id, fields[0].strip())
            if item_id not in catalog:
                catalog[item_id] = Item(item_id=item_id, title=title, text=item_text(title) if title else "")
    return catalog


def _read_item_json(path: Path) -> dict[str, Item]:
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object mapping item id to its fields")
    catalog: dict[str, Item] = {}
    for item_id, fields in data.items():
        if not isinstance(fields, dict):
            raise DataError(f"{path}: item {item_id!r}: expected an object with a 'title', got "
                            f"{type(fields).__name__}")
        title = clean_title(fields.get("title"))
        raw_categories = fields.get("categories") or []
        categories = unique_strings(raw_categories if isinstance(raw_categories, list) else [raw_categories])
        brand = clean_text(fields.get("brand")) or None
        attributes: dict[str, Any] = {}
        if categories:
            attributes["categories"] = categories
        if brand:
            attributes["brand"] = brand
        text = item_text(title, categories=categories, brand=brand) if title else ""
        catalog[str(item_id)] = Item(item_id=str(item_id), title=title, text=text, attributes=attributes)
    return catalog
