"""Add the Semantic-ID tokens to a tokenizer and grow the model's embedding matrices to match.

SID tokens are added as *ordinary* added tokens, not special ones: GRPO decodes completions with
`skip_special_tokens=True`, which would silently delete special tokens from the text the rewards see.
Added tokens are matched before the pre-tokenizer runs, so `<a_12><b_3>` is two ids whatever the base
tokenizer is; `add_sid_tokens` checks that (and that each token decodes back to itself) rather than
trusting it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

from tokenizers import AddedToken
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from rlrec.utils.errors import ConfigError

logger = logging.getLogger(__name__)


def add_sid_tokens(
    tokenizer: PreTrainedTokenizerBase,
    model: PreTrainedModel,
    vocabulary: Sequence[str],
    pad_to_multiple_of: int | None = None,
) -> list[int]:
    """Add `vocabulary` (SID token strings) to `tokenizer`, resize `model`'s embeddings; return their ids.

    The ids are returned in `vocabulary` order. Calling it again with the same tokens (a checkpoint that
    already has them) changes nothing and returns the same ids; any other overlap with the existing
    vocabulary is an error, because a SID token that is also a base-vocabulary token or a special token
    would not behave as a SID token. The embedding matrix grows to at least `len(tokenizer)` (rounded up
    to `pad_to_multiple_of` if given) and never shrinks: many models (Qwen) already have spare rows.
    New rows get the model's random initialisation; `rlrec.init.sa_init` sets them afterwards.
    """
    vocabulary = list(vocabulary)
    if not vocabulary:
        raise ConfigError("add_sid_tokens: the SID vocabulary is empty")
    duplicates = sorted(t for t, n in Counter(vocabulary).items() if n > 1)
    if duplicates:
        raise ConfigError(f"add_sid_tokens: duplicate SID tokens {duplicates[:5]}")
    bad = [t for t in vocabulary if not t or t != t.strip() or any(ch.isspace() for ch in t)]
    if bad:
        raise ConfigError(f"add_sid_tokens: SID tokens must be non-empty without whitespace, got {bad[:5]}")

    vocab = tokenizer.get_vocab()
    present = [t for t in vocabulary if t in vocab]
    if present:
        _check_readd(tokenizer, vocabulary, present)
        logger.info("the %d SID tokens are already in the tokenizer; not adding them again", len(vocabulary))
    else:
        tokenizer.add_tokens([AddedToken(t, normalized=False, special=False) for t in vocabulary])
    ids = tokenizer.convert_tokens_to_ids(vocabulary)

    rows = model.get_input_embeddings().weight.shape[0]
    needed = len(tokenizer)
    if pad_to_multiple_of:
        needed = -(-needed // pad_to_multiple_of) * pad_to_multiple_of
    if needed > rows:
        # mean_resizing=False: new rows get the model's own random init (the "random" baseline of the
        # SA-Init ablation); mean_resizing=True would fit a Gaussian to the old rows, which is slow for
        # large vocabularies and is overwritten by SA-Init anyway.
        model.resize_token_embeddings(needed, mean_resizing=False)
    check_sid_tokens(tokenizer, vocabulary, ids)
    if max(ids) >= model.get_input_embeddings().weight.shape[0]:
        raise ConfigError("add_sid_tokens: SID token ids exceed the model's embedding rows after resizing")
    return ids


def check_sid_tokens(tokenizer: PreTrainedTokenizerBase, vocabulary: Sequence[str], ids: Sequence[int]) -> None:
    """Check that each SID token encodes as exactly its one id, alone and concatenated, and decodes back."""
    encoded = tokenizer(list(vocabulary), add_special_tokens=False)["input_ids"]
    wrong = [(t, e) for t, e, i in zip(vocabulary, encoded, ids, strict=True) if e != [i]]
    if wrong:
        token, got = wrong[0]
        raise ConfigError(
            f"SID token {token!r} encodes as {got}, expected one id; {len(wrong)} of {len(vocabulary)} tokens do"
        )
    # A run of SID tokens, as an item is written, must stay one id per token.
    sample = list(vocabulary[:8]) + list(vocabulary[-8:])
    joined = tokenizer("".join(sample), add_special_tokens=False)["input_ids"]
    if joined != tokenizer.convert_tokens_to_ids(sample):
        raise ConfigError(f"a run of SID tokens {''.join(sample[:3])}... does not encode as one id per token")
    decoded = tokenizer.decode(list(ids[:8]) + list(ids[-8:]), skip_special_tokens=True)
    if decoded != "".join(sample):
        raise ConfigError(
            f"SID tokens do not survive decoding with skip_special_tokens=True: {decoded!r} != {''.join(sample)!r}"
        )


def _check_readd(tokenizer: PreTrainedTokenizerBase, vocabulary: list[str], present: list[str]) -> None:
    """Allow re-adding only when every SID token is already an ordinary added token."""
    added = {tok.content: tok for tok in tokenizer.added_tokens_decoder.values()}
    clashes = [t for t in present if t not in added]
    if clashes:
        raise ConfigError(
            f"SID tokens {clashes[:5]} are already in the base vocabulary of the tokenizer; choose another "
            "token format for the SID index"
        )
    special = [t for t in present if added[t].special]
    if special:
        raise ConfigError(
            f"SID tokens {special[:5]} are already in the tokenizer as special tokens, which GRPO's decoding "
            "(skip_special_tokens=True) would drop; start from a tokenizer without them"
        )
    if len(present) != len(vocabulary):
        missing = [t for t in vocabulary if t not in set(present)]
        raise ConfigError(
            f"the tokenizer already has {len(present)} of the {len(vocabulary)} SID tokens (e.g. {present[0]!r}) "
            f"but not {missing[:3]}: it was built for another SID index; start from the base model"
        )
