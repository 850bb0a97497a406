"""add_sid_tokens: plain added tokens, one id each, embeddings resized, idempotent re-adds."""

import pytest
import torch

from rlrec.init import add_sid_tokens
from rlrec.models.tiny import tiny_model_and_tokenizer
from rlrec.utils.errors import ConfigError

VOCAB = [f"<{level}_{code}>" for level in "abc" for code in range(5)]


@pytest.fixture
def model_and_tokenizer():
    return tiny_model_and_tokenizer()


def test_adds_plain_tokens_one_id_each(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    before = len(tokenizer)
    ids = add_sid_tokens(tokenizer, model, VOCAB)
    assert ids == list(range(before, before + len(VOCAB)))
    assert len(tokenizer) == before + len(VOCAB)
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    assert model.config.vocab_size == len(tokenizer)
    for token, i in zip(VOCAB, ids, strict=True):
        assert tokenizer(token, add_special_tokens=False)["input_ids"] == [i]
    text = "history: <a_1><b_2><c_3> then <a_4><b_0><c_0>"
    encoded = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert [t for t in encoded if t >= before] == tokenizer.convert_tokens_to_ids(
        ["<a_1>", "<b_2>", "<c_3>", "<a_4>", "<b_0>", "<c_0>"]
    )
    # Not special: GRPO's skip_special_tokens=True decoding keeps them.
    assert tokenizer.decode(encoded, skip_special_tokens=True) == text
    assert not set(ids) & set(tokenizer.all_special_ids)


def test_readding_is_idempotent(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    ids = add_sid_tokens(tokenizer, model, VOCAB)
    size, rows = len(tokenizer), model.get_input_embeddings().weight.clone()
    assert add_sid_tokens(tokenizer, model, VOCAB) == ids
    assert len(tokenizer) == size
    assert torch.equal(model.get_input_embeddings().weight, rows)


def test_partial_or_clashing_vocabulary_is_refused(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    add_sid_tokens(tokenizer, model, VOCAB[:5])
    with pytest.raises(ConfigError, match="another SID index"):
        add_sid_tokens(tokenizer, model, VOCAB)
    base_token = tokenizer.convert_ids_to_tokens(300)
    with pytest.raises(ConfigError, match="base vocabulary"):
        add_sid_tokens(tokenizer, model, ["<d_0>", base_token])
    with pytest.raises(ConfigError, match="special"):
        add_sid_tokens(tokenizer, model, ["<|im_end|>"])
    with pytest.raises(ConfigError, match="duplicate"):
        add_sid_tokens(tokenizer, model, ["<d_0>", "<d_0>"])


def test_pad_to_multiple_and_untied_head():
    model, tokenizer = tiny_model_and_tokenizer(tie_word_embeddings=False)
    ids = add_sid_tokens(tokenizer, model, VOCAB, pad_to_multiple_of=64)
    rows = model.get_input_embeddings().weight.shape[0]
    assert rows % 64 == 0 and rows >= len(tokenizer) > max(ids)
    assert model.get_output_embeddings().weight.shape[0] == rows
    assert model.get_output_embeddings().weight.data_ptr() != model.get_input_embeddings().weight.data_ptr()


def test_saved_checkpoint_reloads_with_the_same_sid_ids(model_and_tokenizer, tmp_path):
    from rlrec.models.loading import load_base_model

    model, tokenizer = model_and_tokenizer
    ids = add_sid_tokens(tokenizer, model, VOCAB)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    model2, tokenizer2 = load_base_model(tmp_path)
    assert add_sid_tokens(tokenizer2, model2, VOCAB) == ids
    assert len(tokenizer2) == len(tokenizer)
    assert tokenizer2.decode(ids, skip_special_tokens=True) == "".join(VOCAB)
