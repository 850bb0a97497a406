"""The SFT stage end to end on a tiny model: vocabulary, SA-Init, loss mask, LoRA, saving, resume, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rlrec.cli import UsageError, run_stage
from rlrec.data.synthetic import synthetic_dataset
from rlrec.models.tiny import tiny_model_and_tokenizer
from rlrec.sid.index import SIDIndex
from rlrec.utils.errors import DataError


def _codes(n_items: int, sizes: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    space = np.array(np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij")).reshape(len(sizes), -1).T
    return space[rng.choice(len(space), n_items, replace=False)]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A prepared dataset, its SID index and a tiny base model, as the folders the stage reads."""
    root = tmp_path_factory.mktemp("sft")
    dataset = synthetic_dataset(num_users=40, num_items=60, seed=1, history_cut=8)
    (root / "data").mkdir()
    dataset.save(root / "data")
    item_ids = sorted(dataset.items)
    SIDIndex(item_ids, _codes(len(item_ids), (4, 4, 8)), [4, 4, 8]).save(root / "sid")
    model, tokenizer = tiny_model_and_tokenizer()
    model.save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    return root


def _argv(ws: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--dataset_dir", str(ws / "data"), "--sid_dir", str(ws / "sid"), "--model_name_or_path", str(ws / "base"),
        "--output_dir", str(out), "--use_cpu", "true", "--max_steps", "4", "--per_device_train_batch_size", "8",
        "--learning_rate", "0.01", "--logging_steps", "1", "--save_strategy", "no", "--report_to", "none",
        "--num_train_examples", "64", "--eval_max_examples", "12", "--eval_num_beams", "5",
        "--eval_k_values", "1", "5",
        "--eval_baselines", "popularity", "--dtype", "float32", *extra,
    ]


def _sid_rows(folder: Path) -> tuple[torch.Tensor, list[int]]:
    from transformers import AutoModelForCausalLM

    from rlrec.models.loading import load_tokenizer

    tokenizer = load_tokenizer(folder)
    index = SIDIndex.load(folder / "sid")
    ids = tokenizer.convert_tokens_to_ids(index.vocabulary())
    model = AutoModelForCausalLM.from_pretrained(folder)
    return model.get_input_embeddings().weight[ids].detach().clone(), ids


def test_full_finetune_writes_a_complete_model_folder(workspace, tmp_path):
    out = tmp_path / "sft"
    manifest = run_stage("sft", _argv(workspace, out, "--max_history", "3"))

    assert json.loads((out / "manifest.json").read_text())["stage"] == "sft"
    assert manifest["saved_as"] == "full"
    assert manifest["num_sid_tokens"] == 4 + 4 + 8
    assert sum(manifest["tasks"].values()) == 64
    # The saved index carries every token's keywords (people read them; TS-Align used them).
    index = SIDIndex.load(out / "sid")
    assert index.keywords and all(isinstance(v, list) for v in index.keywords.values())
    # The saved tokenizer knows every SID token as one token.
    rows, ids = _sid_rows(out)
    assert len(set(ids)) == len(ids) and min(ids) > 0
    # End-of-training evaluation ran on the reloaded model, beside the baseline.
    assert manifest["eval"]["models"]["model"]["all"]["HR@5"] >= 0
    assert "popularity" in manifest["eval"]["models"]
    assert (out / "eval").is_dir()
    # The history cap of the training prompts is recorded, and evaluation asks the same way.
    from rlrec.evaluation.run import trained_max_history

    assert manifest["prompt_max_history"] == 3 and trained_max_history(out) == 3


def test_sa_init_rows_are_trained_from_their_initial_values(workspace, tmp_path):
    from rlrec.init.sa_init import init_sid_embeddings
    from rlrec.models.loading import load_base_model

    index = SIDIndex.load(workspace / "sid")
    out = tmp_path / "sft"
    manifest = run_stage("sft", _argv(workspace, out, "--sa_init", "mean_vocab"))
    assert manifest["sa_init"]["mode"] == "mean_vocab"

    model, tokenizer = load_base_model(workspace / "base", device="cpu")
    ids, _ = init_sid_embeddings(model, tokenizer, index, mode="mean_vocab")
    initial = model.get_input_embeddings().weight[ids].detach()
    trained, trained_ids = _sid_rows(out)
    assert trained_ids == ids
    assert not torch.allclose(initial, trained), "training did not move the SID rows"


