"""The from-scratch SID model: tokenizer, examples, loss, and the whole path sft -> grpo -> evaluate -> export."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from rlrec.cli import UsageError, run_stage
from rlrec.data.schema import Example
from rlrec.data.synthetic import synthetic_dataset
from rlrec.models.scratch import (
    BOS,
    ScratchModelArguments,
    build_scratch_model,
    is_sid_tokenizer,
    sid_prompt,
    sid_tokenizer,
)
from rlrec.sid.index import SIDIndex
from rlrec.sid.synthetic import synthetic_sid_index
from rlrec.tasks.sid_sequences import IGNORE_INDEX, consecutive_runs, sid_sequence_rows
from rlrec.utils.errors import ConfigError


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("scratch")
    dataset = synthetic_dataset(num_users=40, num_items=60, seed=1, history_cut=8)
    (root / "data").mkdir()
    dataset.save(root / "data")
    synthetic_sid_index(sorted(dataset.items)).save(root / "sid")
    return root


# -- tokenizer and prompt ------------------------------------------------------------------------------------------

def test_sid_tokenizer_splits_joined_sids_and_survives_save_load(ws, tmp_path):
    from rlrec.models.loading import load_tokenizer
    from rlrec.models.tiny import tiny_tokenizer

    index = SIDIndex.load(ws / "sid")
    tokenizer = sid_tokenizer(index.vocabulary())
    assert len(tokenizer) == 4 + len(index.vocabulary())
    items = index.item_ids[:3]
    prompt = sid_prompt([index.sid(i) for i in items])
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    assert ids == [tokenizer.bos_token_id] + tokenizer.convert_tokens_to_ids(
        [t for i in items for t in index.tokens(i)])
    # TRL joins prompt and completion with no separator: the joint text must split as the two parts do.
    completion = index.sid(index.item_ids[5])
    joint = tokenizer(prompt + completion, add_special_tokens=False)["input_ids"]
    assert joint == ids + tokenizer(completion, add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id not in joint

    tokenizer.save_pretrained(tmp_path)
    reloaded = load_tokenizer(tmp_path)
    assert is_sid_tokenizer(reloaded) and not reloaded.chat_template  # no ChatML template bolted on
    assert reloaded(prompt, add_special_tokens=False)["input_ids"] == ids
    assert not is_sid_tokenizer(tiny_tokenizer())
    with pytest.raises(ConfigError, match="not SID tokens"):
        sid_tokenizer(["<a_1>", "hello"])


def test_model_history_prompt_follows_the_tokenizer(ws):
    from rlrec.models.tiny import tiny_tokenizer
    from rlrec.tasks.prompts import history_prompt, model_history_prompt

    index = SIDIndex.load(ws / "sid")
    history = index.item_ids[:4]
    scratch = model_history_prompt(sid_tokenizer(index.vocabulary()), history, index)
    assert scratch == BOS + "".join(index.sid(i) for i in history)
    assert model_history_prompt(tiny_tokenizer(), history, index) == history_prompt(history, index)


# -- examples ------------------------------------------------------------------------------------------------------

def _user(user: str, items: list[str]) -> list[Example]:
    return [Example(user_id=user, history=items[:i], target=items[i]) for i in range(1, len(items))]


def test_stride_one_rows_are_the_train_windows_and_every_target_is_taught_once(ws):
    index = SIDIndex.load(ws / "sid")
    vocab = sid_tokenizer(index.vocabulary()).get_vocab()
    items = index.item_ids[:12]
    train = _user("u1", items) + _user("u2", items[::-1])
    rows = sid_sequence_rows(train, index, vocab, max_history=4, stride=1)
    assert len(rows) == len(train)
    for row, ex in zip(rows, train, strict=True):
        prompt = [vocab[BOS]] + [vocab[t] for i in ex.history[-4:] for t in index.tokens(i)]
        target = [vocab[t] for t in index.tokens(ex.target)]
        assert row["input_ids"] == prompt + target
        assert row["labels"] == [IGNORE_INDEX] * len(prompt) + target

    for stride in (2, 3, 4):
        rows = sid_sequence_rows(train, index, vocab, max_history=4, stride=stride)
        taught = [label for row in rows for label in row["labels"] if label != IGNORE_INDEX]
        expected = [vocab[t] for ex in train for t in index.tokens(ex.target)]
        assert taught == expected  # each target exactly once, in order
        for row in rows:  # no target sees more than max_history items before it
            first = next(i for i, label in enumerate(row["labels"]) if label != IGNORE_INDEX)
            assert (first - 1) // index.num_levels <= 4 - stride + 1
    with pytest.raises(ConfigError, match="sequence_stride"):
        sid_sequence_rows(train, index, vocab, max_history=4, stride=5)


def test_windows_that_do_not_chain_start_a_new_example(ws):
    index = SIDIndex.load(ws / "sid")
    a, b, c, d, e = index.item_ids[:5]
    train = [Example("u", [a], b), Example("u", [a, b], c), Example("u", [a, d], e)]  # d is not c: a new run
    assert [len(run) for run in consecutive_runs(train)] == [2, 1]


# -- the loss -----------------------------------------------------------------------------------------------------

def test_plain_loss_on_labelled_positions_equals_the_full_padded_loss(ws):
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from rlrec.training.plain_loss import left_align

    index = SIDIndex.load(ws / "sid")
    tokenizer = sid_tokenizer(index.vocabulary())
    model = build_scratch_model(tokenizer, ScratchModelArguments(scratch_hidden_size=32, scratch_num_heads=2), seed=3)
    model.eval()
    from rlrec.data.schema import PreparedDataset

    dataset = PreparedDataset.load(ws / "data")
    rows = sid_sequence_rows(dataset.train, index, tokenizer.get_vocab(), max_history=5, stride=2)[:9]
    batch = DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id)(rows)
    assert (batch["attention_mask"] == 0).any()  # rows of different lengths, right-padded
    full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"]).loss

    input_ids, mask, labels, positions = left_align(batch["input_ids"], batch["attention_mask"], batch["labels"])
    assert torch.equal(mask[:, -1], torch.ones(len(rows), dtype=mask.dtype))
    first = int((labels != IGNORE_INDEX).any(dim=0).nonzero()[0])
    keep = labels.shape[1] - first + 1
    logits = model(input_ids=input_ids, attention_mask=mask, position_ids=positions, logits_to_keep=keep).logits
    part = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                             labels[:, first:].reshape(-1), ignore_index=IGNORE_INDEX)
    torch.testing.assert_close(part, full, rtol=1e-5, atol=1e-5)


def test_target_weights_keep_a_zero_weight_target_as_history_and_weigh_the_rest(ws):
    index = SIDIndex.load(ws / "sid")
    vocab = sid_tokenizer(index.vocabulary()).get_vocab()
    items = index.item_ids[:6]
    train = _user("u", items)
    for ex, rating in zip(train, [5.0, 1.0, 3.0, 4.0, 2.0], strict=True):
        ex.rating = rating
    plain = sid_sequence_rows(train, index, vocab, max_history=5, stride=5)
    liked = sid_sequence_rows(train, index, vocab, max_history=5, stride=5,
                              target_weight=lambda ex: 1.0 if ex.rating >= 4 else 0.0)
    assert [row["input_ids"] for row in liked] == [row["input_ids"] for row in plain]  # histories unchanged
    taught = [label for row in liked for label in row["labels"] if label != IGNORE_INDEX]
    assert taught == [vocab[t] for ex in train if ex.rating >= 4 for t in index.tokens(ex.target)]
    assert "label_weights" not in liked[0]  # zeros and ones live in the labels
    weighted = sid_sequence_rows(train, index, vocab, max_history=5, stride=5,
                                 target_weight=lambda ex: ex.rating / 5)
    row = weighted[0]
    assert len(row["label_weights"]) == len(row["input_ids"])
    assert [w for w, label in zip(row["label_weights"], row["labels"], strict=True) if label != IGNORE_INDEX] == \
        [ex.rating / 5 for ex in train for _ in index.tokens(ex.target)]


def test_label_weights_scale_each_tokens_loss(ws):
    from types import SimpleNamespace

    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from rlrec.training.plain_loss import LabelWeightCollator, PlainLossSFTTrainer

    index = SIDIndex.load(ws / "sid")
    tokenizer = sid_tokenizer(index.vocabulary())
    model = build_scratch_model(tokenizer, ScratchModelArguments(scratch_hidden_size=32, scratch_num_heads=2), seed=3)
    model.eval()
    items = index.item_ids[:8]
    train = _user("u", items) + _user("v", items[::-1])
    collate = LabelWeightCollator(DataCollatorForLanguageModeling(pad_token_id=tokenizer.pad_token_id))
    fake = SimpleNamespace(args=SimpleNamespace(label_smoothing_factor=0.0, average_tokens_across_devices=False))

    def loss(weight):
        rows = sid_sequence_rows(train, index, tokenizer.get_vocab(), max_history=5, stride=2, target_weight=weight)
        with torch.no_grad():
            return PlainLossSFTTrainer.compute_loss(fake, model, collate(rows), num_items_in_batch=None)

    base = loss(None)
    torch.testing.assert_close(loss(lambda ex: 2.0), 2 * base)
    # Weight 0.5 on u's targets, 1 on v's: the sum of halves and wholes over the same label count.
    u_only, v_only = loss(lambda ex: float(ex.user_id == "u")), loss(lambda ex: float(ex.user_id == "v"))
    n_u = n_v = len(train) // 2 * index.num_levels
    half = loss(lambda ex: 0.5 if ex.user_id == "u" else 1.0)
    torch.testing.assert_close(half * (n_u + n_v), 0.5 * u_only * n_u + v_only * n_v, rtol=1e-5, atol=1e-5)


def test_sft_on_liked_targets_only_runs_and_refuses_unrated_data(ws, tmp_path, monkeypatch):
    manifest = run_stage("sft", _sft_argv(ws, tmp_path / "liked", "--max_steps", "3", "--eval_at_end", "false",
                                          "--target_weights", '{"neutral": 0, "disliked": 0}'))
    assert manifest["global_step"] == 3
    from rlrec.data.schema import PreparedDataset

    liked = sum(1 for ex in PreparedDataset.load(ws / "data").train if ex.rating >= 4)
    assert manifest["tasks"]["next_item"] == liked  # stride 1: one row per liked target, none for the rest
    from rlrec.training.plain_loss import PlainLossSFTTrainer

    seen, original = [], PlainLossSFTTrainer.compute_loss

    def spy(self, model, inputs, *args, **kwargs):
        seen.append("label_weights" in inputs)
        return original(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(PlainLossSFTTrainer, "compute_loss", spy)
    weighted = run_stage("sft", _sft_argv(ws, tmp_path / "weighted", "--max_steps", "2", "--eval_at_end", "false",
                                          "--target_weights", '{"liked": 1.5, "disliked": 0.5}'))
    assert weighted["global_step"] == 2 and seen == [True, True]  # the weights reach the loss
    with pytest.raises(UsageError, match="target_weights"):
        run_stage("sft", _sft_argv(ws, tmp_path / "bad", "--target_weights", '{"loved": 1}'))
    with pytest.raises(UsageError, match="every target 0"):
        run_stage("sft", _sft_argv(ws, tmp_path / "bad2", "--target_weights",
                                   '{"liked": 0, "neutral": 0, "disliked": 0, "unrated": 0}'))


# -- the stages ---------------------------------------------------------------------------------------------------

def _sft_argv(ws: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--dataset_dir", str(ws / "data"), "--sid_dir", str(ws / "sid"), "--model_name_or_path", "scratch",
        "--scratch_hidden_size", "32", "--scratch_num_heads", "2", "--output_dir", str(out), "--use_cpu", "true",
        "--num_train_epochs", "30", "--per_device_train_batch_size", "32", "--learning_rate", "0.01",
        "--logging_steps", "5", "--save_strategy", "no", "--report_to", "none", "--max_history", "5",
        "--eval_num_beams", "20", "--eval_k_values", "1", "5", "10", "--eval_baselines", "popularity", *extra,
    ]


@pytest.fixture(scope="module")
def scratch_sft(ws) -> Path:
    out = ws / "sft"
    run_stage("sft", _sft_argv(ws, out, "--sequence_stride", "2", "--valid_every_steps", "20",
                               "--attn_implementation", "eager"))
    return out


def test_scratch_sft_saves_an_ordinary_model_folder_that_learned(ws, scratch_sft):
    from rlrec.models.checkpoint import load_checkpoint

    manifest = json.loads((scratch_sft / "manifest.json").read_text())
    assert manifest["sa_init"]["mode"] == "scratch" and manifest["scratch"]["scratch_hidden_size"] == 32
    assert manifest["sa_init"]["attn_implementation"] == "eager"  # the recipe's, though built from a config
    assert manifest["prompt_max_history"] == 5 and set(manifest["tasks"]) == {"next_item"}
    model, tokenizer = load_checkpoint(scratch_sft, device="cpu")
    assert is_sid_tokenizer(tokenizer) and model.config.model_type == "llama"
    # The valid curve starts at the random initialisation and rises; the saved weights are the best point's:
    # the end-of-training evaluation (same valid users, same beams) of the reloaded model finds its NDCG@10.
    selection = manifest["valid_selection"]
    curve = selection["curve"]
    assert curve[0]["step"] == 0 and len(curve) >= 3
    best = selection["best"]
    assert best["NDCG@10"] == max(point["NDCG@10"] for point in curve) > curve[0]["NDCG@10"] + 0.02
    assert manifest["eval"]["models"]["model"]["all"]["NDCG@10"] == pytest.approx(best["NDCG@10"], abs=1e-6)


def test_scratch_model_goes_through_grpo_evaluate_export_and_recommend(ws, scratch_sft, tmp_path, capsys):
    from rlrec.inference import Recommender

    grpo = tmp_path / "grpo"
    manifest = run_stage("grpo", [
        "--dataset_dir", str(ws / "data"), "--model_name_or_path", str(scratch_sft), "--output_dir", str(grpo),
        "--use_cpu", "true", "--max_steps", "2", "--num_generations", "4", "--per_device_train_batch_size", "8",
        "--logging_steps", "1", "--save_strategy", "no", "--report_to", "none", "--num_train_prompts", "16",
        "--learning_rate", "0.001", "--eval_at_end", "false",
    ])
    assert manifest["global_step"] == 2 and manifest["prompt_max_history"] == 5

    report = run_stage("evaluate", [
        "--model_path", str(grpo), "--dataset_dir", str(ws / "data"), "--split", "test", "--num_beams", "10",
        "--k_values", "1", "5", "10", "--baselines", "popularity", "--compare", f"sft={scratch_sft}",
        "--output_dir", str(tmp_path / "eval"),
    ])
    assert set(report["models"]) == {"model", "sft", "popularity"}
    from rlrec.data.schema import PreparedDataset

    assert report["counts"]["all"] == len(PreparedDataset.load(ws / "data").test)
    against = report["paired"]["against"]  # grpo - sft per user, with its interval, in the report
    assert set(against) == {"sft", "popularity"} and against["sft"]["NDCG@10"]["users"] == report["counts"]["all"]
    assert set(report["per_user"]["ranks"]) == {"model", "sft", "popularity"}

    export = tmp_path / "export"
    run_stage("export", ["--model_path", str(grpo), "--output_dir", str(export)])
    assert (export / "tokenizer.json").is_file()
    card = (export / "README.md").read_text()
    assert "trained from scratch over the SID tokens only" in card and "base_model:" not in card
    recommender = Recommender.from_pretrained(export, device="cpu")
    history = SIDIndex.load(ws / "sid").item_ids[:5]
    top = recommender.recommend(history, k=5, exclude_history=True)
    assert len(top.item_ids) == 5 and not set(top.item_ids) & set(history)
    result = run_stage("recommend", ["--model_path", str(export), "--history", json.dumps(history), "--k", "3",
                                     "--device", "cpu"])
    assert result.item_ids == recommender.recommend(history, k=3).item_ids
    printed = capsys.readouterr().out
    assert all(item in printed for item in result.item_ids)


@pytest.mark.parametrize("extra, message", [
    (("--tasks", '{"next_item": 1.0, "title_to_sid": 0.2}'), "need text"),
    (("--sa_init", "keywords"), "pretrained model's embeddings"),
    (("--use_peft", "true"), "LoRA adapts a pretrained model"),
    (("--sequence_stride", "6"), "exceeds max_history"),
    (("--sa_init_center", "true"), "sa_init_center` acts on a pretrained base model"),
    (("--scratch_num_heads", "3"), "must divide"),
])
def test_scratch_refuses_what_it_cannot_do(ws, tmp_path, extra, message):
    from rlrec.cli import UsageError

    with pytest.raises((ConfigError, UsageError), match=message):
        run_stage("sft", _sft_argv(ws, tmp_path / "out", *extra))
    assert not (tmp_path / "out" / "manifest.json").exists()


# -- GRPO on the scratch model ------------------------------------------------------------------------------------

def test_teacher_forced_target_logprobs_equal_the_searchs_and_fill_missed_groups(ws, scratch_sft):
    from rlrec.generation.rollout import SIDRollout, add_missing_items, target_logprobs
    from rlrec.models.checkpoint import load_checkpoint
    from rlrec.tasks.prompts import model_history_prompt

    model, tokenizer = load_checkpoint(scratch_sft, device="cpu")
    index = SIDIndex.load(scratch_sft / "sid")
    histories = [index.item_ids[i: i + 4] for i in range(0, 24, 4)]
    prompt_ids = [tokenizer(model_history_prompt(tokenizer, h, index), add_special_tokens=False)["input_ids"]
                  for h in histories]
    rollout = SIDRollout(index, tokenizer, num_generations=4)
    items, sequences, logprobs = rollout.decode(model, prompt_ids)
    for g in range(4):  # the search's per-token log-probs are the teacher-forced ones of what it found
        torch.testing.assert_close(target_logprobs(model, prompt_ids, sequences[:, g], tokenizer.pad_token_id),
                                   logprobs[:, g], rtol=1e-4, atol=1e-4)
    found = {int(i) for i in items[0]}
    absent = next(item for row, item in enumerate(index.item_ids) if row not in found)
    targets = [absent] + [index.item_ids[int(items[p, 0])] for p in range(1, len(histories))]
    before = items.clone()
    placed = add_missing_items(model, index, tokenizer, prompt_ids, [[t] for t in targets], items, sequences,
                               logprobs)
    assert placed == [(0, absent)]
    assert index.item_ids[int(items[0, -1])] == absent and torch.equal(items[0, :-1], before[0, :-1])
    assert torch.equal(items[1:], before[1:])  # groups that held their target are untouched
    assert tokenizer.convert_ids_to_tokens(sequences[0, -1].tolist()) == index.tokens(absent)


def test_grpo_with_added_targets_raises_the_targets_logprobs(ws, scratch_sft, tmp_path):
    """A toy check that the policy gradient points the right way: a few GRPO steps with an exact-match reward
    and the target put in every group raise the log-probability of the rewarded items on the trained prompts."""
    from rlrec.data.schema import PreparedDataset

    out = tmp_path / "grpo"
    manifest = run_stage("grpo", [
        "--dataset_dir", str(ws / "data"), "--model_name_or_path", str(scratch_sft), "--output_dir", str(out),
        "--use_cpu", "true", "--max_steps", "6", "--num_generations", "4", "--per_device_train_batch_size", "16",
        "--logging_steps", "1", "--save_strategy", "no", "--report_to", "none", "--num_train_prompts", "16",
        "--learning_rate", "0.003", "--eval_at_end", "false", "--rewards", "exact_match",
        "--rollout_add_target", "true", "--seed", "5",
    ])
    assert manifest["rollout_added_targets"] > 0
    dataset = PreparedDataset.load(ws / "data")

    before, after = mean_target_logprob(dataset, scratch_sft, 16), mean_target_logprob(dataset, out, 16)
    print(f"target log-prob before {before:.3f} after {after:.3f}")
    assert after > before + 0.1


def _zero_reward_grpo(ws: Path, model: Path, out: Path, learning_rate: str, *extra: str) -> dict:
    """Four GRPO steps whose rewards are weighted 0 (every sequence advantage 0), so only `extra` can move the
    weights: the anchor or the level credit under test."""
    return run_stage("grpo", [
        "--dataset_dir", str(ws / "data"), "--model_name_or_path", str(model), "--output_dir", str(out),
        "--use_cpu", "true", "--max_steps", "4", "--num_generations", "4", "--per_device_train_batch_size", "16",
        "--logging_steps", "1", "--save_strategy", "no", "--report_to", "none", "--num_train_prompts", "8",
        "--learning_rate", learning_rate, "--eval_at_end", "false", "--seed", "5",
        "--rewards", json.dumps([{"name": "exact_match", "weight": 0.0}]), *extra,
    ])


def test_grpo_anchor_coef_adds_the_target_cross_entropy(ws, scratch_sft, tmp_path):
    """With rewards weighted 0 the policy gradient is 0 (every advantage is 0): the anchor alone must then move the
    weights toward the targets, and the same run without it must leave them as they were."""
    from rlrec.data.schema import PreparedDataset

    dataset = PreparedDataset.load(ws / "data")

    def run(name: str, coef: str) -> dict:
        return _zero_reward_grpo(ws, scratch_sft, tmp_path / name, "0.003", "--anchor_coef", coef)

    anchored, plain = run("anchored", "1.0"), run("plain", "0")
    assert anchored["config"]["script"]["anchor_coef"] == 1.0
    logged = [entry["anchor/ce"] for entry in anchored["reward_log"] if "anchor/ce" in entry]
    assert len(logged) == 4 and all(ce > 0 for ce in logged)
    assert not any("anchor/ce" in entry for entry in plain["reward_log"])
    before = mean_target_logprob(dataset, scratch_sft, 8)
    assert mean_target_logprob(dataset, tmp_path / "plain", 8) == pytest.approx(before, abs=1e-5)
    assert mean_target_logprob(dataset, tmp_path / "anchored", 8) > before + 0.1
    with pytest.raises(UsageError, match="anchor_coef"):
        run("bad", "-1")


def test_sibling_advantages_on_a_toy_tree():
    """Target (1, 2, 3); candidates (1, 2, 3), (1, 2, 4), (1, 5, 6), (7, 8, 9) in one group, then a group with no
    target. Level 1: all four are siblings, right = 1, 1, 1, 0 (mean .75). Level 2 under (1): right = 1, 1, 0 (mean
    2/3); (7) alone: 0. Level 3 under (1, 2): right = 1, 0 (mean .5); (1, 5) and (7, 8) alone: 0."""
    from rlrec.training.grpo_trainer import sibling_advantages

    group = [[1, 2, 3], [1, 2, 4], [1, 5, 6], [7, 8, 9]]
    out = sibling_advantages(group + group, [[1, 2, 3]] * 4 + [None] * 4, group=4, width=4)
    expected = torch.tensor([[0.25, 1 / 3, 0.5, 0], [0.25, 1 / 3, -0.5, 0], [0.25, -2 / 3, 0, 0], [-0.75, 0, 0, 0]])
    assert torch.allclose(out[:4], expected) and torch.equal(out[4:], torch.zeros(4, 4))
    # A group where every candidate shares the target's first code carries no credit at that level.
    same = sibling_advantages([[1, 2, 3], [1, 9, 9]], [[1, 2, 3]] * 2, group=2)
    assert torch.allclose(same, torch.tensor([[0.0, 0.5, 0.0], [0.0, -0.5, 0.0]]))
    with pytest.raises(ValueError, match="groups of 4"):
        sibling_advantages(group[:3], [None] * 3, group=4)


def test_grpo_level_credit_alone_moves_the_policy_toward_the_targets(ws, scratch_sft, tmp_path):
    """Rewards weighted 0 give every sequence advantage 0: the per-level sibling credit alone must then raise the
    targets' log-probability (their tokens are the ones that keep matching). (At 3e-3 this tiny model overshoots:
    the push-down concentrated on each wrong sibling's divergent token then lowers the targets too.)"""
    from rlrec.data.schema import PreparedDataset

    dataset = PreparedDataset.load(ws / "data")

    def run(name: str, coef: str) -> dict:
        return _zero_reward_grpo(ws, scratch_sft, tmp_path / name, "0.001", "--level_credit", coef,
                                 "--rollout_add_target", "true")

    manifest = run("levels", "1.0")
    logged = [entry["level_credit/abs_mean"] for entry in manifest["reward_log"] if "level_credit/abs_mean" in entry]
    assert len(logged) == 4 and all(value > 0 for value in logged)
    before = mean_target_logprob(dataset, scratch_sft, 8)
    assert mean_target_logprob(dataset, tmp_path / "levels", 8) > before + 0.1
    with pytest.raises(UsageError, match="level_credit"):
        run("bad", "-1")


