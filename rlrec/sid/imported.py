"""Precomputed Semantic IDs read from a file (`sid_file`), e.g. MiniOneRec's `index/<Category>.index.json`.

The file is a JSON object mapping item id to the item's SID tokens, one per level:

    {"0": ["<a_236>", "<b_231>", "<c_226>"], "1": ["<a_12>", "<b_7>", "<c_0>"], ...}

(a value may also be the tokens written as one string, `"<a_236><b_231><c_226>"`). Token `l` of
every item is level `l`; its letters are the level's token prefix and must be the same for every
item, so the imported SIDs read exactly as in the file. Codebook sizes are the largest code of each
level over the whole file plus one, or the configured `codebook_size` when that is larger.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rlrec.sid.collisions import colliding_groups
from rlrec.utils.errors import DataError, shown
from rlrec.utils.io import open_text

TOKEN_RE = re.compile(r"<([a-z]+)_(0|[1-9][0-9]*)>")
_EXAMPLES = 5


@dataclass
class ImportedSIDs:
    """The SIDs of a file, restricted to a catalog: `codes[i]` belongs to `item_ids[i]`."""

    item_ids: list[str]
    codes: np.ndarray  # (n, levels) int64, catalog order
    codebook_sizes: list[int]
    token_prefixes: list[str]
    file_items: int  # items the file lists
    unused_items: int  # listed items that are not in the catalog
    file_item_ids: list[str] | None = None  # the file's items in its order (rows of a companion embedding file)


def _no_duplicate_keys(path: Path):
    def hook(pairs: list[tuple[str, object]]) -> dict[str, object]:
        out: dict[str, object] = {}
        for key, value in pairs:
            if key in out:
                raise DataError(f"{path}: item {key!r} is listed twice; expected one SID per item")
            out[key] = value
        return out

    return hook


def parse_tokens(path: Path, item_id: str, value: object) -> list[tuple[str, int]]:
    """`(prefix, code)` per level of one item's SID; bad content raises DataError naming file and item."""
    if isinstance(value, str):
        tokens = TOKEN_RE.findall(value.replace(" ", ""))
        if not tokens or "".join(f"<{p}_{c}>" for p, c in tokens) != value.replace(" ", ""):
            raise DataError(
                f"{path}: item {item_id!r}: SID {shown(value)} is not a sequence of `<letters_number>` tokens "
                "such as <a_12><b_3><c_200>"
            )
        return [(p, int(c)) for p, c in tokens]
    if not isinstance(value, list) or not value:
        raise DataError(
            f"{path}: item {item_id!r}: expected a non-empty list of SID tokens such as "
            f"[\"<a_12>\", \"<b_3>\"], got {shown(value)}"
        )
    parsed = []
    for level, token in enumerate(value):
        match = TOKEN_RE.fullmatch(token.strip()) if isinstance(token, str) else None
        if match is None:
            raise DataError(
                f"{path}: item {item_id!r}: token {level} is {shown(token)}; expected `<letters_number>` "
                "such as <a_12>"
            )
        parsed.append((match.group(1), int(match.group(2))))
    return parsed