def test_lora_trains_sid_rows_and_saves_merged(workspace, tmp_path):
    out = tmp_path / "lora"
    manifest = run_stage("sft", _argv(workspace, out, "--use_peft", "true", "--lora_r", "4",
                                      "--lora_target_modules", "q_proj", "v_proj"))
    assert manifest["saved_as"] == "merged"
    assert not (out / "adapter_config.json").exists()
    assert not (out / ".adapter").exists()
    rows, ids = _sid_rows(out)

    from rlrec.init.sa_init import init_sid_embeddings
    from rlrec.models.loading import load_base_model

    model, tokenizer = load_base_model(workspace / "base", device="cpu")
    init_sid_embeddings(model, tokenizer, SIDIndex.load(workspace / "sid"), mode="keywords")
    initial = model.get_input_embeddings().weight[ids].detach()
    assert not torch.allclose(initial, rows), "LoRA run left the SID rows untrained"
    # Rows outside the SID vocabulary stay frozen under LoRA.
    base_rows = model.get_input_embeddings().weight[: min(ids)].detach()
    from transformers import AutoModelForCausalLM

    saved = AutoModelForCausalLM.from_pretrained(out).get_input_embeddings().weight[: min(ids)].detach()
    torch.testing.assert_close(base_rows, saved)


def test_loss_mask_covers_only_the_answer(workspace):
    """The tokens trained on are exactly the assistant answer (SID or text) plus the end-of-turn marker."""
    from trl import ModelConfig, SFTTrainer

    from rlrec.data.schema import PreparedDataset
    from rlrec.training.config import RecSFTConfig, SFTScriptArguments
    from rlrec.training.sft_setup import build_model, build_train_dataset

    script = SFTScriptArguments(dataset_dir=str(workspace / "data"), sid_dir=str(workspace / "sid"),
                                num_train_examples=24)
    training = RecSFTConfig(output_dir="unused", use_cpu=True, report_to="none")
    index = SIDIndex.load(workspace / "sid")
    dataset = PreparedDataset.load(workspace / "data")
    from rlrec.training.sft_setup import ensure_keywords

    ensure_keywords(index, dataset, script)
    model, tokenizer, _, _, _ = build_model(script, ModelConfig(model_name_or_path=str(workspace / "base")), index)
    train, _ = build_train_dataset(script, training, dataset, index)
    trainer = SFTTrainer(model=model, args=training, train_dataset=train.remove_columns(["task"]),
                         processing_class=tokenizer)
    tokenized = trainer.train_dataset
    for row, source in zip(tokenized, train, strict=True):
        mask = np.array(row["labels"]) != -100
        answer_ids = np.array(row["input_ids"])[mask].tolist()
        answer = tokenizer.decode(answer_ids)
        expected = source["completion"][0]["content"]
        assert answer.startswith(expected), (answer, expected)
        assert answer[len(expected):].strip() in {"<|im_end|>", ""}
        # Nothing before the answer is trained on.
        assert mask.argmax() == len(mask) - mask.sum()


def test_keyword_file_feeds_sa_init_and_ts_align_and_its_coverage_is_recorded(workspace, tmp_path):
    """`--keyword_source file`: TS-Rec's keyword/description JSON, checked against the index; the manifest records
    the coverage per level and the skipped tokens, the saved index carries the file's keywords and descriptions."""
    index = SIDIndex.load(workspace / "sid")
    in_use = [index.token(level, int(c)) for level in range(3) for c in np.unique(index.codes[:, level])]
    left_out = in_use[-1]  # a level-c token the file does not describe
    entries = [{"token": t, "description": f"Items of the {t[1:-1]} kind, all alike.",
                "keywords": [f"word{i}", "tool"]} for i, t in enumerate(in_use[:-1])]
    entries.append({"token": "<d_0>", "description": "A fourth level this index lacks.", "keywords": ["x"]})
    keyword_file = tmp_path / "Industrial.description_keywords.json"
    keyword_file.write_text(json.dumps(entries))

    out = tmp_path / "sft"
    manifest = run_stage("sft", _argv(workspace, out, "--keyword_source", "file", "--keyword_file", str(keyword_file),
                                      "--eval_at_end", "false"))
    report = manifest["keywords"]
    assert report["source"] == "file" and report["entries"] == len(entries)
    assert report["unknown_skipped"] == 1 and report["unknown_examples"] == ["<d_0>"]
    per_level = {p: sum(t.startswith(f"<{p}_") for t in in_use) for p in "abc"}
    assert report["coverage"] == {"a": {"in_use": per_level["a"], "covered": per_level["a"]},
                                  "b": {"in_use": per_level["b"], "covered": per_level["b"]},
                                  "c": {"in_use": per_level["c"], "covered": per_level["c"] - 1}}
    assert manifest["sa_init"]["keywords"] == len(in_use) - 1  # the rest got the vocabulary mean
    assert manifest["tasks"].get("ts_align_token_description", 0) > 0  # the default TS-Align reads descriptions
    saved = SIDIndex.load(out / "sid")
    assert saved.descriptions == {e["token"]: e["description"] for e in entries[:-1]}
    assert saved.keywords[in_use[0]] == ["word0", "tool"] and left_out not in saved.keywords

    # Strict: the same file is refused, naming it; no model folder is left behind.
    with pytest.raises(DataError, match=r"Industrial\.description_keywords\.json: does not match the SID index"):
        run_stage("sft", _argv(workspace, tmp_path / "strict", "--keyword_source", "file", "--keyword_file",
                               str(keyword_file), "--keyword_file_strict", "true", "--eval_at_end", "false"))
    assert not (tmp_path / "strict" / "manifest.json").exists()