def test_valid_patience_stops_a_run_that_stopped_improving(ws, tmp_path):
    """With learning rate 0 the weights never move, so no check is a new best: training stops after `patience`."""
    out = tmp_path / "sft"
    manifest = run_stage("sft", _sft_argv(ws, out, "--learning_rate", "0", "--valid_every_steps", "2",
                                          "--valid_patience", "2", "--eval_at_end", "false"))
    selection = manifest["valid_selection"]
    assert manifest["global_step"] == 4 and selection["stopped_early_at"] == 4
    assert [point["step"] for point in selection["curve"]] == [0, 2, 4] and selection["best"]["step"] == 0


def test_divergence_credit_masks_only_the_first_wrong_token():
    from rlrec.generation.rollout import divergence_masks

    index = SIDIndex(["t", "sibling", "cousin", "stranger"], np.array([[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0]]),
                     [2, 2, 2])
    tokenizer = sid_tokenizer(index.vocabulary())
    sequences = torch.tensor([[tokenizer.convert_tokens_to_ids(index.tokens(i))
                               for i in ("t", "sibling", "cousin", "stranger")]])
    masks = divergence_masks(tokenizer, index, ["t"], sequences)
    assert masks == [[1, 1, 1], [0, 0, 1], [0, 1, 0], [1, 0, 0]]
    assert divergence_masks(tokenizer, index, ["t"], sequences, wrong_tokens=False) == \
        [[1, 1, 1], [0, 0, 0], [0, 0, 0], [0, 0, 0]]


