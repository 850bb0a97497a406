"""A random SID index over given items, for tests and smoke runs: what a tiny model learns over."""

from __future__ import annotations

import numpy as np

from rlrec.sid.index import SIDIndex


def synthetic_sid_index(item_ids: list[str], codebook_sizes: tuple[int, ...] = (4, 4, 8), *, seed: int = 0):
    """A SID index giving `item_ids` distinct random codes: the index a test's tiny model learns over."""
    rng = np.random.default_rng(seed)
    space = np.array(np.meshgrid(*[np.arange(s) for s in codebook_sizes], indexing="ij"))
    space = space.reshape(len(codebook_sizes), -1).T
    return SIDIndex(list(item_ids), space[rng.choice(len(space), len(item_ids), replace=False)], list(codebook_sizes))
