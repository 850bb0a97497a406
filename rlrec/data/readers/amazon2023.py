"""Amazon reviews, the 2023 release (Hou et al., McAuley Lab).

Reviews `<Category>.jsonl[.gz]`: `user_id`, `parent_asin` (the item; `asin` is a variant), `timestamp`
in milliseconds, `rating`. Metadata `meta_<Category>.jsonl[.gz]`: `parent_asin`, `title`,
`categories` (a list, often empty), `main_category`, `store`, `details` (with `Brand` when known).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rlrec.data.raw import (
    Catalog,
    InteractionCollector,
    RawData,
    clean_text,
    clean_title,
    item_text,
    iter_records,
    require,
    to_int,
    to_rating,
    unique_strings,
)
from rlrec.data.readers.files import locate_reviews_and_meta

REVIEW_NAMES = ["{category}.jsonl"]
META_NAME = "meta_{category}.jsonl"
# Above this a timestamp is in milliseconds (1e11 s is the year 5138; 1e11 ms is 1973).
MILLISECONDS_FROM = 10**11


def read_amazon2023(data_path: str | Path, *, category: str | None = None, reviews_file: str | None = None,
                    meta_file: str | None = None, drop_unknown_items: bool = True,
                    drop_items_without_text: bool = True) -> RawData:
    """Read one category's reviews and metadata (plain or `.gz`); timestamps become Unix seconds."""
    reviews_path, meta_path = locate_reviews_and_meta(
        data_path, category=category, reviews_file=reviews_file, meta_file=meta_file,
        review_names=REVIEW_NAMES, meta_name=META_NAME, extension=".jsonl",
    )
    catalog = read_meta_2023(meta_path)
    collector = InteractionCollector(catalog, catalog_name=str(meta_path), drop_unknown_items=drop_unknown_items,
                                     drop_items_without_text=drop_items_without_text)
    for lineno, rec in iter_records(reviews_path, loose=False, desc=f"reading {reviews_path.name}"):
        user = str(require(rec, "user_id", reviews_path, lineno))
        item = str(require(rec, "parent_asin", reviews_path, lineno))
        timestamp = to_int(require(rec, "timestamp", reviews_path, lineno), "timestamp", reviews_path, lineno)
        if timestamp >= MILLISECONDS_FROM:
            timestamp //= 1000
        collector.add(user, item, timestamp, to_rating(rec.get("rating"), reviews_path, lineno),
                      reviews_path, lineno)
    return collector.result([reviews_path, meta_path])


def read_meta_2023(path: Path) -> Catalog:
    """The catalog of a 2023 metadata file: title, categories (or main category) and brand (or store)."""
    catalog = Catalog()
    for lineno, rec in iter_records(path, loose=False, desc=f"reading {path.name}"):
        asin = str(require(rec, "parent_asin", path, lineno))
        title = clean_title(rec.get("title"))
        categories = unique_strings(rec.get("categories") or [])
        main_category = clean_text(rec.get("main_category"))
        if not categories and main_category:
            categories = [main_category]
        brand = clean_text(_details(rec.get("details")).get("Brand")) or clean_text(rec.get("store")) or None
        attributes: dict[str, Any] = {}
        if main_category:
            attributes["main_category"] = main_category
        if categories:
            attributes["categories"] = categories
        if brand:
            attributes["brand"] = brand
        text = item_text(title, categories=categories, brand=brand)
        catalog.add(asin, title, text, attributes, f"{path}: line {lineno}")
    return catalog


def _details(value: Any) -> dict[str, Any]:
    """`details` is an object in the raw dump and a JSON string in some re-exports."""
    if isinstance(value, dict):
        return value
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            return {}
        return parsed if isinstance(parsed, dict) else {}
    return {}
