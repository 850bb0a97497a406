"""What the Amazon readers (2014/2018 and 2023 releases) share: find a category's reviews and metadata, read
the catalog, and collect one interaction per review. The releases differ only in file names, field names and
the timestamp's unit, which each reader passes in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rlrec.data.raw import (
    Catalog,
    InteractionCollector,
    RawData,
    item_text,
    iter_records,
    require,
    to_int,
    to_rating,
)
from rlrec.data.readers.files import locate_reviews_and_meta

# Above this a timestamp is in milliseconds (1e11 s is the year 5138; 1e11 ms is 1973).
MILLISECONDS_FROM = 10**11


@dataclass(frozen=True)
class ReviewRelease:
    """How one Amazon release names its files and a review's fields."""

    review_names: list[str]
    meta_name: str
    extension: str
    user: str
    item: str
    timestamp: str
    rating: str
    loose: bool  # lines may be Python dict literals (2014 and some 2018 mirrors), not JSON
    read_meta: Callable[[Path], Catalog]


def read_reviews(release: ReviewRelease, data_path: str | Path, *, category: str | None = None,
                 reviews_file: str | None = None, meta_file: str | None = None, drop_unknown_items: bool = True,
                 drop_items_without_text: bool = True) -> RawData:
    """Read one category's reviews and metadata (plain or `.gz`) into the common raw form; timestamps in
    milliseconds become Unix seconds."""
    reviews_path, meta_path = locate_reviews_and_meta(
        data_path, category=category, reviews_file=reviews_file, meta_file=meta_file,
        review_names=release.review_names, meta_name=release.meta_name, extension=release.extension,
    )
    catalog = release.read_meta(meta_path)
    collector = InteractionCollector(catalog, catalog_name=str(meta_path), drop_unknown_items=drop_unknown_items,
                                     drop_items_without_text=drop_items_without_text)
    for lineno, rec in iter_records(reviews_path, loose=release.loose, desc=f"reading {reviews_path.name}"):
        user = str(require(rec, release.user, reviews_path, lineno))
        item = str(require(rec, release.item, reviews_path, lineno))
        timestamp = to_int(require(rec, release.timestamp, reviews_path, lineno), release.timestamp,
                           reviews_path, lineno)
        if timestamp >= MILLISECONDS_FROM:
            timestamp //= 1000
        collector.add(user, item, timestamp, to_rating(rec.get(release.rating), reviews_path, lineno),
                      reviews_path, lineno)
    return collector.result([reviews_path, meta_path])


def add_product(catalog: Catalog, asin: str, title: str | None, categories: list[str], brand: str | None,
                where: str, **extra: str | None) -> None:
    """Add one metadata record: its text from title, categories and brand; the non-empty `extra` fields, the
    categories and the brand as attributes."""
    attributes: dict[str, object] = {name: value for name, value in extra.items() if value}
    if categories:
        attributes["categories"] = categories
    if brand:
        attributes["brand"] = brand
    catalog.add(asin, title, item_text(title, categories=categories, brand=brand), attributes, where)
