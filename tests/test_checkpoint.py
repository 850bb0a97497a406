"""load_checkpoint: full model folders and LoRA adapter folders give the same model, bad folders clear errors."""

import copy
import json

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM

from rlrec.init.vocab import add_sid_tokens
from rlrec.models.checkpoint import load_checkpoint
from rlrec.models.tiny import tiny_model_and_tokenizer
from rlrec.utils.errors import ConfigError

SID_TOKENS = [f"<{p}_{c}>" for p in "abc" for c in range(4)]
TEXT = "<|im_start|>user\nToy Story, GoldenEye<|im_end|>\n<|im_start|>assistant\n<a_1><b_2><c_3>"


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    """A saved base model (without SID tokens) and its tokenizer, untied like most larger models."""
    model, tokenizer = tiny_model_and_tokenizer(tie_word_embeddings=False)
    folder = tmp_path_factory.mktemp("ckpt") / "base"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def sid_model(base_dir):
    """The base loaded from disk (so peft records its path) with the SID tokens added."""
    from rlrec.models.loading import load_tokenizer

    tokenizer = load_tokenizer(base_dir)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    add_sid_tokens(tokenizer, model, SID_TOKENS)
    return model, tokenizer


def logits(model, tokenizer):
    ids = torch.tensor([tokenizer(TEXT, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        return model.eval()(ids).logits


def trained_lora(model, **lora_kwargs):
    """A LoRA model whose adapter (and saved embedding rows) differ from the base, as after training."""
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                  **lora_kwargs))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in peft_model.parameters():
            if param.requires_grad:
                param.add_(torch.randn(param.shape, generator=generator) * 0.1)
    return peft_model


def test_full_folder_round_trip(base_dir, tmp_path):
    model, tokenizer = sid_model(base_dir)
    model.save_pretrained(tmp_path / "full")
    tokenizer.save_pretrained(tmp_path / "full")
    loaded, loaded_tok = load_checkpoint(tmp_path / "full", device="cpu")
    assert not loaded.training
    assert loaded_tok.convert_tokens_to_ids(SID_TOKENS) == tokenizer.convert_tokens_to_ids(SID_TOKENS)
    torch.testing.assert_close(logits(loaded, loaded_tok), logits(model, tokenizer))
    assert load_checkpoint(tmp_path / "full", device="cpu", dtype="bfloat16")[0].dtype == torch.bfloat16


def test_adapter_folder_gives_the_merged_model(base_dir, tmp_path):
    model, tokenizer = sid_model(base_dir)
    peft_model = trained_lora(model, modules_to_save=["embed_tokens", "lm_head"])
    folder = tmp_path / "adapter"
    peft_model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == str(base_dir)
    expected = logits(copy.deepcopy(peft_model).merge_and_unload(), tokenizer)
    assert not torch.allclose(expected, logits(sid_model(base_dir)[0], tokenizer))  # the adapter matters

    loaded, loaded_tok = load_checkpoint(folder, device="cpu")
    assert type(loaded).__name__ == "Qwen2ForCausalLM"  # merged: a plain model, no peft wrapper
    assert loaded.get_input_embeddings().weight.shape[0] == model.get_input_embeddings().weight.shape[0]
    torch.testing.assert_close(logits(loaded, loaded_tok), expected)


def test_adapter_with_trainable_token_deltas(base_dir, tmp_path):
    """`trainable_token_indices` (the cheap way to train new rows) saves the resized base rows too."""
    model, tokenizer = sid_model(base_dir)
    ids = tokenizer.convert_tokens_to_ids(SID_TOKENS)
    peft_model = trained_lora(model, trainable_token_indices={"embed_tokens": ids})
    folder = tmp_path / "delta"
    peft_model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    expected = logits(copy.deepcopy(peft_model).merge_and_unload(), tokenizer)
    loaded, loaded_tok = load_checkpoint(folder, device="cpu")
    torch.testing.assert_close(logits(loaded, loaded_tok), expected)


def test_adapter_without_the_new_rows_is_refused(base_dir, tmp_path):
    model, tokenizer = sid_model(base_dir)
    folder = tmp_path / "no_rows"
    trained_lora(model).save_pretrained(folder, save_embedding_layers=False)
    tokenizer.save_pretrained(folder)
    with pytest.raises(ConfigError, match="does not carry the trained input embedding"):
        load_checkpoint(folder, device="cpu")


def test_bad_folders_are_clear_errors(base_dir, tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_checkpoint(tmp_path / "nowhere")
    model, tokenizer = sid_model(base_dir)
    model.save_pretrained(tmp_path / "no_tok")
    with pytest.raises(ConfigError, match=r"no_tok.*missing tokenizer files"):
        load_checkpoint(tmp_path / "no_tok", device="cpu")

    peft_model = trained_lora(model, modules_to_save=["embed_tokens", "lm_head"])
    peft_model.save_pretrained(tmp_path / "adapter_no_tok")
    with pytest.raises(ConfigError, match="adapter folder without a tokenizer"):
        load_checkpoint(tmp_path / "adapter_no_tok", device="cpu")

    config_file = tmp_path / "adapter_no_tok" / "adapter_config.json"
    tokenizer.save_pretrained(tmp_path / "adapter_no_tok")
    config = json.loads(config_file.read_text())
    config["base_model_name_or_path"] = str(tmp_path / "missing_base")
    config_file.write_text(json.dumps(config))
    with pytest.raises(ConfigError, match="base_model_name_or_path.*missing_base.*not found"):
        load_checkpoint(tmp_path / "adapter_no_tok", device="cpu")

    # A tokenizer with more tokens than the model has rows: saved before resizing the embeddings.
    base_model = AutoModelForCausalLM.from_pretrained(base_dir)
    base_model.save_pretrained(tmp_path / "unresized")
    tokenizer.save_pretrained(tmp_path / "unresized")
    with pytest.raises(ConfigError, match="embedding rows"):
        load_checkpoint(tmp_path / "unresized", device="cpu")
