"""`SETRecRanker`: SETRec's grounded scores behind the `Ranker` protocol.

The token corpus and the text prompt's keys and values depend only on the model's weights, so they are
computed once and reused for every batch; each batch is then one forward pass of the LLM over its item
tokens and queries, and one matrix product per identifier dimension.
"""

from __future__ import annotations

import torch

from rlrec.ranking.scores import ScoreRanker
from rlrec.setrec.model import PromptKV, SETRecModel


class SETRecRanker(ScoreRanker):
    """Top-k items per history by grounded SETRec scores; `batch_size` histories per forward pass."""

    def __init__(self, model: SETRecModel, batch_size: int = 32) -> None:
        super().__init__(self.scores, model.item_ids, batch_size=batch_size, model=model)
        self._corpus: torch.Tensor | None = None
        self._prompt_kv: PromptKV | None = None

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def max_history(self) -> int:
        return self.model.config.max_history

    @torch.no_grad()
    def scores(self, histories: list[list[str]]) -> torch.Tensor:
        """Grounded scores `(batch, num_items)` on the CPU (eval mode), with the cached corpus and prompt."""
        was_training = self.model.training
        self.model.eval()
        try:
            if self._corpus is None:
                self._corpus, _ = self.model.corpus()
                self._prompt_kv = self.model.prompt_key_values()
            return self.model.score(histories, corpus=self._corpus, prompt_kv=self._prompt_kv)
        finally:
            self.model.train(was_training)

    def refresh(self) -> None:
        """Forget the cached corpus and prompt keys/values (call after the model's weights change)."""
        self._corpus = None
        self._prompt_kv = None