def test_a_compared_checkpoint_is_asked_with_its_own_history_cap(ws, scratch_sft):
    from rlrec.evaluation.run import EvalSettings, load_compared

    index = SIDIndex.load(scratch_sft / "sid")
    settings = EvalSettings(max_history=9, baselines=[])  # the main model's cap, as `rlrec evaluate` sets it
    assert load_compared(scratch_sft, index, settings, device="cpu", dtype="auto").max_history == 5
    assert load_compared(scratch_sft, index, settings, device="cpu", dtype="auto", max_history=2).max_history == 2


def test_unseen_last_item_validation_leaves_each_users_last_window_out(ws, tmp_path):
    from rlrec.data.schema import PreparedDataset
    from rlrec.training.valid_selection import without_last_windows

    dataset = PreparedDataset.load(ws / "data")
    kept = without_last_windows(dataset.train)
    users = {ex.user_id for ex in dataset.train}
    assert len(kept) == len(dataset.train) - len(users)
    for valid in dataset.valid:  # the last item of every valid history is now in no train window of its user
        seen = {i for ex in kept if ex.user_id == valid.user_id for i in (*ex.history, ex.target)}
        assert valid.history[-1] not in seen
    manifest = run_stage("sft", _sft_argv(ws, tmp_path / "sft", "--valid_unseen_last_item", "true",
                                          "--num_train_epochs", "1", "--eval_at_end", "false"))
    full = run_stage("sft", _sft_argv(ws, tmp_path / "full", "--num_train_epochs", "1", "--eval_at_end", "false"))
    assert manifest["tasks"]["next_item"] == full["tasks"]["next_item"] - len(users)


