"""Collision resolution: make every item's code tuple unique, so an SID names exactly one item.

Quantizers put near-identical items on the same codes (a film and its sequel, two sizes of one
product). A generated SID must map back to a single item, so after quantisation:

- `append_level` (TIGER, MiniOneRec) adds one level whose code numbers the items that share a
  tuple (0, 1, 2, ... in catalog order; 0 for everyone else). Simple and exact, but it adds a
  token to every SID, and the extra level carries no meaning.
- `reassign` keeps, in each colliding group, the item closest to its last-level code and moves the
  others to the nearest last-level code still free under the same prefix (the first levels are
  kept, so the coarse semantics are too). Only items whose prefix has no free code left fall back
  to an appended level.
- `none` accepts the codes only when they are already unique.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from rlrec.sid.config import COLLISION_STRATEGIES
from rlrec.utils.errors import ConfigError

DistanceFn = Callable[[np.ndarray], np.ndarray]  # rows (m,) -> squared distances (m, K_last)


@dataclass
class Resolution:
    """Codes after collision resolution and what it took to get there."""

    codes: np.ndarray  # (n, levels') int64, every row unique
    codebook_sizes: list[int]
    strategy: str
    moved: int = 0  # items reassigned to another last-level code
    extra_level_size: int | None = None  # size of the appended level; None when no level was appended


def group_codes(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row, the id of its distinct code tuple; and how many rows each tuple has."""
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return inverse.reshape(-1), counts


def colliding_groups(codes: np.ndarray) -> list[np.ndarray]:
    """Row indices of every group of two or more items sharing a full code tuple (in tuple order)."""
    inverse, counts = group_codes(codes)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(counts)[:-1]
    return [rows for rows in np.split(order, bounds) if rows.size > 1]


def rank_within_groups(codes: np.ndarray) -> np.ndarray:
    """Each row's position (0, 1, ...) among the rows sharing its code tuple, in row order."""
    inverse, counts = group_codes(codes)
    order = np.argsort(inverse, kind="stable")
    first = np.cumsum(counts) - counts
    rank = np.empty(len(codes), dtype=np.int64)
    rank[order] = np.arange(len(codes)) - first[inverse[order]]
    return rank


def append_level(codes: np.ndarray, codebook_sizes: list[int]) -> Resolution:
    """Add a level numbering the items of each colliding group; no level when nothing collides."""
    rank = rank_within_groups(codes)
    size = int(rank.max()) + 1
    if size == 1:
        return Resolution(codes.copy(), list(codebook_sizes), "append_level")
    new = np.concatenate([codes, rank[:, None]], axis=1)
    return Resolution(new, [*codebook_sizes, size], "append_level", extra_level_size=size)


def reassign(codes: np.ndarray, codebook_sizes: list[int], distances: DistanceFn) -> Resolution:
    """Move colliding items to the nearest free last-level code under their prefix (see module doc)."""
    new = codes.copy()
    groups = colliding_groups(codes)
    if not groups:
        return Resolution(new, list(codebook_sizes), "reassign")
    used: dict[tuple[int, ...], set[int]] = {}
    for row in codes.tolist():
        used.setdefault(tuple(row[:-1]), set()).add(row[-1])
    rows = np.concatenate(groups)
    dist = np.asarray(distances(rows), dtype=np.float64)
    if dist.shape != (len(rows), codebook_sizes[-1]):
        raise ValueError(
            f"distance function returned shape {dist.shape}, expected {(len(rows), codebook_sizes[-1])}"
        )
    position = {int(r): i for i, r in enumerate(rows)}
    moved = 0
    for group in groups:
        code = int(codes[group[0], -1])
        taken = used[tuple(codes[group[0], :-1].tolist())]
        own = dist[[position[int(r)] for r in group], code]
        order = np.argsort(own, kind="stable")  # the closest item keeps the code, then closest first
        for r in group[order[1:]]:
            for candidate in np.argsort(dist[position[int(r)]], kind="stable").tolist():
                if candidate not in taken:
                    taken.add(candidate)
                    new[r, -1] = candidate
                    moved += 1
                    break
    leftover = append_level(new, codebook_sizes)
    return Resolution(leftover.codes, leftover.codebook_sizes, "reassign", moved, leftover.extra_level_size)


def resolve_collisions(
    codes: np.ndarray, codebook_sizes: list[int], strategy: str, distances: DistanceFn | None = None
) -> Resolution:
    """Apply `strategy` (append_level | reassign | none); the result's codes are unique (checked)."""
    codes = np.asarray(codes, dtype=np.int64)
    if strategy == "append_level":
        result = append_level(codes, codebook_sizes)
    elif strategy == "reassign":
        if distances is None:
            raise ConfigError("sid: collision=reassign needs a quantizer that reports last-level distances")
        result = reassign(codes, codebook_sizes, distances)
    elif strategy == "none":
        groups = colliding_groups(codes)
        if groups:
            shared = sum(len(g) for g in groups)
            raise ConfigError(
                f"sid: collision=none but {shared} items share their codes with another item ({len(groups)} "
                "groups); expected unique codes. Use collision: append_level or reassign"
            )
        result = Resolution(codes.copy(), list(codebook_sizes), "none")
    else:
        raise ConfigError(f"sid: collision={strategy!r}; expected one of {', '.join(COLLISION_STRATEGIES)}")
    if len(np.unique(result.codes, axis=0)) != len(result.codes):  # an internal error, never bad input
        raise AssertionError(f"collision resolution ({strategy}) left duplicate SIDs")
    return result
