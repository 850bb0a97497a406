"""Amazon reviews, the 2018 release (Ni et al.) and its 2014 predecessor (McAuley et al.).

Reviews: one record per line with `reviewerID`, `asin`, `unixReviewTime` (seconds), `overall` (rating).
Metadata: `asin`, `title`, `category` (2018: a list) or `categories` (2014: a list of lists), `brand`.
The 2014 metadata (and some 2018 mirrors) are not JSON but Python dict literals with single quotes,
so every line is parsed as JSON first and as a Python literal second.
"""

from __future__ import annotations

from pathlib import Path

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

REVIEW_NAMES = ["reviews_{category}_5.json", "reviews_{category}.json", "{category}_5.json", "{category}.json"]
META_NAME = "meta_{category}.json"


def read_amazon2018(data_path: str | Path, *, category: str | None = None, reviews_file: str | None = None,
                    meta_file: str | None = None, drop_unknown_items: bool = True,
                    drop_items_without_text: bool = True) -> RawData:
    """Read one category's reviews and metadata (plain or `.gz`) into the common raw form."""
    reviews_path, meta_path = locate_reviews_and_meta(
        data_path, category=category, reviews_file=reviews_file, meta_file=meta_file,
        review_names=REVIEW_NAMES, meta_name=META_NAME, extension=".json",
    )
    catalog = read_meta_2018(meta_path)
    collector = InteractionCollector(catalog, catalog_name=str(meta_path), drop_unknown_items=drop_unknown_items,
                                     drop_items_without_text=drop_items_without_text)
    for lineno, rec in iter_records(reviews_path, loose=True, desc=f"reading {reviews_path.name}"):
        user = str(require(rec, "reviewerID", reviews_path, lineno))
        item = str(require(rec, "asin", reviews_path, lineno))
        timestamp = to_int(require(rec, "unixReviewTime", reviews_path, lineno), "unixReviewTime",
                           reviews_path, lineno)
        collector.add(user, item, timestamp, to_rating(rec.get("overall"), reviews_path, lineno),
                      reviews_path, lineno)
    return collector.result([reviews_path, meta_path])


def read_meta_2018(path: Path) -> Catalog:
    """The catalog of a 2014/2018 metadata file: title, categories and brand of each `asin`."""
    catalog = Catalog()
    for lineno, rec in iter_records(path, loose=True, desc=f"reading {path.name}"):
        asin = str(require(rec, "asin", path, lineno))
        title = clean_title(rec.get("title"))
        raw_categories = rec.get("category") or rec.get("categories") or []
        categories = unique_strings(raw_categories if isinstance(raw_categories, list) else [raw_categories])
        brand = clean_text(rec.get("brand")) or None
        attributes: dict = {}
        if categories:
            attributes["categories"] = categories
        if brand:
            attributes["brand"] = brand
        text = item_text(title, categories=categories, brand=brand)
        catalog.add(asin, title, text, attributes, f"{path}: line {lineno}")
    return catalog