@pytest.mark.distributed
def test_two_process_ddp_scratch_run_with_valid_selection(ws, tmp_path):
    """`accelerate launch` with 2 CPU processes (gloo): the plain loss's left-aligned forward goes through DDP,
    every rank ranks the valid users itself, and both ranks end with the same (best) weights."""
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "rlrec", "sft",
        *_sft_argv(ws, out, "--ddp_find_unused_parameters", "false", "--num_train_epochs", "4",
                   "--valid_every_steps", "2", "--eval_at_end", "false"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["valid_selection"]["best"]["step"] > 0


def test_early_stopping_on_validation_loss_keeps_the_best_checkpoint(ws, tmp_path):
    """MiniOneRec's schedule: evaluate the valid loss every few steps, stop after `patience` evaluations without a
    new best, keep the best checkpoint. A high learning rate on 40 users memorises train and the valid loss rises."""
    from safetensors.torch import load_file

    out = tmp_path / "sft"
    manifest = run_stage("sft", _sft_argv(ws, out, "--num_train_epochs", "200", "--learning_rate", "0.02",
                                          "--eval_strategy", "steps", "--eval_steps", "2",
                                          "--early_stopping_patience", "2", "--eval_at_end", "false"))
    history = manifest["eval_loss"]
    losses = [point["eval_loss"] for point in history["curve"]]
    best = min(range(len(losses)), key=losses.__getitem__)
    assert history["stopped_early"] and len(losses) == best + 3  # two evaluations without a new best, then stop
    assert history["best"] == pytest.approx(losses[best])
    assert Path(history["best_checkpoint"]).name == f"checkpoint-{history['curve'][best]['step']}"
    kept, best_weights = load_file(out / "model.safetensors"), load_file(Path(history["best_checkpoint"]) /
                                                                          "model.safetensors")
    assert all(torch.equal(kept[name], best_weights[name]) for name in kept)  # the best, not the last, is saved
    with pytest.raises(Exception, match="early_stopping_patience needs the validation loss: set eval_strategy"):
        run_stage("sft", _sft_argv(ws, tmp_path / "no", "--early_stopping_patience", "2"))
    with pytest.raises(ConfigError, match="choose one"):
        run_stage("sft", _sft_argv(ws, tmp_path / "both", "--eval_strategy", "steps", "--eval_steps", "2",
                                   "--early_stopping_patience", "2", "--valid_every_steps", "4"))
    assert not (tmp_path / "no").exists() and not (tmp_path / "both" / "manifest.json").exists()


def test_a_compared_checkpoint_is_decoded_with_its_own_sid_index(ws, scratch_sft, tmp_path):
    """Models over different SIDs of one catalog side by side: each is decoded with the index it was trained
    with, so the compared model scores as it does when evaluated alone (it did not before: the main index)."""
    other_sid = tmp_path / "sid"
    synthetic_sid_index(SIDIndex.load(ws / "sid").item_ids, seed=5).save(other_sid)
    other = tmp_path / "other"
    run_stage("sft", _sft_argv(ws, other, "--sid_dir", str(other_sid), "--num_train_epochs", "10",
                               "--eval_at_end", "false"))
    common = ["--dataset_dir", str(ws / "data"), "--split", "test", "--num_beams", "10", "--k_values", "5", "10",
              "--baselines", "popularity", "--plot", "false"]
    alone = run_stage("evaluate", ["--model_path", str(other), "--output_dir", str(tmp_path / "alone"), *common])
    side = run_stage("evaluate", ["--model_path", str(scratch_sft), "--compare", f"other={other}",
                                  "--output_dir", str(tmp_path / "side"), *common])
    assert side["models"]["other"]["all"] == alone["models"]["model"]["all"]
    assert side["per_user"]["ranks"]["other"] == alone["per_user"]["ranks"]["model"]


def mean_target_logprob(dataset, folder: Path, num_prompts: int) -> float:
    """Mean log-probability of the targets' SIDs under the model in `folder`, over `num_prompts` GRPO prompts."""
    from rlrec.generation.rollout import target_logprobs
    from rlrec.models.checkpoint import load_checkpoint
    from rlrec.scripts.grpo import prompt_dataset

    model, tokenizer = load_checkpoint(folder, device="cpu")
    index = SIDIndex.load(folder / "sid")
    rows = prompt_dataset(dataset, index, tokenizer, 5, num_prompts, seed=5)
    prompt_ids = [tokenizer(r["prompt"], add_special_tokens=False)["input_ids"] for r in rows]
    targets = torch.tensor([tokenizer.convert_tokens_to_ids(index.tokens(r["target"])) for r in rows])
    return float(target_logprobs(model, prompt_ids, targets, tokenizer.pad_token_id).sum(-1).mean())


# -- DPO on beam negatives -----------------------------------------------------------------------------------------

def _dpo_argv(ws: Path, model: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--dataset_dir", str(ws / "data"), "--model_name_or_path", str(model), "--output_dir", str(out),
        "--use_cpu", "true", "--per_device_train_batch_size", "16", "--logging_steps", "1", "--save_strategy", "no",
        "--report_to", "none", "--eval_at_end", "false", "--seed", "5", *extra,
    ]


def test_dpo_pairs_the_target_with_the_models_own_top_wrong_items(ws, scratch_sft):
    from rlrec.data.schema import PreparedDataset
    from rlrec.models.checkpoint import load_checkpoint
    from rlrec.ranking import SIDRanker
    from rlrec.scripts.dpo import preference_dataset
    from rlrec.training.dpo_config import DPOScriptArguments

    dataset = PreparedDataset.load(ws / "data")
    model, tokenizer = load_checkpoint(scratch_sft, device="cpu")
    index = SIDIndex.load(scratch_sft / "sid")
    ranker = SIDRanker(model, tokenizer, index, num_beams=8, max_history=5)
    args = DPOScriptArguments(num_negatives=3, negative_beams=8, num_train_prompts=10)
    rows, counts = preference_dataset(ranker, dataset, index, args, seed=3)
    assert counts == {"prompts": 10, "beam_pairs": 30, "rating_pairs": 0} and len(rows) == 30

    def sid_ids(item: str) -> list[int]:
        return tokenizer.convert_tokens_to_ids(index.tokens(item))

    by_prompt: dict[tuple, list[dict]] = {}
    for row in rows:  # completions are bare SIDs, scored as the ranking scores them (no <eos>)
        assert len(row["chosen_ids"]) == len(row["rejected_ids"]) == 3
        assert tokenizer.eos_token_id not in row["chosen_ids"] + row["rejected_ids"]
        by_prompt.setdefault(tuple(row["prompt_ids"]), []).append(row)
    for pairs in by_prompt.values():
        assert len({tuple(pair["chosen_ids"]) for pair in pairs}) == 1
        assert all(pair["rejected_ids"] != pair["chosen_ids"] for pair in pairs)
    # the rejected items are the model's best-ranked wrong items, in its order; the prompt is the ranking's
    example = next(ex for ex in dataset.train if ex.target in index)
    top = [item for item, _ in ranker.rank([example.history], 4)[0] if item != example.target][:3]
    one = preference_dataset(ranker, PreparedDataset(train=[example], valid=[], test=[], items=dataset.items),
                             index, args, seed=3)[0]
    assert [row["rejected_ids"] for row in one] == [sid_ids(item) for item in top]
    assert one[0]["chosen_ids"] == sid_ids(example.target)
    assert one[0]["prompt_ids"] == tokenizer(ranker.prompt_texts([example.history])[0],
                                             add_special_tokens=False)["input_ids"]
    random_rows, _ = preference_dataset(ranker, dataset, index, DPOScriptArguments(
        negatives="random", num_negatives=2, num_train_prompts=10), seed=3)
    assert len(random_rows) == 20 and all(row["rejected_ids"] != row["chosen_ids"] for row in random_rows)


def test_dpo_rating_pairs_oppose_what_the_user_liked_and_disliked(ws, scratch_sft):
    from rlrec.data.feedback import UserRatings
    from rlrec.data.schema import PreparedDataset
    from rlrec.models.checkpoint import load_checkpoint
    from rlrec.ranking import SIDRanker
    from rlrec.scripts.dpo import preference_dataset
    from rlrec.training.dpo_config import DPOScriptArguments
    from rlrec.training.refine import train_examples

    dataset = PreparedDataset.load(ws / "data")
    rule = dataset.feedback()
    model, tokenizer = load_checkpoint(scratch_sft, device="cpu")
    index = SIDIndex.load(scratch_sft / "sid")
    ranker = SIDRanker(model, tokenizer, index, num_beams=8, max_history=5)
    item_of = {tuple(tokenizer.convert_tokens_to_ids(index.tokens(item))): item for item in index.item_ids}
    args = DPOScriptArguments(negatives="none", rating_pairs=2, num_train_prompts=40)
    rows, counts = preference_dataset(ranker, dataset, index, args, seed=3)
    assert counts["beam_pairs"] == 0 and counts["rating_pairs"] == len(rows) > 20
    examples = train_examples("dpo", dataset, index, 40, 3)
    ratings = UserRatings.from_train(dataset.train, rule)
    expected = []  # rows come in prompt order, each prompt's pairs nearest in time first
    for ex in examples:
        label = rule.label(ex.rating)
        others = ratings.nearest(ex.user_id, ex.target, "liked" if label == "disliked" else "disliked", 2)
        expected += [(item, ex.target) if label == "disliked" else (ex.target, item) for item in others]
    assert [(item_of[tuple(r["chosen_ids"])], item_of[tuple(r["rejected_ids"])]) for r in rows] == expected
    seen_labels = set()
    for ex in examples:
        mine = dict(ratings.sequences[ex.user_id])
        seen_labels.add(rule.label(ex.rating))
        for item in ratings.nearest(ex.user_id, ex.target, "disliked", 2):
            assert rule.label(mine[item]) == "disliked" and item != ex.target
    assert "disliked" in seen_labels and len(seen_labels) > 1
    # Beside beam pairs, a disliked target gets no beam pair (it is no `chosen`).
    both, both_counts = preference_dataset(ranker, dataset, index, DPOScriptArguments(
        num_negatives=1, negative_beams=4, rating_pairs=2, num_train_prompts=40), seed=3)
    assert both_counts["rating_pairs"] == counts["rating_pairs"]
    assert both_counts["beam_pairs"] == sum(rule.label(ex.rating) != "disliked" for ex in examples)


def test_dpo_rating_pairs_need_rated_data_and_some_pairs(ws, scratch_sft):
    from rlrec.data.schema import PreparedDataset
    from rlrec.models.checkpoint import load_checkpoint
    from rlrec.ranking import SIDRanker
    from rlrec.scripts.dpo import preference_dataset
    from rlrec.training.dpo_config import DPOScriptArguments

    dataset = PreparedDataset.load(ws / "data")
    model, tokenizer = load_checkpoint(scratch_sft, device="cpu")
    index = SIDIndex.load(scratch_sft / "sid")
    ranker = SIDRanker(model, tokenizer, index, num_beams=8, max_history=5)
    unrated = PreparedDataset(items=dataset.items, train=dataset.train, valid=[], test=[], manifest={})
    with pytest.raises(ConfigError, match="rating_pairs=2 needs rated data"):
        preference_dataset(ranker, unrated, index, DPOScriptArguments(rating_pairs=2, num_train_prompts=4), seed=3)
    with pytest.raises(ConfigError, match="negatives: none"):
        DPOScriptArguments(negatives="none")


def test_dpo_raises_the_targets_margin_and_saves_a_model_folder_the_next_stages_read(ws, scratch_sft, tmp_path):
    from rlrec.ranking import load_ranker

    out = tmp_path / "dpo"
    manifest = run_stage("dpo", _dpo_argv(ws, scratch_sft, out, "--max_steps", "8", "--num_negatives", "2",
                                          "--negative_beams", "8", "--num_train_prompts", "32",
                                          "--learning_rate", "0.003", "--valid_every_steps", "4"))
    assert manifest["stage"] == "dpo" and manifest["global_step"] == 8
    assert manifest["pairs"] == {"prompts": 32, "pairs": 64, "negatives": "beam", "num_negatives": 2,
                                 "rating_pairs": 0, "rating_pairs_per_prompt": 0}
    margins = [entry["rewards/margins"] for entry in manifest["dpo_log"]]
    print("DPO reward margins by step:", [round(m, 3) for m in margins])
    assert len(margins) == 8 and abs(margins[0]) < 1e-3  # the policy starts as its reference
    assert sum(margins[-3:]) / 3 > 0.1  # the targets pulled above their beam negatives
    assert [point["step"] for point in manifest["valid_selection"]["curve"]] == [0, 4, 8]
    ranker = load_ranker(out)
    assert len(ranker.rank([[next(iter(ranker.item_ids))]], 5)[0]) == 5


@pytest.mark.parametrize(("flags", "match"), [
    (("--num_negatives", "4", "--negative_beams", "4"), "negative_beams"),
    (("--negatives", "hardest"), "negatives"),
    (("--num_negatives", "0"), "num_negatives"),
])
def test_dpo_refuses_bad_negative_settings(ws, scratch_sft, tmp_path, flags, match):
    with pytest.raises(UsageError, match=match):
        run_stage("dpo", _dpo_argv(ws, scratch_sft, tmp_path / "dpo", "--max_steps", "1", *flags))


def test_a_saved_compact_model_continues_training_with_the_recipes_attention(ws, scratch_sft, tmp_path):
    manifest = run_stage("sft", _sft_argv(ws, tmp_path / "more", "--model_name_or_path", str(scratch_sft),
                                          "--max_steps", "2", "--attn_implementation", "eager",
                                          "--eval_at_end", "false"))
    assert manifest["global_step"] == 2
    assert manifest["sa_init"]["mode"] == "scratch" and manifest["sa_init"]["attn_implementation"] == "eager"


def test_sft_arguments_settle_once_before_anything_reads_them():
    """The SID-row history cap is resolved once at the start of `rlrec sft`; the trainer's later settle changes
    nothing, and a scratch model's refusals come with it."""
    from rlrec.training.config import DEFAULT_SCRATCH_HISTORY, SFTScriptArguments
    from rlrec.utils.errors import ConfigError

    args = SFTScriptArguments()
    args.settle(scratch=True)
    assert args.max_history == DEFAULT_SCRATCH_HISTORY
    args.max_history = 3  # whoever reads after the first settle sees what it settled; nothing re-derives it
    args.settle(scratch=True)
    assert args.max_history == 3
    with pytest.raises(ValueError, match="settled for scratch=True"):
        args.settle(scratch=False)
    llm = SFTScriptArguments()
    llm.settle(scratch=False)
    assert llm.max_history is None  # chat prompts: the histories as prepared
    assert SFTScriptArguments(sid_only_prompts=True, max_history=7).max_history == 7
    with pytest.raises(ConfigError, match="from-scratch model"):
        SFTScriptArguments(tasks={"next_item": 1.0, "title_to_sid": 0.1}).settle(scratch=True)
