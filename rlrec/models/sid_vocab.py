"""The SID-only vocabulary of a from-scratch model, and how to recognise its tokenizer.

Kept apart from `rlrec.models.scratch` (which builds and loads such models) so that the model loader can tell
a SID-only tokenizer from a chat one without importing the builder, which imports the loader.
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
