"""`SIDRanker`: a generative SID model ranked by constrained beam search over the trie of real items.

Each history becomes the next-item prompt of `rlrec.tasks.prompts.next_item_prompter`, rendered exactly
as TRL's `SFTTrainer` renders the prompt of a prompt-completion example (the chat template with the
generation prompt, or for a from-scratch SID model `<bos>` and the history's SIDs), tokenized without
special tokens. A model only ranks well when it is asked the way it was trained, so this is the one
place a history becomes a prompt for ranking. The GRPO rollout renders its prompts with the same
`rlrec.tasks.prompts.render_prompt` (`rlrec.generation.rollout.render_prompts`, which keeps each prompt's ids
as a list, as TRL wants them back) and left-pads them itself.

Histories are decoded `batch_size` at a time, grouped by length (a batch costs its longest prompt), and
returned in input order. The history's items (`exclude_history`) are masked inside the search at the last
SID level, and a candidate pool is searched over its own trie, so k allowed items come back whenever
they exist. The score is the summed log-probability of the item's SID tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from rlrec.generation import SIDConstraint, constrained_beam_search
from rlrec.ranking.base import Ranked, Ranker
from rlrec.sid.index import SIDIndex
from rlrec.tasks.prompts import next_item_prompter, render_prompt
from rlrec.utils.defaults import DEFAULT_NUM_BEAMS, DEFAULT_RANKING_BATCH_SIZE
from rlrec.utils.errors import ConfigError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def check_index_matches_tokenizer(index: SIDIndex, tokenizer: PreTrainedTokenizerBase,
                                  model: PreTrainedModel | None = None) -> None:
    """Raise ConfigError unless every SID token of `index` is a token of `tokenizer` (and has a model row)."""
    vocab = tokenizer.get_vocab()
    tokens = index.vocabulary()
    missing = [t for t in tokens if t not in vocab]
    if missing:
        where = f" ({index.source or 'SID index'} against the tokenizer of {tokenizer.name_or_path or 'the model'})"
        raise ConfigError(
            f"SID index does not match the model's tokenizer: {len(missing)} of {len(tokens)} SID tokens missing "
            f"(first: {missing[0]!r}); evaluate with the SID index the model was trained with{where}"
        )
    if model is not None:
        from rlrec.models.checkpoint import embedding_rows

        rows = embedding_rows(model)
        top = max(vocab[t] for t in tokens)
        if top >= rows:
            raise ConfigError(
                f"SID token id {top} is beyond the model's {rows} embedding rows: resize the embeddings after "
                "adding the SID tokens"
            )


def encode_prompts(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[Any],
                   device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded `input_ids` and `attention_mask` of prompts (TRL prompt values: a message list or text),
    each rendered as SFT rendered it and tokenized without special tokens."""
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ConfigError("the tokenizer has neither a pad token nor an eos token to pad prompts with")
        tokenizer.pad_token = tokenizer.eos_token  # as load_tokenizer does; padding is masked out anyway
    batch = tokenizer([render_prompt(tokenizer, prompt) for prompt in prompts], add_special_tokens=False,
                      padding=True, padding_side="left", return_tensors="pt")
    return batch["input_ids"].to(device), batch["attention_mask"].to(device)


class SIDRanker(Ranker):
    """Top-k items per history by constrained beam search of a causal LM over the SID trie.

    Args:
        model: a causal LM whose tokenizer holds the SID tokens of `index`. It is put in eval mode for
            each call and given back in the mode it was in (training stages rank their live model).
        index: the `SIDIndex` the model was trained with; beam rows map to `index.item_ids`.
        num_beams: beams of the search (raised to k when a call asks for more items).
        batch_size: histories decoded together (the KV cache holds `batch_size` prompts).
        max_history: keep only the most recent items of each history (None: all of them).
        device: where the inputs go; None: the model's device.
    """

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, index: SIDIndex, *,
                 num_beams: int = DEFAULT_NUM_BEAMS, batch_size: int = DEFAULT_RANKING_BATCH_SIZE,
                 max_history: int | None = None,
                 device: str | torch.device | None = None) -> None:
        for name, value in (("num_beams", num_beams), ("batch_size", batch_size)):
            if value < 1:
                raise ConfigError(f"{name}={value}; expected a positive integer")
        if max_history is not None and max_history < 1:
            raise ConfigError(f"max_history={max_history}; expected a positive integer or None")
        check_index_matches_tokenizer(index, tokenizer, model)
        self.model = model
        self.tokenizer = tokenizer
        self.index = index
        self.item_ids = index.item_ids
        self.num_beams = num_beams
        self.batch_size = batch_size
        self.max_history = max_history
        self.prompter = next_item_prompter(tokenizer, index, max_history=max_history)
        self._device = torch.device(device) if device is not None else next(model.parameters()).device
        self.constraint = SIDConstraint.from_index(index, tokenizer).to(self._device)
        self._pool: tuple[frozenset[str], SIDConstraint, list[str]] | None = None

    @property
    def device(self) -> torch.device:
        return self._device

    def knows(self, item_id: str) -> bool:
        return item_id in self.index

    def identifier(self, item_id: str) -> str:
        return self.index.sid(item_id)

    def prompts(self, histories: Sequence[Sequence[str]]) -> list[Any]:
        """The next-item prompt of each history (after the history cap): what SFT trained the model to answer."""
        return [self.prompter(history) for history in histories]

    def prompt_texts(self, histories: Sequence[Sequence[str]]) -> list[str]:
        """The rendered prompts, as the model reads them."""
        return [render_prompt(self.tokenizer, prompt) for prompt in self.prompts(histories)]

    def search_space(self, pool: frozenset[str] | None) -> tuple[SIDConstraint, list[str]]:
        """The constraint and the item of each of its rows: the whole index, or the pool's own trie (kept
        for the next call: evaluation ranks many batches against one pool)."""
        if pool is None:
            return self.constraint, self.item_ids
        if self._pool is None or self._pool[0] != pool:
            subset = self.index.subset(pool)
            self._pool = (pool, SIDConstraint.from_index(subset, self.tokenizer).to(self._device), subset.item_ids)
        return self._pool[1], self._pool[2]

    def _rank(self, histories: list[list[str]], k: int, exclude_history: bool,
              pool: frozenset[str] | None) -> list[Ranked]:
        constraint, item_ids = self.search_space(pool)
        rows = {item: row for row, item in enumerate(item_ids)}
        beams = max(self.num_beams, k)
        order = sorted(range(len(histories)), key=lambda i: len(histories[i]))
        out: list[Ranked] = [[] for _ in histories]
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                for start in range(0, len(order), self.batch_size):
                    chunk = order[start: start + self.batch_size]
                    batch = [histories[i] for i in chunk]
                    input_ids, attention_mask = encode_prompts(self.tokenizer, self.prompts(batch), self._device)
                    exclude = None
                    if exclude_history:
                        exclude = [sorted({rows[item] for item in history if item in rows}) for history in batch]
                    found = constrained_beam_search(self.model, input_ids, attention_mask, constraint, beams,
                                                    exclude=exclude)
                    for i, found_rows, scores in zip(chunk, found.item_indices.tolist(), found.scores.tolist(),
                                                     strict=True):
                        out[i] = [(item_ids[r], float(s)) for r, s in zip(found_rows, scores, strict=True)
                                  if r >= 0][:k]
        finally:
            self.model.train(was_training)
        return out
