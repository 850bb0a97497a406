"""Tiny causal LMs built from a config, for tests and CPU smoke runs.

A real base model is too slow for unit tests; a Qwen2-architecture model with a few layers and a
byte-level BPE tokenizer trained in-process on a handful of sentences has every moving part a real
one has (chat template, padding, KV cache, tied or untied embeddings) and builds in seconds.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from rlrec.models.loading import CHATML_TEMPLATE

_CORPUS = [
    "The user watched these movies in order. Recommend the next item.",
    "What is the semantic id of this item? Describe the item with this id.",
    "Toy Story, GoldenEye, Four Rooms, Get Shorty, Copycat, Twelve Monkeys, Babe, Dead Man Walking.",
    "Animation, Children's, Comedy, Action, Adventure, Thriller, Drama, Crime, Romance, Sci-Fi.",
    "user history: item title category brand keywords description answer yes no candidates",
]


def tiny_tokenizer(corpus: Iterable[str] = _CORPUS, vocab_size: int = 600) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer with ChatML special tokens, trained on `corpus` in-process."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(list(corpus), trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        bos_token=None,
        chat_template=CHATML_TEMPLATE,
    )


def tiny_model(
    vocab_size: int, hidden_size: int = 64, num_layers: int = 2, tie_word_embeddings: bool = True, seed: int = 0
) -> Qwen2ForCausalLM:
    """A randomly initialised Qwen2 causal LM small enough to train for a few steps in a unit test."""
    config = Qwen2Config(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=tie_word_embeddings,
    )
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(config).eval()


def tiny_model_and_tokenizer(**model_kwargs) -> tuple[Qwen2ForCausalLM, PreTrainedTokenizerFast]:
    tokenizer = tiny_tokenizer()
    model = tiny_model(len(tokenizer), **model_kwargs)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.config.eos_token_id = tokenizer.eos_token_id
    return model, tokenizer
