"""`freeze_llm` (MiniOneRec's freeze_LLM): only the SID rows of the embeddings train, every pretrained weight stays."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from rlrec.cli import run_stage
from rlrec.data.synthetic import synthetic_dataset
from rlrec.models.tiny import tiny_model_and_tokenizer
from rlrec.sid.synthetic import synthetic_sid_index


def test_freeze_llm_trains_only_the_sid_rows(tmp_path):
    dataset = synthetic_dataset(num_users=30, num_items=40, seed=3, history_cut=6)
    (tmp_path / "data").mkdir()
    dataset.save(tmp_path / "data")
    index = synthetic_sid_index(sorted(dataset.items))
    index.save(tmp_path / "sid")
    model, tokenizer = tiny_model_and_tokenizer(tie_word_embeddings=False)
    model.save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    argv = ["--dataset_dir", str(tmp_path / "data"), "--sid_dir", str(tmp_path / "sid"), "--model_name_or_path",
            str(tmp_path / "base"), "--use_cpu", "true", "--max_steps", "3", "--per_device_train_batch_size", "8",
            "--learning_rate", "0.05", "--save_strategy", "no", "--report_to", "none", "--num_train_examples", "32",
            "--eval_at_end", "false", "--dtype", "float32", "--freeze_llm", "true", "--sa_init", "mean_vocab"]
    run_stage("sft", [*argv, "--output_dir", str(tmp_path / "frozen")])
    base = load_file(tmp_path / "base" / "model.safetensors")
    trained = load_file(tmp_path / "frozen" / "model.safetensors")
    first_sid = base["model.embed_tokens.weight"].shape[0]
    for name, weight in base.items():
        if name in ("model.embed_tokens.weight", "lm_head.weight"):
            assert torch.equal(trained[name][:first_sid], weight), name  # the pretrained rows are untouched
            start = trained[name][first_sid:]
            assert start.shape[0] == len(index.vocabulary())
        else:
            assert torch.equal(trained[name], weight), name  # every other pretrained weight too
    mean_rows = base["model.embed_tokens.weight"].mean(0)
    moved = (trained["model.embed_tokens.weight"][first_sid:] - mean_rows).abs().amax(dim=1)
    assert (moved > 0).any()  # SID rows left their mean_vocab start
    with pytest.raises(Exception, match="choose one"):
        run_stage("sft", [*argv, "--output_dir", str(tmp_path / "both"), "--use_peft", "true"])
