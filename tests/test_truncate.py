"""`truncate_layers` (a pretrained LM cut to its first N decoder layers) and `freeze_embeddings` (only the SID rows
of the embedding tables train, every layer trains)."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from rlrec.cli import UsageError, run_stage
from rlrec.data.synthetic import synthetic_dataset
from rlrec.models.tiny import tiny_model, tiny_model_and_tokenizer
from rlrec.models.truncate import decoder_layers, truncate_layers
from rlrec.ranking.load import load_ranker
from rlrec.sid.synthetic import synthetic_sid_index
from rlrec.utils.errors import ConfigError


def test_truncation_keeps_the_first_layers_and_saves_an_ordinary_model(tmp_path):
    model = tiny_model(vocab_size=50, num_layers=4)
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    with torch.no_grad():  # the first two layers' output, read off the full model
        hidden = model(ids, output_hidden_states=True).hidden_states[2]
        expected = model.lm_head(model.model.norm(hidden))
    first_two = [layer.state_dict() for layer in decoder_layers(model)[:2]]
    assert truncate_layers(model, 2) == {"kept_layers": 2, "of_layers": 4}
    assert len(decoder_layers(model)) == 2 and model.config.num_hidden_layers == 2
    assert len(model.config.layer_types) == 2
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, expected, atol=1e-5)
    model.save_pretrained(tmp_path / "cut")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "cut")
    assert len(decoder_layers(reloaded)) == 2
    for layer, state in zip(decoder_layers(reloaded), first_two, strict=True):
        for name, value in layer.state_dict().items():
            assert torch.equal(value, state[name]), name
    with torch.no_grad():
        assert torch.allclose(reloaded(ids).logits, expected, atol=1e-5)


@pytest.mark.parametrize("keep", [0, 5])
def test_truncation_out_of_range_names_the_layer_count(keep):
    with pytest.raises(ConfigError, match=r"truncate_layers=.*\[1, 4\]"):
        truncate_layers(tiny_model(vocab_size=50, num_layers=4), keep)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("truncate")
    dataset = synthetic_dataset(num_users=30, num_items=40, seed=3, history_cut=6)
    (root / "data").mkdir()
    dataset.save(root / "data")
    synthetic_sid_index(sorted(dataset.items)).save(root / "sid")
    model, tokenizer = tiny_model_and_tokenizer(num_layers=3, tie_word_embeddings=False)
    model.save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    return root


def sft_argv(world, *extra: str) -> list[str]:
    return ["--dataset_dir", str(world / "data"), "--sid_dir", str(world / "sid"), "--model_name_or_path",
            str(world / "base"), "--use_cpu", "true", "--max_steps", "3", "--per_device_train_batch_size", "8",
            "--learning_rate", "0.05", "--save_strategy", "no", "--report_to", "none", "--num_train_examples", "32",
            "--eval_at_end", "false", "--dtype", "float32", "--sa_init", "mean_vocab", *extra]


def test_a_truncated_frozen_table_run_trains_sid_rows_and_layers_and_ranks(world):
    out = world / "cut"
    run_stage("sft", [*sft_argv(world, "--truncate_layers", "1", "--freeze_embeddings", "true"),
                      "--output_dir", str(out)])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["truncated"] == {"kept_layers": 1, "of_layers": 3}
    assert json.loads((out / "config.json").read_text())["num_hidden_layers"] == 1

    base = load_file(world / "base" / "model.safetensors")
    trained = load_file(out / "model.safetensors")
    assert not any(name.startswith(("model.layers.1.", "model.layers.2.")) for name in trained)
    first_sid = base["model.embed_tokens.weight"].shape[0]
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        assert torch.equal(trained[name][:first_sid], base[name]), name  # the pretrained rows stay
        assert not torch.equal(trained[name][first_sid:], trained[name][first_sid:].mean(0).expand_as(
            trained[name][first_sid:])), name  # the SID rows left their common mean_vocab start
    layer = "model.layers.0.mlp.up_proj.weight"
    assert not torch.equal(trained[layer], base[layer])  # the kept layer trains

    ranker = load_ranker(out, device="cpu", dtype="float32", num_beams=5)
    ranked = ranker.rank([["i1", "i2"], ["i3"]], k=5)
    assert [len(r) for r in ranked] == [5, 5]

    run_stage("export", ["--model_path", str(out), "--output_dir", str(world / "export")])
    card = (world / "export" / "README.md").read_text()
    assert "first 1 of 3 decoder layers" in card


def test_frozen_table_refusals(world):
    with pytest.raises(ConfigError, match="weight_decay"):
        run_stage("sft", [*sft_argv(world, "--freeze_embeddings", "true", "--weight_decay", "0.1"),
                          "--output_dir", str(world / "decay")])
    with pytest.raises(UsageError, match="choose one"):  # found when the recipe is parsed
        run_stage("sft", [*sft_argv(world, "--freeze_embeddings", "true", "--freeze_llm", "true"),
                          "--output_dir", str(world / "both")])
    with pytest.raises(ConfigError, match=r"truncate_layers=4.*\[1, 3\]"):
        run_stage("sft", [*sft_argv(world, "--truncate_layers", "4"), "--output_dir", str(world / "deep")])
    assert not (world / "deep").exists() and not (world / "decay").exists()


def test_sid_only_prompts_teach_an_llm_like_the_compact_model_through_grpo_and_export(world):
    from rlrec.models.loading import load_tokenizer
    from rlrec.models.sid_vocab import uses_sid_only_prompts
    from rlrec.sid.index import SIDIndex

    out = world / "sid-only"
    manifest = run_stage("sft", [
        *sft_argv(world, "--truncate_layers", "2", "--freeze_embeddings", "true", "--sid_only_prompts", "true",
                  "--sequence_stride", "2", "--max_history", "4",
                  "--tasks", '{"next_item": 1.0, "ts_align_token_description": 0.5}'),
        "--num_train_examples", "20", "--output_dir", str(out)])
    assert manifest["tasks"] == {"next_item": 20, "ts_align_token_description": 10}
    assert manifest["prompt_max_history"] == 4
    tokenizer = load_tokenizer(out)
    assert uses_sid_only_prompts(tokenizer)  # the saved tokenizer tells every later stage how to ask
    index = SIDIndex.load(out / "sid")
    ranker = load_ranker(out, device="cpu", dtype="float32", num_beams=5)
    items = index.item_ids[:6]
    assert ranker.prompts([items]) == [tokenizer.eos_token + "".join(index.sid(i) for i in items[-4:])]

    grpo = world / "sid-only-grpo"
    run_stage("grpo", [
        "--dataset_dir", str(world / "data"), "--model_name_or_path", str(out), "--output_dir", str(grpo),
        "--use_cpu", "true", "--max_steps", "2", "--num_generations", "4", "--per_device_train_batch_size", "8",
        "--save_strategy", "no", "--report_to", "none", "--num_train_prompts", "16", "--learning_rate", "0.001",
        "--eval_at_end", "false"])
    assert uses_sid_only_prompts(load_tokenizer(grpo))
    report = run_stage("evaluate", [
        "--model_path", str(grpo), "--dataset_dir", str(world / "data"), "--split", "test", "--num_beams", "5",
        "--k_values", "1", "5", "--baselines", "popularity", "--output_dir", str(world / "sid-only-eval")])
    from rlrec.data.schema import PreparedDataset

    assert report["counts"]["all"] == len(PreparedDataset.load(world / "data").test)
    run_stage("export", ["--model_path", str(grpo), "--output_dir", str(world / "sid-only-export")])
    card = (world / "sid-only-export" / "README.md").read_text()
    assert "history's SIDs, no words" in card and "first 2 of 3 decoder layers" in card


def test_chat_token_rows_put_the_loss_on_the_completion_only():
    from rlrec.tasks.tokenized import chat_token_rows

    _, tokenizer = tiny_model_and_tokenizer()
    prompt = [{"role": "user", "content": "Describe the item"}]
    completion = [{"role": "assistant", "content": "Toy Story"}]
    [row] = chat_token_rows(tokenizer, [{"prompt": prompt, "completion": completion}])
    whole = tokenizer.apply_chat_template(prompt + completion, tokenize=False)
    assert tokenizer.decode(row["input_ids"]) == whole
    labelled = [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != -100]
    assert tokenizer.decode(labelled).startswith("Toy Story")
    assert row["labels"][: len(row["labels"]) - len(labelled)] == [-100] * (len(row["labels"]) - len(labelled))
