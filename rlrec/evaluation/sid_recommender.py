"""`SIDRecommender`: a generative model behind the same `recommend(histories, k)` interface as the baselines.

Each history becomes the next-item prompt of `rlrec.tasks.prompts.next_item_prompter`, rendered exactly
as TRL's `SFTTrainer` renders the prompt of a prompt-completion example: the chat template with the
generation prompt (or, for a from-scratch SID model, `<bos>` and the history's SIDs), tokenized without
special tokens (the template already has them; `apply_chat_template(tokenize=True)` does the same). A
model only ranks well when it is asked the way it was trained, so this must not drift from SFT.

The prompts of a batch are left-padded and decoded by `constrained_beam_search` over the SID trie:
every returned item is a real, distinct item of the index, best first. Fewer than `k` items come
back only when the catalog has fewer reachable items than `num_beams`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlrec.generation import SIDConstraint, constrained_beam_search
from rlrec.sid.index import SIDIndex
from rlrec.tasks.prompts import next_item_prompter, render_prompt
from rlrec.utils.errors import ConfigError


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


class SIDRecommender:
    """Top-k items per history by constrained beam search of a causal LM over the SID trie.

    Args:
        model: a causal LM whose tokenizer holds the SID tokens of `index`. It is put in eval mode for
            each `recommend` call and given back in the mode it was in (so the SFT stage can evaluate
            its training model).
        index: the `SIDIndex` the model was trained with; beam rows map to `index.item_ids`.
        num_beams: beams of the search, the most items one call can return (`k <= num_beams`).
        batch_size: histories decoded together (the KV cache holds `batch_size` prompts).
        max_history: keep only the most recent items of each history (None: all of them).
        phrasing: which next-item phrasing of `rlrec.tasks.prompts` to ask with (0, as in SFT's main task).
        device: where the inputs go; None: the model's device.
    """

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, index: SIDIndex,
                 num_beams: int = 20, batch_size: int = 32, max_history: int | None = None, phrasing: int = 0,
                 device: str | torch.device | None = None) -> None:
        if num_beams < 1:
            raise ConfigError(f"num_beams={num_beams}; expected a positive integer")
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size}; expected a positive integer")
        if max_history is not None and max_history < 1:
            raise ConfigError(f"max_history={max_history}; expected a positive integer or None")
        check_index_matches_tokenizer(index, tokenizer, model)
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise ConfigError("the tokenizer has neither a pad token nor an eos token to pad prompts with")
            tokenizer.pad_token = tokenizer.eos_token  # as load_tokenizer does; padding is masked out anyway
        self.model = model
        self.tokenizer = tokenizer
        self.index = index
        self.item_ids = index.item_ids
        self.item_rows = {item: row for row, item in enumerate(self.item_ids)}  # beam rows of the items
        self.num_beams = num_beams
        self.batch_size = batch_size
        self.max_history = max_history
        self.phrasing = phrasing
        self.prompter = next_item_prompter(tokenizer, index, phrasing)
        self.device = torch.device(device) if device is not None else next(model.parameters()).device
        self.constraint = SIDConstraint.from_index(index, tokenizer).to(self.device)

    def restricted_to(self, items: Iterable[str]) -> SIDRecommender:
        """The same model ranking only `items`: beam search over their trie; prompts still use every item's SID."""
        pool = self.index.subset(items)
        restricted = copy.copy(self)
        restricted.constraint = SIDConstraint.from_index(pool, self.tokenizer).to(self.device)
        restricted.item_ids = pool.item_ids
        restricted.item_rows = {item: row for row, item in enumerate(pool.item_ids)}
        return restricted

    def prompt_texts(self, histories: Sequence[Sequence[str]]) -> list[str]:
        """The rendered prompts (what SFT trained the model to answer with the next item's SID)."""
        texts = []
        for history in histories:
            history = list(history)
            if self.max_history is not None:
                history = history[-self.max_history:]
            texts.append(render_prompt(self.tokenizer, self.prompter(history)))
        return texts

    def encode(self, histories: Sequence[Sequence[str]]) -> dict[str, torch.Tensor]:
        """Left-padded `input_ids` and `attention_mask` of the prompts, on the device."""
        batch = self.tokenizer(self.prompt_texts(histories), add_special_tokens=False, padding=True,
                               padding_side="left", return_tensors="pt")
        return {"input_ids": batch["input_ids"].to(self.device),
                "attention_mask": batch["attention_mask"].to(self.device)}

    def recommend(self, histories: Sequence[Sequence[str]], k: int) -> list[list[str]]:
        """Top-`k` distinct item ids per history, best first (shorter only for a tiny catalog)."""
        if not 1 <= k <= self.num_beams:
            raise ConfigError(
                f"cannot recommend k={k} items with num_beams={self.num_beams}: beam search returns at most "
                "num_beams items; raise num_beams to at least the largest K"
            )
        was_training = self.model.training
        self.model.eval()
        try:
            out: list[list[str]] = []
            with torch.inference_mode():
                for start in range(0, len(histories), self.batch_size):
                    out.extend(self._recommend_batch(histories[start:start + self.batch_size], k))
            return out
        finally:
            self.model.train(was_training)

    def _recommend_batch(self, histories: Sequence[Sequence[str]], k: int) -> list[list[str]]:
        inputs = self.encode(histories)
        beams = constrained_beam_search(self.model, inputs["input_ids"], inputs["attention_mask"], self.constraint,
                                        self.num_beams)
        rows = beams.item_indices.tolist()
        return [[self.item_ids[r] for r in row if r >= 0][:k] for row in rows]
