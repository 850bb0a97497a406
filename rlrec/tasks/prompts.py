"""The next-item prompt shared by SFT, evaluation, GRPO and inference.

A model only recommends well when it is asked the way it was trained, so every stage that asks a model
for the next item builds its prompt here. Training tasks may use other phrasings (see
`NEXT_ITEM_PHRASINGS`); phrasing 0 is the one evaluation, GRPO and inference use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from rlrec.sid.index import SIDIndex

Messages = list[dict[str, str]]
Prompt = Messages | str  # a chat prompt, or the plain text of a from-scratch SID model

NEXT_ITEM_PHRASINGS: tuple[str, ...] = (
    "A user interacted with these items, oldest first: {history}. Which item comes next?",
    "Items the user chose, in order: {history}. Predict the next one.",
    "History: {history}. What will this user pick next?",
)


def user_message(content: str) -> dict[str, str]:
    return {"role": "user", "content": content}


def assistant_message(content: str) -> dict[str, str]:
    return {"role": "assistant", "content": content}


def next_item_prompt(history_sids: Sequence[str], phrasing: int = 0) -> Messages:
    """The user turn asking for the next item after `history_sids` (SID strings, oldest first)."""
    template = NEXT_ITEM_PHRASINGS[phrasing % len(NEXT_ITEM_PHRASINGS)]
    return [user_message(template.format(history=", ".join(history_sids)))]


def history_prompt(history: Sequence[str], index: SIDIndex, phrasing: int = 0) -> Messages:
    """`next_item_prompt` for a history of item ids; items without a SID (not in `index`) are skipped."""
    return next_item_prompt([index.sid(item) for item in history if item in index], phrasing)


def next_item_prompter(tokenizer: Any, index: SIDIndex, phrasing: int = 0,
                       max_history: int | None = None) -> Callable[[Sequence[str]], Prompt]:
    """`history -> prompt`, the next-item prompt as `tokenizer`'s model was trained on it, from the last
    `max_history` items of the history (all of them for None).

    A from-scratch model's SID-only tokenizer (`rlrec.models.scratch`) gets `<bos>` and the history's SIDs,
    as a plain string, and so does an LLM trained on SID-only prompts (its start token, then the SIDs:
    `rlrec.models.sid_vocab.uses_sid_only_prompts`); every other model gets `history_prompt`'s chat
    messages. Which of the two is decided once here (reading the vocabulary takes a fraction of a
    millisecond, too much per prompt of a 96k-row GRPO dataset), so callers that ask for many prompts build
    one prompter and reuse it. SFT's next-item task, GRPO's prompts and every ranking
    (`rlrec.ranking.SIDRanker`) use it.
    """
    from rlrec.models.sid_vocab import sid_prompt_start, uses_sid_only_prompts

    if max_history is not None and max_history < 1:
        raise ValueError(f"max_history={max_history}; expected a positive integer or None")
    start = -max_history if max_history else None
    if uses_sid_only_prompts(tokenizer):
        first = sid_prompt_start(tokenizer)
        return lambda history: first + "".join(index.sid(item) for item in list(history)[start:] if item in index)
    return lambda history: history_prompt(list(history)[start:], index, phrasing)


def model_history_prompt(tokenizer: Any, history: Sequence[str], index: SIDIndex, phrasing: int = 0) -> Prompt:
    """One prompt of `next_item_prompter` (for a single history; build the prompter for many)."""
    return next_item_prompter(tokenizer, index, phrasing)(history)


def render_prompt(tokenizer: Any, prompt: Prompt) -> str:
    """The text of `prompt` exactly as TRL's trainers render it: plain strings as they are, chat messages
    through the chat template with the generation prompt."""
    if isinstance(prompt, str):
        return prompt
    return tokenizer.apply_chat_template(list(prompt), add_generation_prompt=True, tokenize=False)