def test_index_from_another_dataset_is_refused(workspace, tmp_path):
    SIDIndex(["x1", "x2"], np.array([[0, 0], [1, 1]]), [2, 2]).save(tmp_path / "other_sid")
    with pytest.raises(DataError, match="no SID for"):
        run_stage("sft", _argv(workspace, tmp_path / "out", "--sid_dir", str(tmp_path / "other_sid")))
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_bad_config_fields_are_refused(workspace, tmp_path):
    with pytest.raises(UsageError, match="sa_init"):
        run_stage("sft", _argv(workspace, tmp_path / "o", "--sa_init", "random"))
    with pytest.raises(UsageError, match="tasks"):
        run_stage("sft", _argv(workspace, tmp_path / "o", "--tasks", "[1, 2]"))
    with pytest.raises(UsageError, match="keyword_source: file` needs `keyword_file"):
        run_stage("sft", _argv(workspace, tmp_path / "o", "--keyword_source", "file"))
    with pytest.raises(UsageError, match="keyword_file` is read only with `keyword_source: file"):
        run_stage("sft", _argv(workspace, tmp_path / "o", "--keyword_file", "kw.json"))
    with pytest.raises(UsageError, match="sa_init_center` centres SA-Init's keyword rows"):
        run_stage("sft", _argv(workspace, tmp_path / "o", "--sa_init", "mean_vocab", "--sa_init_center", "true"))
    with pytest.raises(UsageError, match="sa_init_center` needs `sa_init_match_norm"):
        run_stage("sft", _argv(workspace, tmp_path / "o", "--sa_init_center", "true", "--sa_init_match_norm", "false"))


def test_resume_from_checkpoint_continues_the_step_count(workspace, tmp_path):
    out = tmp_path / "resume"
    first = ["--save_strategy", "steps", "--save_steps", "2", "--eval_at_end", "false"]
    run_stage("sft", _argv(workspace, out, *first))
    assert (out / "checkpoint-4").is_dir()
    manifest = run_stage("sft", _argv(workspace, out, *first, "--max_steps", "6",
                                      "--resume_from_checkpoint", str(out / "checkpoint-4")))
    assert manifest["global_step"] == 6 and manifest["resumed_from"].endswith("checkpoint-4")
    log = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())["log_history"]
    # Steps 1-4 come from the first run's state; the resumed run logged only steps 5 and 6.
    assert [entry["step"] for entry in log if "loss" in entry] == [1, 2, 3, 4, 5, 6]


