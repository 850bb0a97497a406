"""Amazon reviews, the 2018 release (Ni et al.) and its 2014 predecessor (McAuley et al.).

Reviews: one record per line with `reviewerID`, `asin`, `unixReviewTime` (seconds), `overall` (rating).
Metadata: `asin`, `title`, `category` (2018: a list) or `categories` (2014: a list of lists), `brand`.
The 2014 metadata (and some 2018 mirrors) are not JSON but Python dict literals with single quotes,
so every line is parsed as JSON first and as a Python literal second.
"""

from __future__ import annotations

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

REVIEW_NAMES = ["reviews_{category}_5.json", "reviews_{category}.json", "{category}_5.json", "{category}.json"]
META_NAME = "meta_{category}.json"


def read_amazon2018(data_path: str | Path, **options: Any) -> RawData:
    """Read one category's reviews and metadata (plain or `.gz`) into the common raw form
    (options: `read_reviews`)."""
    return read_reviews(RELEASE, data_path, **options)


def read_meta_2018(path: Path) -> Catalog:
    """The catalog of a 2014/2018 metadata file: title, categories and brand of each `asin`."""
    catalog = Catalog()
    for lineno, rec in iter_records(path, loose=True, desc=f"reading {path.name}"):
        asin = str(require(rec, "asin", path, lineno))
        title = clean_title(rec.get("title"))
        raw_categories = rec.get("category") or rec.get("categories") or []
        categories = unique_strings(raw_categories if isinstance(raw_categories, list) else [raw_categories])
        brand = clean_text(rec.get("brand")) or None
        add_product(catalog, asin, title, categories, brand, f"{path}: line {lineno}")
    return catalog


RELEASE = ReviewRelease(REVIEW_NAMES, META_NAME, ".json",
                        user="reviewerID", item="asin", timestamp="unixReviewTime", rating="overall",
                        loose=True, read_meta=read_meta_2018)
