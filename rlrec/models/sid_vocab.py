"""The SID-only vocabulary of a from-scratch model, how to recognise its tokenizer, and SID-only prompts.

Kept apart from `rlrec.models.scratch` (which builds and loads such models) so that the model loader can tell
a SID-only tokenizer from a chat one without importing the builder, which imports the loader.

A pretrained LLM can be taught the same SID-only prompts (`rlrec sft --sid_only_prompts true`): a start token and
the history's SIDs, no words, about a quarter of a chat prompt's tokens. Its tokenizer then carries a marker in
its saved config (`SID_ONLY_PROMPTS`), so every later stage asks the model as it was trained without a field of
its own, as a scratch model's tokenizer is recognised by its vocabulary.
"""

from __future__ import annotations

import re

from transformers import PreTrainedTokenizerBase

BOS, EOS, PAD, UNK = "<bos>", "<eos>", "<pad>", "<unk>"
SPECIAL_TOKENS = (PAD, UNK, BOS, EOS)
# A SID token as `SIDIndex.token` writes it: `<a_12>`. The pre-tokenizer isolates every `<...>` piece, so a
# prompt and a completion concatenated without a separator split exactly as the two parts do.
SID_TOKEN_RE = re.compile(r"^<[a-z]+_(0|[1-9][0-9]*)>$")


def is_sid_tokenizer(tokenizer: PreTrainedTokenizerBase) -> bool:
    """True for a tokenizer made by `sid_tokenizer`: no chat template, every ordinary token a SID token.

    This is what decides how a model is asked for the next item (SID tokens after `<bos>`, or a chat
    prompt), so the folder needs no extra marker and every stage agrees.
    """
    if getattr(tokenizer, "chat_template", None) or tokenizer.bos_token != BOS:
        return False
    specials = set(tokenizer.all_special_tokens)
    return all(token in specials or SID_TOKEN_RE.match(token) for token in tokenizer.get_vocab())


PROMPT_STYLE_KEY = "rlrec_next_item_prompt"  # in tokenizer_config.json (the tokenizer's init_kwargs)
SID_ONLY_PROMPTS = "sid_only"


def mark_sid_only_prompts(tokenizer: PreTrainedTokenizerBase) -> None:
    """Record in `tokenizer` (saved with it) that its model reads SID-only next-item prompts."""
    tokenizer.init_kwargs[PROMPT_STYLE_KEY] = SID_ONLY_PROMPTS


def uses_sid_only_prompts(tokenizer: PreTrainedTokenizerBase) -> bool:
    """True when the model of `tokenizer` is asked for the next item with a start token and SIDs only."""
    init_kwargs = getattr(tokenizer, "init_kwargs", None) or {}
    return init_kwargs.get(PROMPT_STYLE_KEY) == SID_ONLY_PROMPTS or is_sid_tokenizer(tokenizer)


def sid_prompt_start(tokenizer: PreTrainedTokenizerBase) -> str:
    """The token a SID-only prompt starts with: `<bos>` for a scratch model, else the tokenizer's bos (or eos)
    token, so the first SID never sits at position 0 without context."""
    if is_sid_tokenizer(tokenizer):
        return BOS
    start = tokenizer.bos_token or tokenizer.eos_token
    if start is None:
        raise ValueError("the tokenizer has neither a bos nor an eos token to start a SID-only prompt with")
    return start
