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
    RawData,
    clean_text,
    clean_title,
    iter_records,
    require,
    unique_strings,
)
from rlrec.data.readers.amazon_reviews import ReviewRelease, add_product, read_reviews

REVIEW_NAMES = ["{category}.jsonl"]
META_NAME = "meta_{category}.jsonl"


def read_amazon2023(data_path: str | Path, **options: Any) -> RawData:
    """Read one category's reviews and metadata (plain or `.gz`); timestamps become Unix
    seconds (options: `read_reviews`)."""
    return read_reviews(RELEASE, data_path, **options)


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
        add_product(catalog, asin, title, categories, brand, f"{path}: line {lineno}", main_category=main_category)
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


RELEASE = ReviewRelease(REVIEW_NAMES, META_NAME, ".jsonl",
                        user="user_id", item="parent_asin", timestamp="timestamp", rating="rating",
                        loose=False, read_meta=read_meta_2023)
