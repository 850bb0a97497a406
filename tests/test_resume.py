"""Output folders are never replaced unless asked, and a run killed by a signal resumes to the same result.

The kill tests start the real CLI in a subprocess, SIGKILL it once it has written a complete checkpoint
(as a preempted or OOM-killed job dies: no handler runs), resume with `--resume_from_checkpoint last`
(or, for the cache, by running the same build again) and compare with an uninterrupted run of the same
seed: weights and selection curves bit for bit, cache files byte for byte.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from rlrec.cli import main as cli_main
from rlrec.cli import run_stage
from rlrec.data.synthetic import synthetic_dataset
from rlrec.sid.index import SIDIndex
from rlrec.sid.synthetic import synthetic_sid_index
from rlrec.utils.errors import ConfigError
from rlrec.utils.output_dirs import check_output_dir, resolve_resume

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("resume")
    dataset = synthetic_dataset(num_users=40, num_items=60, seed=1, history_cut=8)
    (root / "data").mkdir()
    dataset.save(root / "data")
    synthetic_sid_index(sorted(dataset.items)).save(root / "sid")
    return root


def _sft_argv(ws: Path, out: Path, *extra: str) -> list[str]:
    """A compact model, checkpoints every 5 steps, valid selection every 10: resume must restore both."""
    return [
        "--dataset_dir", str(ws / "data"), "--sid_dir", str(ws / "sid"), "--model_name_or_path", "scratch",
        "--scratch_hidden_size", "32", "--scratch_num_heads", "2", "--scratch_attention_dropout", "0.1",
        "--output_dir", str(out), "--use_cpu", "true", "--max_steps", "120", "--per_device_train_batch_size", "16",
        "--learning_rate", "0.01", "--logging_steps", "5", "--save_strategy", "steps", "--save_steps", "5",
        "--report_to", "none", "--max_history", "5", "--valid_every_steps", "10", "--valid_num_beams", "10",
        "--eval_at_end", "false", "--seed", "3", *extra,
    ]


def _grpo_argv(ws: Path, sft: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--dataset_dir", str(ws / "data"), "--model_name_or_path", str(sft), "--output_dir", str(out),
        "--use_cpu", "true", "--max_steps", "24", "--num_generations", "4", "--per_device_train_batch_size", "8",
        "--logging_steps", "1", "--save_strategy", "steps", "--save_steps", "3", "--report_to", "none",
        "--num_train_prompts", "64", "--learning_rate", "0.001", "--eval_at_end", "false", "--seed", "5", *extra,
    ]


def _kill_when(stage: str, argv: list[str], ready: Callable[[], bool], timeout: float = 300) -> None:
    """Run `rlrec STAGE argv` in a subprocess and SIGKILL it as soon as `ready()` holds."""
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}  # the same arithmetic as in-process
    proc = subprocess.Popen([sys.executable, "-m", "rlrec", stage, *argv], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if proc.poll() is not None:
                raise AssertionError(f"rlrec {stage} ended (rc {proc.returncode}) before it could be killed:\n"
                                     f"{proc.stderr.read()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"rlrec {stage}: not ready after {timeout} s")
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


def _complete_checkpoint(out: Path, step: int, *files: str) -> Callable[[], bool]:
    def ready() -> bool:
        folder = out / f"checkpoint-{step}"
        return all((folder / name).is_file() for name in ("trainer_state.json", *files))
    return ready


def _same_weights(a: Path, b: Path) -> None:
    left, right = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert left.keys() == right.keys()
    for name in left:
        assert torch.equal(left[name], right[name]), name


@pytest.fixture(scope="module")
def straight_sft(ws) -> Path:
    out = ws / "sft-straight"
    run_stage("sft", _sft_argv(ws, out))
    return out


@pytest.mark.slow
def test_killed_sft_resumes_to_the_same_weights_and_selection(ws, straight_sft, tmp_path):
    out = tmp_path / "sft"
    _kill_when("sft", _sft_argv(ws, out), _complete_checkpoint(out, 15))
    assert not (out / "manifest.json").exists()
    # Without the resume switch the unfinished folder is refused, and the message says how to continue.
    with pytest.raises(ConfigError, match=r"holds an unfinished run \(checkpoint-\d+\); continue it with "
                                          r"--resume_from_checkpoint last"):
        run_stage("sft", _sft_argv(ws, out))
    resumed = run_stage("sft", _sft_argv(ws, out, "--resume_from_checkpoint", "last"))
    straight = json.loads((straight_sft / "manifest.json").read_text())
    assert resumed["resumed_from"] is not None and Path(resumed["resumed_from"]).name.startswith("checkpoint-")
    assert resumed["global_step"] == straight["global_step"] == 120
    assert resumed["valid_selection"]["curve"] == [
        {**point, "seconds": resumed["valid_selection"]["curve"][i]["seconds"]}
        for i, point in enumerate(straight["valid_selection"]["curve"])]
    assert resumed["valid_selection"]["best"]["step"] == straight["valid_selection"]["best"]["step"]
    _same_weights(out, straight_sft)


@pytest.mark.slow
def test_killed_grpo_resumes_to_the_same_weights(ws, straight_sft, tmp_path):
    straight = tmp_path / "grpo-straight"
    run_stage("grpo", _grpo_argv(ws, straight_sft, straight))
    out = tmp_path / "grpo"
    _kill_when("grpo", _grpo_argv(ws, straight_sft, out), _complete_checkpoint(out, 6))
    assert not (out / "manifest.json").exists()
    resumed = run_stage("grpo", _grpo_argv(ws, straight_sft, out, "--resume_from_checkpoint", "last"))
    assert resumed["global_step"] == 24
    _same_weights(out, straight)
    rewards = [entry["reward"] for entry in json.loads((straight / "manifest.json").read_text())["reward_log"]]
    assert [entry["reward"] for entry in resumed["reward_log"]] == rewards


@pytest.mark.slow
def test_killed_cache_build_resumes_to_the_same_file(ws, straight_sft, tmp_path):
    rng = np.random.default_rng(0)
    items = sorted(SIDIndex.load(ws / "sid").item_ids)
    histories = tmp_path / "histories.jsonl"
    histories.write_text("".join(json.dumps({"user_id": f"u{i}", "history": list(rng.choice(items, 4))}) + "\n"
                                 for i in range(300)))
    argv = ["--model_path", str(straight_sft), "--histories_file", str(histories), "--k", "5", "--batch_size", "1",
            "--device", "cpu"]
    run_stage("cache", [*argv, "--output_dir", str(tmp_path / "straight")])
    out = tmp_path / "cache"

    def some_users_done() -> bool:
        part = out / "topk.part.jsonl"
        return part.is_file() and part.read_bytes().count(b"\n") >= 20

    _kill_when("cache", [*argv, "--output_dir", str(out)], some_users_done)
    assert not (out / "topk.jsonl").exists()
    manifest = run_stage("cache", [*argv, "--output_dir", str(out)])
    assert manifest["status"] == "complete" and manifest["num_users"] == 300
    assert (out / "topk.jsonl").read_bytes() == (tmp_path / "straight" / "topk.jsonl").read_bytes()


@pytest.mark.slow
def test_killed_setrec_resumes_to_the_same_weights(ws, tmp_path):
    from rlrec.models.tiny import tiny_model_and_tokenizer

    model, tokenizer = tiny_model_and_tokenizer(hidden_size=32)
    model.save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")

    def argv(out: Path, *extra: str) -> list[str]:
        return ["--dataset_dir", str(ws / "data"), "--output_dir", str(out), "--model_name_or_path",
                str(tmp_path / "base"), "--embedding_cache", "false", "--num_semantic_tokens", "2",
                "--ae_hidden", "32", "16", "--max_steps", "60", "--per_device_train_batch_size", "8",
                "--save_steps", "5", "--logging_steps", "5", "--ae_pretrain_steps", "5", "--sasrec_epochs", "1",
                "--eval_k_values", "1", "5", "--eval_max_examples", "10", "--eval_baselines", "popularity",
                "--use_cpu", "true", "--eval_plot", "false", "--seed", "7", *extra]

    straight = tmp_path / "straight"
    run_stage("setrec", argv(straight))
    out = tmp_path / "setrec"
    _kill_when("setrec", argv(out), _complete_checkpoint(out, 10))
    assert not (out / "manifest.json").exists()
    run_stage("setrec", argv(out, "--resume_from_checkpoint", "last"))
    resumed = json.loads((out / "manifest.json").read_text())
    assert Path(resumed["resumed_from"]).name.startswith("checkpoint-") and resumed["train"]["steps"] == 60
    assert resumed["train"]["log"] == json.loads((straight / "manifest.json").read_text())["train"]["log"]
    heads, straight_heads = (torch.load(folder / "setrec.pt", weights_only=True) for folder in (out, straight))
    assert heads.keys() == straight_heads.keys()
    assert all(torch.equal(heads[name], straight_heads[name]) for name in heads)
    _same_weights(out / "llm", straight / "llm")
    assert (out / "checkpoint-60").is_dir()  # the trainer's checkpoints stay beside the saved model


# -- output folders ------------------------------------------------------------------------------------------------

def test_a_finished_folder_is_refused_unless_overwrite_is_asked(ws, straight_sft, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        cli_main(["sft", *_sft_argv(ws, straight_sft)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rlrec: error: sft: output_dir {straight_sft} holds a finished run (manifest.json); "
                          "pass --overwrite_output_dir true")
    assert (straight_sft / "manifest.json").is_file()  # untouched

    out = tmp_path / "again"
    run_stage("sft", _sft_argv(ws, out, "--max_steps", "10"))
    manifest = run_stage("sft", _sft_argv(ws, out, "--max_steps", "5", "--overwrite_output_dir", "true"))
    assert manifest["global_step"] == 5
    # the old run's are gone; the new one kept its start (a valid-selection candidate) and its last step
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-0", "checkpoint-5"]

    import shutil

    sid = tmp_path / "sid"  # a finished `rlrec sid` folder: refused before anything is embedded
    shutil.copytree(ws / "sid", sid)
    (sid / "manifest.json").write_text("{}")
    with pytest.raises(ConfigError, match="sid: output_dir .* holds a finished run"):
        run_stage("sid", ["--dataset_dir", str(ws / "data"), "--output_dir", str(sid)])
    assert (sid / "index.json").is_file()


def test_check_output_dir_and_resolve_resume(tmp_path):
    check_output_dir(tmp_path / "new", overwrite=False, stage="x")  # absent: fine
    (tmp_path / "empty").mkdir()
    check_output_dir(tmp_path / "empty", overwrite=False, stage="x")
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is a file"):
        check_output_dir(tmp_path / "file", overwrite=False, stage="x")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="x: output_dir .*other is not empty; pass --overwrite_output_dir true"):
        check_output_dir(tmp_path / "other", overwrite=False, stage="x")
    check_output_dir(tmp_path / "other", overwrite=True, stage="x")

    run = tmp_path / "run"
    for step, complete in ((2, True), (4, True), (6, False)):  # checkpoint-6: killed while saving
        (run / f"checkpoint-{step}").mkdir(parents=True)
        if complete:
            (run / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
            (run / f"checkpoint-{step}" / "optimizer.pt").write_bytes(b"")
    # killed while the trainer wrote its state: the file is there, but empty or cut short
    (run / "checkpoint-8").mkdir()
    (run / "checkpoint-8" / "trainer_state.json").write_text("")
    (run / "checkpoint-10").mkdir()
    (run / "checkpoint-10" / "trainer_state.json").write_text('{"global_step": 1')
    assert resolve_resume("last", run, "x") == str(run / "checkpoint-4")
    assert resolve_resume("true", run, "x") == str(run / "checkpoint-4")
    assert resolve_resume(None, run, "x") is None and resolve_resume("false", run, "x") is None
    (run / "checkpoint-12").mkdir()  # weights only (valid selection under save_strategy: no): cannot resume
    (run / "checkpoint-12" / "trainer_state.json").write_text("{}")
    assert resolve_resume("last", run, "x") == str(run / "checkpoint-4")
    weights_only = tmp_path / "weights-only" / "checkpoint-3"
    weights_only.mkdir(parents=True)
    (weights_only / "trainer_state.json").write_text("{}")
    with pytest.raises(ConfigError, match="holds no checkpoint-N folder"):
        resolve_resume("last", weights_only.parent, "x")
    with pytest.raises(ConfigError, match="no such folder"):
        resolve_resume(str(run / "checkpoint-9"), run, "x")
    with pytest.raises(ConfigError, match=r"is not a checkpoint \(no trainer_state.json\)"):
        resolve_resume(str(run / "checkpoint-6"), run, "x")
