"""load_base_model: local folders, clear errors, chat-template fallback, the cached GGUF conversion."""

import logging
import time

import pytest
import torch

import rlrec.models.loading as loading
from rlrec.models.loading import ensure_chat_template, load_base_model
from rlrec.models.tiny import tiny_model_and_tokenizer
from rlrec.utils.errors import ConfigError


@pytest.fixture
def tiny_dir(tmp_path):
    model, tokenizer = tiny_model_and_tokenizer()
    folder = tmp_path / "tiny"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, model, tokenizer


def test_loads_a_local_folder_exactly(tiny_dir):
    folder, model, tokenizer = tiny_dir
    loaded, loaded_tok = load_base_model(folder)
    text = "Toy Story (1995), 12 Monkeys   don't\n\nuser history"
    assert loaded_tok(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert loaded_tok.chat_template == tokenizer.chat_template
    assert loaded_tok.pad_token == tokenizer.pad_token
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits)
    assert load_base_model(folder, torch_dtype="bfloat16")[0].dtype == torch.bfloat16


def test_folder_without_tokenizer_is_a_clear_error(tiny_dir, tmp_path):
    folder, model, _ = tiny_dir
    bare = tmp_path / "bare"
    model.save_pretrained(bare)
    with pytest.raises(ConfigError, match=r"bare.*missing tokenizer files"):
        load_base_model(bare)
    with pytest.raises(ConfigError, match="not found"):
        load_base_model(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="torch_dtype"):
        load_base_model(folder, torch_dtype="float7")


def test_missing_chat_template_falls_back_to_chatml_with_a_warning(tiny_dir, caplog):
    _, _, tokenizer = tiny_dir
    tokenizer.chat_template = None
    with caplog.at_level(logging.WARNING, logger="rlrec.models.loading"):
        assert ensure_chat_template(tokenizer) is True
    assert "no chat template" in caplog.text and "ChatML" in caplog.text
    text = tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False)
    assert text == "<|im_start|>user\nhi<|im_end|>\n"
    caplog.clear()
    assert ensure_chat_template(tokenizer) is False and not caplog.text


def test_gguf_is_converted_once(tmp_path, monkeypatch):
    monkeypatch.setenv("RLREC_CACHE", str(tmp_path / "cache"))
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"fake")
    calls = []

    def fake_convert(path, out_dir):
        calls.append(path)
        with loading.atomic_output_dir(out_dir) as tmp:
            loading.write_json(tmp / loading.CONVERSION_MANIFEST, {"source_bytes": path.stat().st_size})

    monkeypatch.setattr(loading, "convert_gguf", fake_convert)
    first = loading.converted_gguf_dir(gguf, name="m")
    assert first == tmp_path / "cache" / "models" / "m" and len(calls) == 1
    assert loading.converted_gguf_dir(gguf, name="m") == first and len(calls) == 1
    gguf.write_bytes(b"another model")  # a different file: converted again
    loading.converted_gguf_dir(gguf, name="m")
    assert len(calls) == 2


@pytest.mark.slow
def test_smollm2_gguf_conversion(tmp_path, monkeypatch):
    """The real one-time conversion (~30 s on 2 cores); `benchmarks/bench_model_loading.py` times it."""
    pytest.importorskip("gguf")
    monkeypatch.setenv("RLREC_CACHE", str(tmp_path))
    model, tokenizer = load_base_model(None)
    folder = tmp_path / "models" / "smollm2-135m-instruct"
    assert (folder / "model.safetensors").is_file() and (folder / loading.CONVERSION_MANIFEST).is_file()
    assert getattr(model, "hf_quantizer", None) is None and "quantization_config" not in model.config.to_dict()
    assert tokenizer.chat_template and len(tokenizer) == model.config.vocab_size == 49152
    start = time.perf_counter()
    again, _ = load_base_model("smollm2")
    assert time.perf_counter() - start < 15
    torch.testing.assert_close(again.get_input_embeddings().weight, model.get_input_embeddings().weight)
