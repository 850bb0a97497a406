"""`SETRecRecommender`: the `Recommender` protocol over a SETRec model, for `evaluate_recommender`.

The token corpus and the text prompt's keys and values depend only on the model's weights, so they are
computed once and reused for every batch; each batch is then one forward pass of the LLM over its item
tokens and queries, and one matrix product per identifier dimension.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

import torch

from rlrec.evaluation.baselines import candidate_mask, mask_candidates, padded_ids, score_to_ranked
from rlrec.setrec.model import PromptKV, SETRecModel


class SETRecRecommender:
    """Top-k items per history by grounded SETRec scores; `batch_size` histories per forward pass."""

    def __init__(self, model: SETRecModel, batch_size: int = 32, exclude_history: bool = False) -> None:
        self.model = model
        self.batch_size = batch_size
        self.exclude_history = exclude_history
        self._corpus: torch.Tensor | None = None
        self._prompt_kv: PromptKV | None = None
        self.candidates: torch.Tensor | None = None  # bool mask over the model's items; None: every item

    def restricted_to(self, items: Iterable[str]) -> SETRecRecommender:
        """The same model ranking only `items` (the cold-start protocol: cold items only); a corpus already
        computed is shared."""
        restricted = copy.copy(self)
        restricted.candidates = candidate_mask(self.model.index, items)
        return restricted

    @property
    def device(self) -> torch.device:
        return self.model.device

    @torch.no_grad()
    def scores(self, histories: Sequence[Sequence[str]]) -> torch.Tensor:
        """Grounded scores `(batch, num_items)` on the CPU (eval mode), with the cached corpus and prompt."""
        was_training = self.model.training
        self.model.eval()
        try:
            if self._corpus is None:
                self._corpus, _ = self.model.corpus()
                self._prompt_kv = self.model.prompt_key_values()
            return self.model.score([list(h) for h in histories], corpus=self._corpus, prompt_kv=self._prompt_kv)
        finally:
            self.model.train(was_training)

    @torch.no_grad()
    def ranked(self, histories: Sequence[Sequence[str]], k: int,
               exclude_history: bool | None = None) -> list[list[tuple[str, float]]]:
        """Top-`k` `(item_id, grounded score)` per history, `batch_size` histories per forward pass; the
        history's items are left out when `exclude_history` (default: the recommender's setting)."""
        exclude = self.exclude_history if exclude_history is None else exclude_history
        out: list[list[tuple[str, float]]] = []
        for start in range(0, len(histories), self.batch_size):
            batch = [list(h) for h in histories[start:start + self.batch_size]]
            scores = mask_candidates(self.scores(batch), self.candidates)
            out.extend(score_to_ranked(scores, self.model.item_ids, k, exclude=batch if exclude else None,
                                       index=self.model.index))
        return out

    def recommend(self, histories: Sequence[Sequence[str]], k: int) -> list[list[str | None]]:
        """Top-`k` item ids per history, padded with None where fewer items can be ranked (`score_to_topk`)."""
        return padded_ids(self.ranked(histories, k), min(k, len(self.model.item_ids)))

    def refresh(self) -> None:
        """Forget the cached corpus and prompt keys/values (call after the model's weights change)."""
        self._corpus = None
        self._prompt_kv = None
