"""`SIDConstraint`: the SID prefix trie as tensors, so decoding masks a whole batch of beams at once.

An SID has a fixed depth L, and at step `l` only the level-`l` tokens can be valid. So instead of a
mask over the whole vocabulary per trie node, the constraint keeps, per level:

    level_token_ids[l]: long (C_l,)            token id of code c at level l (column c)
    transitions[l]:     int32 (N_l, C_l)       child node reached from node n by code c, or -1;
                                               at the last level the item's row instead of a node

A decoding step gathers the `C_l` level columns of the logits, gathers `transitions[l][nodes]` for
every beam (one indexing op), and masks with `>= 0`: no Python per beam, and memory proportional
to the trie, not to the vocabulary. The numbering comes from `rlrec.sid.trie.PrefixTrie` (node 0
of level 0 is the root; leaf values are item rows, in the order of `codes`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from rlrec.sid.trie import PrefixTrie
from rlrec.utils.errors import ConfigError

if TYPE_CHECKING:  # the core needs only codes and token ids; SIDIndex is an optional entry point
    from rlrec.sid.index import SIDIndex


class SIDConstraint:
    """Which SID token may come next, for every beam of a batch at once.

    Args:
        codes: `(n_items, L)` integer codes, one row per item; row `i` is item index `i` in decoding
            outputs. Rows must be distinct (resolve collisions first).
        level_token_ids: `level_token_ids[l][c]` is the token id of code `c` at level `l`; its length
            is level `l`'s codebook size. All ids must be distinct.
        trie: an already-built `PrefixTrie` of the same codes (e.g. `SIDIndex.trie`), to skip rebuilding it.
    """

    def __init__(
        self,
        codes: np.ndarray,
        level_token_ids: Sequence[Sequence[int]],
        *,
        trie: PrefixTrie | None = None,
    ) -> None:
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[0] == 0:
            raise ValueError(f"SIDConstraint: codes must be a non-empty (n_items, levels) array, got {codes.shape}")
        if not np.issubdtype(codes.dtype, np.integer):
            raise ValueError(f"SIDConstraint: codes must be integers, got {codes.dtype}")
        levels = codes.shape[1]
        if len(level_token_ids) != levels:
            raise ValueError(
                f"SIDConstraint: codes have {levels} levels but level_token_ids has {len(level_token_ids)}"
            )
        sizes = [len(ids) for ids in level_token_ids]
        flat = [int(t) for ids in level_token_ids for t in ids]
        if min(flat, default=-1) < 0 or len(set(flat)) != len(flat):
            raise ValueError("SIDConstraint: level_token_ids must be distinct non-negative token ids")
        if trie is None:
            trie = PrefixTrie(codes, sizes)  # checks code ranges and uniqueness
        elif trie.codebook_sizes != sizes or trie.num_levels != levels:
            raise ValueError(
                f"SIDConstraint: trie of sizes {trie.codebook_sizes} does not match level_token_ids {sizes}"
            )
        self.num_levels = levels
        self.num_items = int(codes.shape[0])
        self.max_token_id = max(flat)  # the model's vocabulary must be larger (checked before decoding)
        self.codebook_sizes = sizes
        self.codes = torch.as_tensor(codes.astype(np.int64))
        self.level_token_ids = [torch.tensor([int(t) for t in ids], dtype=torch.long) for ids in level_token_ids]
        self.transitions = [torch.as_tensor(t, dtype=torch.int32) for t in trie.transitions]
        self._token_to_code = {t: (level, c) for level, ids in enumerate(level_token_ids) for c, t in enumerate(ids)}
        # Each item's node at levels 1..L-1 and the items under every such node, for `exclusion`.
        self.ancestors: list[torch.Tensor] = []
        self.leaf_counts: list[torch.Tensor] = []
        node = torch.zeros(self.num_items, dtype=torch.long)
        for level in range(levels - 1):
            node = self.transitions[level][node, self.codes[:, level]].long()
            self.ancestors.append(node)
            self.leaf_counts.append(torch.bincount(node, minlength=self.transitions[level + 1].shape[0]))
        self._on_device: dict[torch.device, SIDConstraint] = {self.device: self}

    @classmethod
    def from_index(cls, index: SIDIndex, tokenizer: Any) -> SIDConstraint:
        """The constraint of an `SIDIndex` whose tokens were added to `tokenizer`; item index = index row."""
        vocab = tokenizer.get_vocab()
        level_token_ids = []
        for level in range(index.num_levels):
            tokens = index.level_tokens(level)
            missing = [t for t in tokens if t not in vocab]
            if missing:  # a ConfigError: an index that is not the model's is a user's mistake, told in one line
                where = f"{index.source}: " if getattr(index, "source", None) else ""
                model = getattr(tokenizer, "name_or_path", "") or "the model"
                raise ConfigError(
                    f"{where}SIDConstraint: {len(missing)} SID tokens of level {level} are not in the tokenizer of "
                    f"{model} (first: {missing[0]!r}); use the SID index the model was trained with, or add "
                    "`index.vocabulary()` with `tokenizer.add_tokens` first"
                )
            level_token_ids.append([vocab[t] for t in tokens])
        return cls(index.codes, level_token_ids, trie=index.trie)

    @property
    def device(self) -> torch.device:
        return self.transitions[0].device

    def to(self, device: torch.device | str) -> SIDConstraint:
        """This constraint with its tensors on `device` (built once per device, then reused)."""
        device = torch.device(device)
        if device.type == "cuda" and device.index is None:
            device = torch.device("cuda", torch.cuda.current_device())
        if device not in self._on_device:
            moved = copy.copy(self)
            moved.codes = self.codes.to(device)
            moved.level_token_ids = [t.to(device) for t in self.level_token_ids]
            moved.transitions = [t.to(device) for t in self.transitions]
            moved.ancestors = [t.to(device) for t in self.ancestors]
            moved.leaf_counts = [t.to(device) for t in self.leaf_counts]
            self._on_device[device] = moved
        return self._on_device[device]

    # -- batched (decode-time) ---------------------------------------------------------------------------

    def children(self, level: int, nodes: torch.Tensor) -> torch.Tensor:
        """`(*nodes.shape, C_level)` int32: the child of each node per code, -1 where none.

        `nodes` may hold -1 (a dead, padded beam): its row is all -1. At the last level the values
        are item indices.
        """
        table = self.transitions[level]
        rows = table[nodes.clamp_min(0)]
        return rows.masked_fill((nodes < 0).unsqueeze(-1), -1)

    def exclusion(self, excluded: Sequence[Sequence[int]]) -> list[torch.Tensor]:
        """Per level, which children are closed to each row when the rows' `excluded` items may not be written.

        Entry `l` is `(batch, nodes at level l + 1)` bool: True where every item under that prefix is excluded
        (a beam that took it could only die); the last entry is `(batch, num_items)`: the excluded items. A
        search that masks these keeps only beams with an allowed item below them, so it returns
        min(num_beams, allowed items) real items, none excluded.
        """
        banned = torch.zeros(len(excluded), self.num_items, dtype=torch.bool, device=self.device)
        rows = [r for r, items in enumerate(excluded) for _ in items]
        cols = [int(i) for items in excluded for i in items]
        if cols and not (0 <= min(cols) and max(cols) < self.num_items):
            raise ValueError(f"exclusion: item rows must be in [0, {self.num_items}), got {min(cols)}..{max(cols)}")
        banned[rows, cols] = True
        closed = []
        for level in range(self.num_levels - 1):
            count = torch.zeros(len(excluded), len(self.leaf_counts[level]), device=self.device)
            count.index_add_(1, self.ancestors[level], banned.float())
            closed.append(count >= self.leaf_counts[level])
        return [*closed, banned]

    def level_logprobs(self, logits: torch.Tensor, level: int) -> torch.Tensor:
        """`(rows, C_level)` log-probabilities of level `level`'s tokens under the full-vocabulary softmax.

        Normalising over the whole vocabulary (not only the allowed tokens) makes scores the model's
        true sequence log-probs, the quantity a plain forward pass (or `generate`) would give.
        """
        logits = logits.float()
        return logits[:, self.level_token_ids[level]] - logits.logsumexp(dim=-1, keepdim=True)

    # -- per sequence (reference and debugging) ----------------------------------------------------------

    def item_of_tokens(self, token_ids: Sequence[int]) -> int | None:
        """The item index spelled by exactly these `L` token ids, or None."""
        codes = []
        for level, token in enumerate(token_ids):
            found = self._token_to_code.get(int(token))
            if found is None or found[0] != level:
                return None
            codes.append(found[1])
        if len(codes) != self.num_levels:
            return None
        node = 0
        for level, code in enumerate(codes):
            node = int(self.transitions[level][node, code])
            if node < 0:
                return None
        return node

    def allowed_token_ids(self, prefix_token_ids: Sequence[int]) -> list[int]:
        """Token ids that may follow a partial SID (empty for an invalid or complete prefix)."""
        level, node = len(prefix_token_ids), 0
        if level >= self.num_levels:
            return []
        for lvl, token in enumerate(prefix_token_ids):
            found = self._token_to_code.get(int(token))
            if found is None or found[0] != lvl:
                return []
            node = int(self.transitions[lvl][node, found[1]])
            if node < 0:
                return []
        codes = torch.nonzero(self.transitions[level][node] >= 0).flatten()
        return self.level_token_ids[level][codes.to(self.level_token_ids[level].device)].tolist()

    def prefix_allowed_tokens_fn(self, prompt_length: int) -> Callable[[int, torch.Tensor], list[int]]:
        """A `prefix_allowed_tokens_fn` for `model.generate` (prompts padded to `prompt_length`).

        This is the slow reference path (a Python call per beam per step): use it to check
        `constrained_beam_search` or to benchmark against, not to decode.
        """

        def allowed(batch_id: int, sequence: torch.Tensor) -> list[int]:
            return self.allowed_token_ids(sequence[prompt_length:].tolist())

        return allowed
