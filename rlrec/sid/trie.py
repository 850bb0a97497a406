"""The prefix trie of all SIDs: which code may follow a partial SID, so decoding only writes real items.

Nodes are numbered per level: level `l` has `num_nodes[l]` nodes, one per distinct prefix of
length `l` (level 0 has the single root, node 0). The whole trie is `num_levels` dense arrays:

    transitions[l]: int32 (num_nodes[l], codebook_sizes[l])
        transitions[l][node, code] = the child node at level l + 1 reached by writing `code`,
        or -1 when no item continues that way. At the last level the value is the item's row
        (its position in the index's item list) instead of a node.

Batched constrained decoding (beam search or sampling) keeps one node id per beam, starting at 0.
At step `l` it masks the logits of level `l`'s SID tokens with `transitions[l][nodes] >= 0` (one
gather for the whole batch, no Python per beam), picks codes, and moves on with
`nodes = transitions[l][nodes, codes]`; after the last step the same gather yields the item rows.
`to_torch(device)` gives these arrays as tensors. Memory is `sum_l num_nodes[l] * codebook_sizes[l]`
int32 entries: about 1 MiB for MovieLens-100k, 64 MiB for 65k distinct two-code prefixes of 256 codes.
"""

from __future__ import annotations

import numpy as np


class PrefixTrie:
    """All code tuples of a catalog, for "which codes may come next" questions."""

    def __init__(self, codes: np.ndarray, codebook_sizes: list[int]) -> None:
        codes = np.asarray(codes, dtype=np.int64)
        if codes.ndim != 2 or codes.shape[1] != len(codebook_sizes):
            raise ValueError(f"codes of shape {codes.shape} do not match {len(codebook_sizes)} levels")
        sizes = np.asarray(codebook_sizes, dtype=np.int64)
        if codes.size and ((codes < 0).any() or (codes >= sizes).any()):
            raise ValueError("codes out of range of their codebook sizes")
        self.codebook_sizes = [int(s) for s in codebook_sizes]
        self.num_levels = len(codebook_sizes)
        self.transitions: list[np.ndarray] = []
        self.counts: list[np.ndarray] = []  # counts[l][node]: items under that level-l node
        n = codes.shape[0]
        node = np.zeros(n, dtype=np.int64)  # each item's node at the current level (root = 0)
        num_nodes = 1
        for level in range(self.num_levels):
            self.counts.append(np.bincount(node, minlength=num_nodes))
            table = np.full((num_nodes, self.codebook_sizes[level]), -1, dtype=np.int32)
            if level < self.num_levels - 1:
                # Children: distinct (node, code) pairs, numbered in sorted order.
                keys = node * self.codebook_sizes[level] + codes[:, level]
                uniq, child = np.unique(keys, return_inverse=True)
                table[uniq // self.codebook_sizes[level], uniq % self.codebook_sizes[level]] = np.arange(
                    len(uniq)
                )
                node, num_nodes = child.reshape(-1), len(uniq)
            else:
                if len(np.unique(node * self.codebook_sizes[level] + codes[:, level])) != n:
                    raise ValueError("duplicate code tuples: resolve collisions before building the trie")
                table[node, codes[:, level]] = np.arange(n, dtype=np.int32)
            self.transitions.append(table)

    @property
    def num_nodes(self) -> list[int]:
        """Nodes per level (distinct prefixes of length 0, 1, ..., num_levels - 1)."""
        return [t.shape[0] for t in self.transitions]

    def node_of(self, prefix: tuple[int, ...]) -> int | None:
        """The node id of a prefix shorter than a full SID, or None when no item has that prefix."""
        if len(prefix) >= self.num_levels:
            return None
        node = 0
        for level, code in enumerate(prefix):
            if not 0 <= code < self.codebook_sizes[level]:
                return None
            node = int(self.transitions[level][node, code])
            if node < 0:
                return None
        return node

    def allowed(self, prefix: tuple[int, ...]) -> list[int]:
        """Codes that may follow `prefix` (empty for an unknown or complete prefix)."""
        node = self.node_of(tuple(prefix))
        if node is None:
            return []
        return np.flatnonzero(self.transitions[len(prefix)][node] >= 0).tolist()

    def item_at(self, codes: tuple[int, ...]) -> int | None:
        """The item row of a full code tuple, or None when it is not an item."""
        if len(codes) != self.num_levels:
            return None
        node = self.node_of(tuple(codes[:-1]))
        if node is None or not 0 <= codes[-1] < self.codebook_sizes[-1]:
            return None
        row = int(self.transitions[-1][node, codes[-1]])
        return row if row >= 0 else None

    def is_complete(self, prefix: tuple[int, ...]) -> bool:
        """True when `prefix` is a full SID of an item."""
        return self.item_at(tuple(prefix)) is not None

    def count_under(self, prefix: tuple[int, ...]) -> int:
        """Items whose SID starts with `prefix` (1 for a complete SID, 0 for an unknown prefix)."""
        prefix = tuple(prefix)
        if len(prefix) == self.num_levels:
            return int(self.is_complete(prefix))
        node = self.node_of(prefix)
        return 0 if node is None else int(self.counts[len(prefix)][node])

    def allowed_mask(self, level: int) -> np.ndarray:
        """Boolean `(num_nodes[level], codebook_sizes[level])`: which codes each level-`level` node allows."""
        return self.transitions[level] >= 0

    def to_torch(self, device: str | None = None) -> list:
        """`transitions` as int64 torch tensors on `device`, ready for batched gathers while decoding."""
        import torch

        return [torch.as_tensor(t, dtype=torch.long, device=device) for t in self.transitions]
