"""`Catalog`: item id ↔ title, the part of the dataset a deployed model needs to speak about items.

A model writes SIDs and the SID index turns them into item ids; people (and the clients of a
recommendation API) know items by id or by title. The catalog holds exactly that mapping, saved in an
exported folder as `catalog.jsonl` (`{"item_id", "title", "sid"}` per line, in SID-index order), so a
deployed model does not need the prepared dataset it was trained on.

`resolve(entry)` maps a history entry given as an id or a title to an item id and never guesses
silently: an unknown entry gives None, an ambiguous title (several items share it) the first of them in
catalog order together with a note saying so.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from rlrec.sid.index import SIDIndex
from rlrec.utils.errors import DataError
from rlrec.utils.io import read_jsonl, write_jsonl

CATALOG_FILE = "catalog.jsonl"


_YEAR = re.compile(r"\s*\((?:19|20)\d\d\)\s*$")
_TRAILING_ARTICLE = re.compile(r"^(?P<rest>.+),\s*(?P<article>the|a|an)$")


def _title_key(title: str) -> str:
    return " ".join(title.casefold().split())


def _loose_title_key(title: str) -> str:
    """A looser key: no trailing `(1996)`, and `Deer Hunter, The` read as `the deer hunter`.

    Catalogs and people write titles differently (MovieLens: `Deer Hunter, The (1978)`; a prepared dataset may
    keep `Deer Hunter, The`; a user types `The Deer Hunter`), so a title that matches no item exactly is
    tried again under this key, and the match is reported.
    """
    key = _title_key(_YEAR.sub("", title))
    moved = _TRAILING_ARTICLE.match(key)
    return f"{moved['article']} {moved['rest']}" if moved else key


class Catalog:
    """Titles of the items a model can recommend, with id and title lookup of history entries."""

    def __init__(self, titles: Mapping[str, str]) -> None:
        self._titles = {str(item): str(title) for item, title in titles.items()}
        self._by_title: dict[str, list[str]] = {}
        self._by_loose_title: dict[str, list[str]] = {}
        for item, title in self._titles.items():
            self._by_title.setdefault(_title_key(title), []).append(item)
            self._by_loose_title.setdefault(_loose_title_key(title), []).append(item)

    def __len__(self) -> int:
        return len(self._titles)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._titles

    def title(self, item_id: str) -> str:
        """The item's title; its id when the catalog has no title for it."""
        return self._titles.get(item_id, item_id)

    def resolve(self, entry: str) -> tuple[str | None, str | None]:
        """`(item_id, note)` of a history entry given as an item id or a title (case and spacing ignored).

        An id wins over a title, an exact title over a loose one (year and a trailing article ignored, see
        `_loose_title_key`). `item_id` is None for an unknown entry; `note` explains an ambiguous title or a
        loose match.
        """
        entry = str(entry)
        if entry in self._titles:
            return entry, None
        matches = self._by_title.get(_title_key(entry), [])
        loose = not matches
        if loose:
            matches = self._by_loose_title.get(_loose_title_key(entry), [])
        if not matches:
            return None, None
        if len(matches) > 1:
            return matches[0], (f"title {entry!r} names {len(matches)} items ({', '.join(matches[:5])}); "
                                f"used {matches[0]!r}")
        if loose:
            return matches[0], f"title {entry!r} read as {self._titles[matches[0]]!r} (item {matches[0]!r})"
        return matches[0], None

    # -- files ----------------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike, index: SIDIndex | None = None, item_ids: Iterable[str] = ()) -> int:
        """Write `catalog.jsonl` for the items of `index` (those the model can recommend), with their SIDs, or
        for `item_ids` without SIDs (a SETRec model, whose identifiers are not strings)."""
        if index is not None:
            rows = ({"item_id": item, "title": self.title(item), "sid": index.sid(item)} for item in index.item_ids)
        else:
            rows = ({"item_id": item, "title": self.title(item)} for item in item_ids)
        return write_jsonl(path, rows)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Catalog:
        """Read a `catalog.jsonl` written by `save` (or a prepared dataset's `items.jsonl`)."""
        path = Path(path)
        titles: dict[str, str] = {}
        for lineno, row in read_jsonl(path):
            if "item_id" not in row:
                raise DataError(f"{path}: line {lineno}: missing field 'item_id'")
            titles[str(row["item_id"])] = str(row.get("title") or row["item_id"])
        return cls(titles)

    @classmethod
    def from_ids(cls, item_ids: Iterable[str]) -> Catalog:
        """A catalog without titles (each item's title is its id): the fallback when no item file is known."""
        return cls({item: item for item in item_ids})