def read_sid_file(path: str | Path) -> tuple[dict[str, list[int]], list[str]]:
    """Every item's codes and the token prefixes of the levels (checked to agree across items)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: sid_file not found; expected a JSON object mapping item id to SID tokens "
                        "(MiniOneRec's `*.index.json`)")
    with open_text(path) as f:
        try:
            data = json.load(f, object_pairs_hook=_no_duplicate_keys(path))
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: line {err.lineno}: invalid JSON ({err.msg})") from err
    if not isinstance(data, dict) or not data:
        raise DataError(
            f"{path}: expected a non-empty JSON object mapping item id to SID tokens, e.g. "
            f"{{\"0\": [\"<a_1>\", \"<b_2>\"]}}; got {shown(data if not isinstance(data, dict) else {})}"
        )
    prefixes: list[str] | None = None
    first = ""
    items: dict[str, list[int]] = {}
    for item_id, value in data.items():
        parsed = parse_tokens(path, item_id, value)
        item_prefixes = [p for p, _ in parsed]
        if prefixes is None:
            prefixes, first = item_prefixes, item_id
            if len(set(prefixes)) != len(prefixes):
                raise DataError(
                    f"{path}: item {item_id!r}: token prefixes {prefixes} repeat; expected one distinct prefix "
                    "per level"
                )
        elif item_prefixes != prefixes:
            what = "length" if len(item_prefixes) != len(prefixes) else "prefixes"
            raise DataError(
                f"{path}: item {item_id!r}: SID {what} differ from item {first!r} "
                f"({len(item_prefixes)} tokens with prefixes {item_prefixes}, expected {len(prefixes)} tokens "
                f"with prefixes {prefixes}); every item needs the same levels"
            )
        items[str(item_id)] = [c for _, c in parsed]
    assert prefixes is not None
    return items, prefixes


def import_sids(path: str | Path, item_ids: list[str], codebook_size: int = 1) -> ImportedSIDs:
    """The SIDs of `path` for the catalog `item_ids` (in that order); every catalog item needs one.

    Items of the file that the catalog lacks are ignored (counted in `unused_items`).
    """
    path = Path(path)
    items, prefixes = read_sid_file(path)
    missing = [i for i in item_ids if i not in items]
    if missing:
        examples = ", ".join(repr(i) for i in missing[:_EXAMPLES])
        raise DataError(
            f"{path}: {len(missing)} of the dataset's {len(item_ids)} items have no SID (e.g. {examples}); "
            "expected a SID for every item of the prepared dataset (was it prepared from the same data?)"
        )
    all_codes = np.asarray(list(items.values()), dtype=np.int64)
    sizes = [max(int(m) + 1, codebook_size) for m in all_codes.max(axis=0)]
    codes = np.asarray([items[i] for i in item_ids], dtype=np.int64).reshape(len(item_ids), len(prefixes))
    used = set(item_ids)
    return ImportedSIDs(
        item_ids=list(item_ids),
        codes=codes,
        codebook_sizes=sizes,
        token_prefixes=prefixes,
        file_items=len(items),
        unused_items=sum(1 for i in items if i not in used),
        file_item_ids=list(items),
    )


def read_embeddings(path: str | Path, imported: ImportedSIDs) -> np.ndarray:
    """The rows of a `.npy` embedding file for the imported items: one row per item of the SID file, in the
    file's order (MiniOneRec's `*.emb-*.npy` beside its `*.index.json`)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: sid_embeddings_file not found; expected a .npy with one row per item of the "
                        "SID file")
    try:
        emb = np.load(path)
    except (ValueError, OSError) as err:
        raise DataError(f"{path}: not a readable .npy array ({err})") from err
    order = imported.file_item_ids or []
    if emb.ndim != 2 or emb.shape[0] != len(order):
        raise DataError(f"{path}: embeddings of shape {emb.shape}; expected ({len(order)} items of the SID file "
                        "in its order, dim)")
    row = {item: r for r, item in enumerate(order)}
    return emb[[row[item] for item in imported.item_ids]].astype(np.float32)


def describe_collisions(path: str | Path, imported: ImportedSIDs) -> str:
    """`''` when every SID is unique, else a sentence naming how many items share a SID, with examples."""
    groups = colliding_groups(imported.codes)
    if not groups:
        return ""
    shared = sum(len(g) for g in groups)
    examples = "; ".join(
        " and ".join(repr(imported.item_ids[int(r)]) for r in group[:3]) for group in groups[:3]
    )
    return (
        f"{path}: {shared} of the dataset's items share their SID with another item ({len(groups)} groups, e.g. "
        f"{examples})"
    )


def extra_prefix(prefixes: list[str]) -> str:
    """A token prefix for an appended level: the first letter a..z the file's levels do not use."""
    for letter in "abcdefghijklmnopqrstuvwxyz":
        if letter not in prefixes:
            return letter
    raise DataError(f"SID file levels use every letter a..z as prefix ({prefixes}); no letter left for a new level")


def same_distance(last_level_size: int):
    """The distance function for `reassign` on imported SIDs, which carry no distances.

    Every last-level code is equally near: the first item of a colliding group (catalog order) keeps
    its SID, the others move to the lowest free last-level code under the same prefix.
    """

    def distances(rows: np.ndarray) -> np.ndarray:
        return np.zeros((len(rows), last_level_size), dtype=np.float64)

    return distances