@pytest.mark.distributed
def test_two_process_ddp_run_on_cpu(workspace, tmp_path):
    """`accelerate launch` with 2 CPU processes (gloo): both ranks train, only rank 0 writes; the end-of-training
    evaluation runs on rank 0 after both left the process group (no rank waits in a barrier meanwhile)."""
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "rlrec", "sft",
        *_argv(workspace, out, "--ddp_find_unused_parameters", "false"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["global_step"] == 4
    assert manifest["eval"]["counts"]["all"] == 12 and (out / "eval" / "report.json").is_file()
    rows, _ = _sid_rows(out)
    assert torch.isfinite(rows).all()


@pytest.mark.distributed
def test_two_process_zero2_lora_run_on_cpu(workspace, tmp_path):
    """DeepSpeed ZeRO-2 with 2 CPU processes and LoRA: the SID-row gradient mask survives ZeRO's gradient
    partitioning (SID rows train, every other embedding row stays as it was) and the merged model is saved."""
    import os
    import subprocess
    import sys

    out = tmp_path / "zero2"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--use_deepspeed", "--zero_stage", "2",
        "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "rlrec", "sft",
        *_argv(workspace, out, "--use_peft", "true", "--lora_r", "4", "--lora_target_modules", "q_proj", "v_proj",
               "--eval_at_end", "false"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "TORCH_EXTENSIONS_DIR": os.environ.get("TORCH_EXTENSIONS_DIR", str(Path.home() / ".cache/torch_ext"))}
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["global_step"] == 4 and manifest["saved_as"] == "merged"
    assert manifest["distributed_type"] == "DEEPSPEED"
    rows, ids = _sid_rows(out)

    from transformers import AutoModelForCausalLM

    from rlrec.init.sa_init import init_sid_embeddings
    from rlrec.models.loading import load_base_model

    model, tokenizer = load_base_model(workspace / "base", device="cpu")
    init_sid_embeddings(model, tokenizer, SIDIndex.load(workspace / "sid"), mode="keywords")
    assert not torch.allclose(model.get_input_embeddings().weight[ids].detach(), rows)
    saved = AutoModelForCausalLM.from_pretrained(out).get_input_embeddings().weight[: min(ids)].detach()
    torch.testing.assert_close(model.get_input_embeddings().weight[: min(ids)].detach(), saved)


@pytest.mark.distributed
def test_two_process_zero3_full_finetune_saves_full_weights(workspace, tmp_path):
    """ZeRO-3 started by plain `accelerate launch --zero_stage 3` (no `zero3_save_16bit_model`): the stage turns on
    weight gathering at save, so the folder holds a complete, trained model and not only a DeepSpeed checkpoint."""
    import os
    import subprocess
    import sys

    from transformers import AutoModelForCausalLM

    from rlrec.init.sa_init import init_sid_embeddings
    from rlrec.models.loading import load_base_model

    out = tmp_path / "zero3"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--use_deepspeed", "--zero_stage", "3",
        "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "rlrec", "sft", *_argv(workspace, out, "--eval_at_end", "false"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["distributed_type"] == "DEEPSPEED" and manifest["world_size"] == 2
    saved = AutoModelForCausalLM.from_pretrained(out)
    base, tokenizer = load_base_model(workspace / "base", device="cpu")
    sid_ids, _ = init_sid_embeddings(base, tokenizer, SIDIndex.load(workspace / "sid"), mode="keywords")
    assert saved.get_input_embeddings().weight.shape == base.get_input_embeddings().weight.shape
    trained = dict(saved.named_parameters())
    changed = [name for name, p in base.named_parameters() if not torch.equal(p, trained[name])]
    assert len(changed) == len(trained)  # full fine-tune: every tensor moved, none left at zero-size shards


def test_validation_loss_is_evaluated_on_the_valid_split_mix(workspace, tmp_path):
    """eval_strategy: the valid users' next items through the task mix; losses in the manifest, best kept."""
    manifest = run_stage("sft", _argv(workspace, tmp_path / "out", "--eval_strategy", "steps", "--eval_steps", "2",
                                      "--num_eval_examples", "16", "--early_stopping_patience", "3",
                                      "--eval_at_end", "false"))
    curve = manifest["eval_loss"]["curve"]
    assert [point["step"] for point in curve] == [2, 4] and all(point["eval_loss"] > 0 for point in curve)
    assert manifest["eval_loss"]["best"] == pytest.approx(min(point["eval_loss"] for point in curve))
    assert not manifest["eval_loss"]["stopped_early"]
    # The next-item rows of that set are the valid split's: each completion is a valid target after its history.
    from rlrec.data.schema import PreparedDataset
    from rlrec.training.config import RecSFTConfig, SFTScriptArguments
    from rlrec.training.sft_setup import build_eval_dataset

    dataset = PreparedDataset.load(workspace / "data")
    index = SIDIndex.load(workspace / "sid")
    rows = build_eval_dataset(SFTScriptArguments(num_eval_examples=16), RecSFTConfig(output_dir=str(tmp_path / "x")),
                              dataset, index)
    valid = {(index.sid(ex.history[-1]), index.sid(ex.target)) for ex in dataset.valid}
    next_item = [row for row in rows if row["task"] == "next_item"]
    assert next_item and all(
        (row["prompt"][0]["content"].rsplit(": ", 1)[1].split(". ")[0].split(", ")[-1],
         row["completion"][0]["content"]) in valid for row in next_item)
