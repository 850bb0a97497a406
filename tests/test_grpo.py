"""GRPO: constrained rollouts (groups, log-probs of the generating policy) and the stage end to end."""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from rlrec.cli import UsageError, run_stage
from rlrec.data.synthetic import synthetic_dataset
from rlrec.generation.rollout import SIDRollout, group_prompts, left_pad, render_prompts
from rlrec.init.vocab import add_sid_tokens
from rlrec.models.tiny import tiny_model_and_tokenizer
from rlrec.sid.index import SIDIndex
from rlrec.tasks.prompts import history_prompt
from rlrec.utils.errors import ConfigError

SIZES = (4, 4, 8)


def _index(n_items: int = 60, seed: int = 0) -> SIDIndex:
    rng = np.random.default_rng(seed)
    space = np.array(np.meshgrid(*[np.arange(s) for s in SIZES], indexing="ij")).reshape(len(SIZES), -1).T
    return SIDIndex([f"i{k}" for k in range(n_items)], space[rng.choice(len(space), n_items, replace=False)],
                    list(SIZES))


@pytest.fixture(scope="module")
def policy():
    index = _index()
    model, tokenizer = tiny_model_and_tokenizer()
    add_sid_tokens(tokenizer, model, index.vocabulary())
    return model.eval(), tokenizer, index


def _recomputed_logprobs(model, prompt: list[int], completion: list[int], temperature: float = 1.0) -> torch.Tensor:
    """What GRPOTrainer computes for the loss: log-softmax of logits / temperature at each completion token."""
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, len(prompt) - 1: -1] / temperature
    return torch.log_softmax(logits.float(), dim=-1).gather(1, torch.tensor(completion)[:, None])[:, 0]


def test_group_prompts_takes_one_prompt_per_run_and_refuses_mixed_groups():
    a, b = [{"role": "user", "content": "a"}], [{"role": "user", "content": "b"}]
    assert group_prompts([a, a, b, b], 2) == [a, b]
    with pytest.raises(ConfigError, match="not a multiple"):
        group_prompts([a, a, b], 2)
    with pytest.raises(ConfigError, match="not 2 copies"):
        group_prompts([a, b, b, b], 2)


@pytest.mark.parametrize("mode", ["beam", "sample"])
def test_rollout_groups_are_real_items_with_the_policys_logprobs(policy, mode):
    model, tokenizer, index = policy
    rollout = SIDRollout(index, tokenizer, num_generations=4, mode=mode, batch_size=2, seed=3)
    prompts = [history_prompt(["i1", "i2", "i3"], index), history_prompt(["i7"], index),
               history_prompt(["i9", "i4"], index)]
    prompt_ids = render_prompts(tokenizer, prompts)
    temperature = 1.0 if mode == "beam" else 0.7
    items, sequences, logprobs = rollout.decode(model, prompt_ids, temperature=temperature)
    out = rollout.pack(prompt_ids, items, sequences, logprobs)

    from rlrec.tasks.reward_batch import ROLLOUT_COLUMNS, rollout_fields

    assert sorted(rollout_fields(out)) == sorted(ROLLOUT_COLUMNS)  # the columns the contract names reach the rewards
    assert len(out["completion_ids"]) == 3 * 4
    for p in range(3):
        group = slice(4 * p, 4 * p + 4)
        for item, completion in zip(out["item_id"][group], out["completion_ids"][group], strict=True):
            assert index.parse(tokenizer.decode(completion)) == item  # a real item, spelled by its SID tokens
        if mode == "beam":
            assert len(set(out["item_id"][group])) == 4  # distinct candidates
            assert out["beam_rank"][group] == [0, 1, 2, 3]
            sums = [sum(lp) for lp in out["logprobs"][group]]
            assert sums == sorted(sums, reverse=True)  # best first
    # Log-probs are those the trainer recomputes for the policy that generated the rollout.
    for k in range(0, 12, 5):
        expected = _recomputed_logprobs(model, out["prompt_ids"][k], out["completion_ids"][k], temperature)
        torch.testing.assert_close(torch.tensor(out["logprobs"][k]), expected, atol=1e-4, rtol=1e-4)


def test_sampled_rollouts_draw_per_rank_and_call_and_repeat_with_the_seed(policy):
    """Every rank (and every call) must draw its own candidates: one seed for all would correlate the groups."""
    model, tokenizer, index = policy
    rollout = SIDRollout(index, tokenizer, num_generations=4, mode="sample", batch_size=8, seed=3)
    prompt_ids = render_prompts(tokenizer, [history_prompt(["i1", "i2"], index)] * 8)

    def draw(stream):
        return rollout.decode(model, prompt_ids, temperature=1.5, stream=stream)[0].tolist()

    assert draw((0, 0)) == draw((0, 0))  # reproducible
    assert len({str(draw(stream)) for stream in [(0, 0), (1, 0), (0, 1)]}) == 3  # rank 1, call 1: new draws


def test_prompt_rendering_matches_the_sft_prompt(policy):
    _, tokenizer, index = policy
    prompt = history_prompt(["i1", "i2"], index)
    expected = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True)
    if isinstance(expected, dict) or hasattr(expected, "input_ids"):
        expected = expected["input_ids"]
    assert render_prompts(tokenizer, [prompt])[0] == list(expected)
    ids, mask = left_pad([[5, 6], [7]], pad_id=0, device=torch.device("cpu"))
    assert ids.tolist() == [[5, 6], [0, 7]] and mask.tolist() == [[1, 1], [0, 1]]


def test_rollout_refuses_bad_settings(policy):
    _, tokenizer, index = policy
    with pytest.raises(ConfigError, match="at least 2"):
        SIDRollout(index, tokenizer, num_generations=1)
    with pytest.raises(ConfigError, match="beam"):
        SIDRollout(index, tokenizer, num_generations=4, mode="greedy")
    with pytest.raises(ConfigError, match="catalog has 60"):
        SIDRollout(index, tokenizer, num_generations=61)


def test_batch_targets_reach_the_rollout_only_while_held(policy):
    """The trainer hands the batch's targets to the rollout through the one `BatchTargets` both were given."""
    from rlrec.tasks.reward_batch import BatchTargets

    _, tokenizer, index = policy
    rollout = SIDRollout(index, tokenizer, num_generations=2, add_target=True)
    rows = [{"prompt": "p", "target": "i1"}] * 2 + [{"prompt": "q", "target": "i7"}] * 2
    with pytest.raises(ConfigError, match=r"targets of its 4 prompts .* none held: train with RecGRPOTrainer"):
        rollout(["p", "p", "q", "q"], trainer=None)
    with rollout.targets.hold(rows) as held:
        assert held == ["i1", "i1", "i7", "i7"] and rollout.targets.for_prompts(4)[::2] == ["i1", "i7"]
        with pytest.raises(ConfigError, match="4 held"):
            rollout.targets.for_prompts(6)
    with pytest.raises(ConfigError, match="none held"):
        rollout.targets.for_prompts(4)
    assert SIDRollout(index, tokenizer, num_generations=2).targets is not rollout.targets  # one holder each
    assert isinstance(rollout.targets, BatchTargets)


# ----------------------------------------------------------------------------------------------------------------
# The stage end to end

SEEN: list[dict] = []


def probe_reward(completions, item_id, beam_rank, target, **kwargs):
    """A user reward (loaded by dotted path) that records what the rollout handed to the rewards."""
    SEEN.append({"texts": [c[0]["content"] for c in completions], "item_id": list(item_id),
                 "beam_rank": list(beam_rank), "target": list(target)})
    # Prefer lower-ranked beams: a reward that always varies within a group, so every step has a gradient.
    return [-float(rank) for rank in beam_rank]


@pytest.fixture(scope="module")
def sft_model(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("grpo")
    dataset = synthetic_dataset(num_users=40, num_items=60, seed=1, history_cut=8)
    (root / "data").mkdir()
    dataset.save(root / "data")
    item_ids = sorted(dataset.items)
    index = _index(len(item_ids))
    SIDIndex(item_ids, index.codes, list(SIZES)).save(root / "sid")
    model, tokenizer = tiny_model_and_tokenizer()
    model.save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    run_stage("sft", [
        "--dataset_dir", str(root / "data"), "--sid_dir", str(root / "sid"), "--model_name_or_path",
        str(root / "base"), "--output_dir", str(root / "sft"), "--use_cpu", "true", "--max_steps", "3",
        "--per_device_train_batch_size", "8", "--num_train_examples", "24", "--save_strategy", "no",
        "--report_to", "none", "--eval_at_end", "false", "--max_history", "5", "--dtype", "float32",
    ])
    return root


def _grpo_argv(root: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--dataset_dir", str(root / "data"), "--model_name_or_path", str(root / "sft"), "--output_dir", str(out),
        "--use_cpu", "true", "--max_steps", "2", "--num_generations", "4", "--per_device_train_batch_size", "8",
        "--logging_steps", "1", "--save_strategy", "no", "--report_to", "none", "--num_train_prompts", "16",
        "--learning_rate", "0.01", "--eval_max_examples", "8", "--eval_num_beams", "5", "--eval_k_values", "1", "5",
        "--eval_baselines", "popularity", *extra,
    ]


def test_grpo_stage_trains_on_constrained_rollouts_and_saves(sft_model, tmp_path):
    SEEN.clear()
    out = tmp_path / "grpo"
    rewards = json.dumps(["exact_match", {"name": "ranking", "weight": 0.5}, "token_semantic",
                          "test_grpo:probe_reward", {"name": "novelty", "weight": 0.3, "within_rank": 2}])
    manifest = run_stage("grpo", _grpo_argv(sft_model, out, "--rewards", rewards))

    assert json.loads((out / "manifest.json").read_text())["stage"] == "grpo"
    assert manifest["global_step"] == 2 and manifest["saved_as"] == "full"
    from safetensors.torch import load_file

    weights = load_file(out / "model.safetensors")
    assert weights and all(t.numel() > 0 for t in weights.values())
    assert manifest["rewards"]["weights"] == [1.0, 0.5, 1.0, 1.0, 0.3]
    assert manifest["prompt_max_history"] == 5  # taken from the SFT model's manifest
    logged = manifest["reward_log"][0]
    for name in ("exact_match", "ranking", "token_semantic", "probe_reward", "novelty"):
        assert f"rewards/{name}/mean" in logged
    assert 0.0 < logged["rewards/novelty/mean"] <= 0.5  # in [0, 1], and only half of each group may earn it
    # Every batch held whole groups of 4 distinct real items, in beam order, each spelled by its SID.
    index = SIDIndex.load(out / "sid")
    assert SEEN
    for batch in SEEN:
        for start in range(0, len(batch["item_id"]), 4):
            group = batch["item_id"][start: start + 4]
            assert len(set(group)) == 4 and batch["beam_rank"][start: start + 4] == [0, 1, 2, 3]
            assert len(set(batch["target"][start: start + 4])) == 1
        assert [index.parse(t) for t in batch["texts"]] == batch["item_id"]
    assert manifest["eval"]["models"]["model"]["all"]["HR@5"] >= 0
    # The policy update changed the weights.
    from rlrec.models.checkpoint import load_checkpoint

    before, _ = load_checkpoint(sft_model / "sft", device="cpu")
    after, _ = load_checkpoint(out, device="cpu")
    changed = [name for (name, p), q in zip(before.named_parameters(), after.parameters(), strict=True)
               if not torch.equal(p, q)]
    assert changed, "two GRPO steps left every weight unchanged"


def test_grpo_steered_run_chooses_on_tail_share_above_an_ndcg_floor(sft_model, tmp_path):
    """A steering recipe's selection: valid tail share, among the checks that keep NDCG within the floor."""
    manifest = run_stage("grpo", _grpo_argv(
        sft_model, tmp_path / "steer", "--rewards", json.dumps(["exact_match", {"name": "long_tail", "weight": 1.0}]),
        "--valid_every_steps", "1", "--valid_metric", "tail_share@5", "--valid_floor", "NDCG@5>=0.5",
        "--valid_num_beams", "5", "--eval_at_end", "false"))
    selection = manifest["valid_selection"]
    curve = selection["curve"]
    assert [p["step"] for p in curve] == [0, 1, 2] and all("tail_share@5" in p and "NDCG@5" in p for p in curve)
    eligible = [p for p in curve if p["NDCG@5"] >= 0.5 * curve[0]["NDCG@5"]]
    assert [p["eligible"] for p in curve] == [p in eligible for p in curve]
    assert selection["best"]["step"] == max(eligible, key=lambda p: p["tail_share@5"])["step"]


def test_grpo_with_lora_saves_a_merged_model(sft_model, tmp_path):
    out = tmp_path / "lora"
    manifest = run_stage("grpo", _grpo_argv(sft_model, out, "--use_peft", "true", "--lora_r", "4",
                                            "--lora_target_modules", "q_proj", "v_proj", "--eval_at_end", "false",
                                            "--rollout", "sample", "--rollout_top_k", "3"))
    assert manifest["saved_as"] == "merged" and not (out / "adapter_config.json").exists()
    from rlrec.models.checkpoint import load_checkpoint

    model, tokenizer = load_checkpoint(out, device="cpu")
    assert all(tokenizer.convert_tokens_to_ids(t) < model.get_input_embeddings().weight.shape[0]
               for t in SIDIndex.load(out / "sid").vocabulary())


def test_grpo_bad_configs_are_refused(sft_model, tmp_path):
    with pytest.raises(UsageError, match="(divisible by|multiple of) num_generations"):
        run_stage("grpo", _grpo_argv(sft_model, tmp_path / "a", "--per_device_train_batch_size", "6"))
    with pytest.raises(UsageError, match="rollout"):
        run_stage("grpo", _grpo_argv(sft_model, tmp_path / "b", "--rollout", "greedy"))
    with pytest.raises(ConfigError, match="unknown|known"):
        run_stage("grpo", _grpo_argv(sft_model, tmp_path / "c", "--rewards", '["exact_match", "no_such_reward"]'))
    assert not (tmp_path / "c" / "manifest.json").exists()
    # A SID index whose tokens the checkpoint does not know.
    index = SIDIndex.load(sft_model / "sft" / "sid")
    SIDIndex(index.item_ids, index.codes, index.codebook_sizes, token_prefixes=["x", "y", "z"]).save(tmp_path / "sid")
    with pytest.raises(ValueError, match="not in the tokenizer"):
        run_stage("grpo", _grpo_argv(sft_model, tmp_path / "d", "--sid_dir", str(tmp_path / "sid")))


# ----------------------------------------------------------------------------------------------------------------
# rlrec rewards: compare rewards on one set of rollouts


def test_rewards_stage_generates_once_then_rescores_saved_rollouts(sft_model, tmp_path):
    out = tmp_path / "rewards"
    argv = ["--model_path", str(sft_model / "sft"), "--dataset_dir", str(sft_model / "data"), "--output_dir",
            str(out), "--max_examples", "6", "--num_generations", "4", "--device", "cpu", "--rewards",
            json.dumps(["exact_match", "ranking", "token_semantic", "test_grpo:probe_reward"])]
    report = run_stage("rewards", argv)

    groups = [json.loads(line) for line in (out / "rollouts.jsonl").read_text().splitlines()]
    assert report["groups"] == len(groups) == 6 and report["group_size"] == 4
    assert all(len({c["item_id"] for c in g["candidates"]}) == 4 for g in groups)
    stats = report["rewards"]
    # probe_reward is -beam_rank: never flat within a group, mean -1.5, std of (0, 1, 2, 3).
    assert stats["probe_reward"]["zero_variance_groups"] == 0.0
    assert stats["probe_reward"]["mean"] == pytest.approx(-1.5)
    assert stats["probe_reward"]["group_std"] == pytest.approx(np.std([0, 1, 2, 3]))
    assert report["correlation"]["probe_reward"]["probe_reward"] == pytest.approx(1.0)
    # exact_match is 1 exactly where the candidate is the target.
    hits = np.mean([c["item_id"] == g["target"] for g in groups for c in g["candidates"]])
    assert stats["exact_match"]["mean"] == pytest.approx(hits, abs=1e-6)

    # Re-score the saved rollouts with another reward list: no model needed, same groups.
    again = run_stage("rewards", ["--rollouts_file", str(out / "rollouts.jsonl"), "--sid_dir",
                                  str(sft_model / "sft" / "sid"), "--output_dir", str(tmp_path / "again"),
                                  "--dataset_dir", str(sft_model / "data"),
                                  "--rewards", "exact_match,test_grpo:probe_reward,long_tail,novelty"])
    assert again["rewards"]["exact_match"] == stats["exact_match"]
    assert list(again["rewards"]) == ["exact_match", "probe_reward", "long_tail", "novelty"]
    from rlrec.data.popularity import head_items, item_popularity
    from rlrec.data.schema import PreparedDataset

    head = head_items(item_popularity(PreparedDataset.load(sft_model / "data").train))
    tail = np.mean([c["item_id"] not in head for g in groups for c in g["candidates"]])
    assert again["rewards"]["long_tail"]["mean"] == pytest.approx(tail, abs=1e-6)


RECORDED: list[dict] = []
HOOKS = ("trainer_state", "log_extra", "log_metric")


def record_reward(prompts, completions, completion_ids, **kwargs):
    """A user reward that records every argument of each call and scores each completion by a hash of all of them
    (hooks aside): a stage that hands it another prompt, column or completion computes other rewards."""
    columns = {key: values for key, values in kwargs.items() if key not in HOOKS}
    rows = [{"prompt": prompt, "completion": completion, "completion_ids": list(ids),
             **{key: values[i] for key, values in columns.items()}}
            for i, (prompt, completion, ids) in enumerate(zip(prompts, completions, completion_ids, strict=True))]
    scores = [zlib.crc32(json.dumps(row, sort_keys=True).encode()) % 997 / 997 for row in rows]
    RECORDED.append({"arguments": sorted(["prompts", "completions", "completion_ids", *kwargs]), "rows": rows,
                     "scores": scores, "hooks_callable": [callable(kwargs.get(h)) for h in HOOKS[1:]]})
    return scores


def test_rewards_stage_scores_what_a_grpo_step_scores(sft_model, tmp_path):
    """The rewards `rlrec rewards` computes for a prompt's group are those a real GRPO step computes for it: same
    prompt (prompter, history cut), same candidates (rollout, add_target), and the same keyword arguments as TRL
    hands them. Rollouts one prompt at a time in both, so that no padding partner changes a beam's score."""
    RECORDED.clear()
    manifest = run_stage("grpo", _grpo_argv(
        sft_model, tmp_path / "grpo", "--rewards", '["test_grpo:record_reward"]', "--max_steps", "1",
        "--per_device_train_batch_size", "32", "--rollout_batch_size", "1", "--rollout_add_target", "true",
        "--num_train_prompts", "8", "--seed", "0", "--eval_at_end", "false"))
    grpo_call = RECORDED[0]  # the first rollout, by the SFT weights (before any update)
    assert len(grpo_call["rows"]) == 32
    # What the recorder returned is what the step used: TRL logs its mean.
    assert manifest["reward_log"][0]["rewards/record_reward/mean"] == pytest.approx(np.mean(grpo_call["scores"]),
                                                                                     abs=1e-6)

    RECORDED.clear()
    out = tmp_path / "rewards"
    report = run_stage("rewards", [
        "--model_path", str(sft_model / "sft"), "--dataset_dir", str(sft_model / "data"), "--output_dir", str(out),
        "--split", "train", "--max_examples", "100000", "--num_generations", "4", "--rollout_batch_size", "1",
        "--add_target", "true", "--device", "cpu", "--rewards", '["test_grpo:record_reward"]'])
    (stage_call,) = RECORDED
    assert report["rewards"]["record_reward"]["mean"] == pytest.approx(np.mean(stage_call["scores"]), abs=1e-6)
    assert stage_call["arguments"] == grpo_call["arguments"]  # TRL's keyword contract, hooks included
    assert stage_call["hooks_callable"] == grpo_call["hooks_callable"] == [True, True]

    def by_prompt(call: dict) -> dict:
        """(user, target) -> the rows and scores of that prompt's group (groups are 4 consecutive rows)."""
        rows, scores = call["rows"], call["scores"]
        return {(rows[i]["user_id"], rows[i]["target"]): (rows[i: i + 4], scores[i: i + 4])
                for i in range(0, len(rows), 4)}

    stage_groups = by_prompt(stage_call)
    grpo_groups = by_prompt(grpo_call)
    assert len(grpo_groups) == 8 and set(grpo_groups) <= set(stage_groups)
    # Half of these prompts (seed 0) cut a history longer than the cap: a stage that cut it otherwise would differ.
    from rlrec.data.schema import PreparedDataset

    history = {(ex.user_id, ex.target): len(ex.history) for ex in PreparedDataset.load(sft_model / "data").train}
    assert max(history[key] for key in grpo_groups) > manifest["prompt_max_history"] == 5
    for key, (rows, scores) in grpo_groups.items():
        assert stage_groups[key][0] == rows  # prompt, completions, ids and every column, per candidate
        assert stage_groups[key][1] == scores
    assert any(row["item_id"] == row["target"] for rows, _ in grpo_groups.values() for row in rows)

    # Saved rollouts re-scored: the same arguments again, without the model.
    RECORDED.clear()
    run_stage("rewards", ["--rollouts_file", str(out / "rollouts.jsonl"), "--sid_dir", str(sft_model / "sft" / "sid"),
                          "--output_dir", str(tmp_path / "again"), "--rewards", '["test_grpo:record_reward"]'])
    assert RECORDED[0]["arguments"] == grpo_call["arguments"]
    assert RECORDED[0]["rows"] == stage_call["rows"] and RECORDED[0]["scores"] == stage_call["scores"]


def test_rewards_stage_bad_input(tmp_path):
    (tmp_path / "bad.jsonl").write_text('{"target": "i1", "candidates": []}\n')
    (tmp_path / "sid").mkdir()
    _index().save(tmp_path / "sid")
    with pytest.raises(Exception, match=r"bad.jsonl: line 1: expected a group"):
        run_stage("rewards", ["--rollouts_file", str(tmp_path / "bad.jsonl"), "--sid_dir", str(tmp_path / "sid"),
                              "--output_dir", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
    with pytest.raises(UsageError, match="model_path"):
        run_stage("rewards", ["--output_dir", str(tmp_path / "out")])


@pytest.mark.distributed
@pytest.mark.parametrize("stage", [2, 3])
def test_two_process_zero_run_on_cpu(sft_model, tmp_path, stage):
    """DeepSpeed ZeRO-2/3, 2 CPU processes: rollouts on each rank's share of the groups (ZeRO-3 gathers the
    sharded weights for them), updates, rank 0 saves a full model."""
    import os
    import subprocess
    import sys

    out = tmp_path / f"zero{stage}"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--use_deepspeed", "--zero_stage", str(stage),
        "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "-m", "rlrec", "grpo", *_grpo_argv(sft_model, out, "--per_device_train_batch_size", "4",
                                           "--eval_at_end", "false"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["world_size"] == 2 and manifest["distributed_type"] == "DEEPSPEED"
    assert manifest["global_step"] == 2 and manifest["saved_as"] == "full"
    from safetensors.torch import load_file

    weights = load_file(out / "model.safetensors")
    assert weights and all(t.numel() > 0 for t in weights.values())


def test_rewards_hands_completions_over_as_grpo_does():
    """TRL passes a chat prompt's completions as assistant messages and a plain prompt's as text; `rlrec rewards`
    scores saved groups the same way, so a reward reading completions sees one type in both stages."""
    from rlrec.scripts.rewards import score_groups

    seen = []

    def record(completions, **kwargs):
        seen.extend(completions)
        return [0.0] * len(completions)

    groups = [{"prompt": "<bos><a_1><b_2><c_3>", "target": "i1", "candidates": [{"text": "<a_1>", "item_id": "i1"}]},
              {"prompt": [{"role": "user", "content": "History: ..."}], "target": "i2",
               "candidates": [{"text": "<a_2>", "item_id": "i2"}]}]
    scores, _ = score_groups(groups, [record], ["record"])
    assert seen == ["<a_1>", [{"role": "assistant", "content": "<a_2>"}]]
    assert scores.shape == (1, 2, 1)


def _rated_copy(root: Path, out: Path, rating: float) -> Path:
    """The fixture's dataset with every train target rated `rating` (the test targets keep theirs)."""
    from rlrec.data.schema import PreparedDataset

    dataset = PreparedDataset.load(root / "data")
    for ex in dataset.train:
        ex.rating = rating
    out.mkdir()
    dataset.save(out)
    return out


def _catalog_logprob(model_dir: Path, dataset_dir: Path, seed: int = 42) -> float:
    """Mean log-prob of each prompt's target among all catalog items (each item's SID log-prob, normalised over
    the catalog: what a constrained ranking sees) over the prompts a 16-prompt GRPO run trains on. The
    full-vocabulary log-prob is no measure here: pushing the group's other candidates down moves mass off the SID
    prefixes the target shares with them, so it falls even where the target's rank among items rises."""
    from rlrec.data.schema import PreparedDataset
    from rlrec.generation.rollout import sid_token_ids, target_logprobs
    from rlrec.models.checkpoint import load_checkpoint
    from rlrec.tasks.reward_batch import PROMPT_COLUMNS, prompt_rows
    from rlrec.training.refine import train_examples

    model, tokenizer = load_checkpoint(model_dir, device="cpu")
    index = SIDIndex.load(model_dir / "sid")
    examples = train_examples("grpo", PreparedDataset.load(dataset_dir), index, 16, seed)
    rows = prompt_rows(examples, index, tokenizer, 5)
    assert all(tuple(row) == PROMPT_COLUMNS for row in rows)  # the columns the contract names, in its order
    prompts = render_prompts(tokenizer, [row["prompt"] for row in rows])
    items = index.item_ids
    sids = torch.tensor([sid_token_ids(tokenizer, index, item) for item in items])
    total = 0.0
    for prompt, ex in zip(prompts, examples, strict=True):
        scores = target_logprobs(model.eval(), [prompt] * len(items), sids, tokenizer.pad_token_id or 0).sum(-1)
        total += float(scores[items.index(ex.target)] - torch.logsumexp(scores, 0))
    return total / len(examples)


def test_grpo_with_the_rating_reward_alone_lowers_disliked_targets(sft_model, tmp_path):
    """Every prompt's target rated 1 star: the rating reward alone (target -1, the rest of the group 0) lowers the
    targets' log-prob among the catalog items; the same run with 5 stars does not."""
    after = {}
    for rating in (1.0, 5.0):
        data = _rated_copy(sft_model, tmp_path / f"data{rating:g}", rating)
        out = tmp_path / f"grpo{rating:g}"
        argv = _grpo_argv(sft_model, out, "--rewards", json.dumps(["rating"]), "--rollout_add_target", "true",
                          "--max_steps", "4", "--eval_at_end", "false")
        argv[argv.index("--dataset_dir") + 1] = str(data)
        manifest = run_stage("grpo", argv)
        assert manifest["rewards"]["specs"] == ["rating"]
        assert manifest["reward_log"][0]["rewards/rating/mean"] == pytest.approx(0.25 if rating == 5 else -0.25)
        after[rating] = _catalog_logprob(out, data)
    before = _catalog_logprob(sft_model / "sft", data)
    assert after[1.0] < before - 0.3, (before, after)
    assert after[5.0] > after[1.0] + 0.3, (before, after)


def test_grpo_chooses_on_the_valid_users_who_liked_their_target(sft_model, tmp_path):
    manifest = run_stage("grpo", _grpo_argv(
        sft_model, tmp_path / "liked", "--rewards", json.dumps(["exact_match", "rating"]),
        "--valid_every_steps", "1", "--valid_metric", "NDCG@5:liked", "--valid_floor", "NDCG@5>=0.5",
        "--valid_num_beams", "5", "--eval_at_end", "false"))
    curve = manifest["valid_selection"]["curve"]
    assert [p["step"] for p in curve] == [0, 1, 2] and all("NDCG@5:liked" in p and "NDCG@5" in p for p in curve)
    assert all(0.0 <= p["NDCG@5:liked"] <= 1.0 for p in curve)
    # the disliked hit rate is recorded beside it (to read, never to choose by)
    assert all(0.0 <= p["HR@5:disliked"] <= 1.0 for p in curve)


def test_rollout_puts_the_users_rated_items_before_the_target_and_keeps_the_top_beam(sft_model):
    """`rated_items`: every wanted item the search missed goes in, teacher-forced, in the slots before the target's;
    the top candidate and a target the search found are never replaced; the rest of the group is the search's."""
    from rlrec.data.schema import PreparedDataset
    from rlrec.generation.rollout import sid_token_ids, target_logprobs
    from rlrec.models.checkpoint import load_checkpoint
    from rlrec.tasks.reward_batch import prompt_rows

    model, tokenizer = load_checkpoint(sft_model / "sft", device="cpu")
    model.eval()
    index = SIDIndex.load(sft_model / "sft" / "sid")
    examples = PreparedDataset.load(sft_model / "data").train[:3]
    rows = prompt_rows(examples, index, tokenizer, 5)
    plain = SIDRollout(index, tokenizer, num_generations=6)
    _, searched, _, _ = plain.generate(model, [row["prompt"] for row in rows])
    ids = index.item_ids
    # group 0: two items the search missed; group 1: one it found (stays where it is) and one it missed;
    # group 2: the same item twice and the target (both dropped: the target is add_target's, a repeat is one)
    missed = [[ids[r] for r in range(len(ids)) if r not in set(searched[p].tolist())] for p in range(3)]
    wanted = {0: missed[0][:2], 1: [ids[int(searched[1, 2])], missed[1][0]],
              2: [missed[2][0], missed[2][0], examples[2].target]}
    users = [ex.user_id for ex in examples]
    keys = [(ex.user_id, ex.target) for ex in examples]
    rollout = SIDRollout(index, tokenizer, num_generations=6, add_target=True,
                         rated_items=lambda user, target: wanted[keys.index((user, target))])
    with pytest.raises(ConfigError, match="one user per prompt"):
        rollout.generate(model, [row["prompt"] for row in rows], [ex.target for ex in examples])
    prompt_ids, items, sequences, logprobs = rollout.generate(
        model, [row["prompt"] for row in rows], [ex.target for ex in examples], users=users)
    for p, ex in enumerate(examples):
        group = [ids[int(r)] for r in items[p]]
        assert group[0] == ids[int(searched[p, 0])]  # the top beam stays
        assert ex.target in group and all(item in group for item in wanted[p])
        assert len(set(group)) == 6  # no item twice
        kept = [ids[int(r)] for r in searched[p] if ids[int(r)] in group]
        assert len(kept) == 6 - sum(item not in {ids[int(r)] for r in searched[p]}
                                    for item in {*wanted[p], ex.target})
    assert ids.index(wanted[1][0]) == int(items[1, 2])  # found by the search: left in its slot
    assert ids.index(examples[0].target) not in set(searched[0].tolist())  # the search missed group 0's target:
    assert ids[int(items[0, -1])] == examples[0].target  # it takes the last slot,
    assert [ids[int(r)] for r in items[0, -3:-1]] == wanted[0][::-1]  # the rated items the slots before it
    assert rollout.added_rated == 2 + 1 + 1
    p, slot = 0, [ids[int(r)] for r in items[0]].index(wanted[0][0])
    sid = torch.tensor([sid_token_ids(tokenizer, index, wanted[0][0])])
    torch.testing.assert_close(logprobs[p, slot], target_logprobs(model, [prompt_ids[p]], sid,
                                                                  tokenizer.pad_token_id or 0)[0])
    torch.testing.assert_close(sequences[p, slot], sid[0])


def test_grpo_with_rated_items_scores_them_and_records_how_many(sft_model, tmp_path):
    rewards = json.dumps([{"name": "rating", "future_window": 3}])
    manifest = run_stage("grpo", _grpo_argv(sft_model, tmp_path / "rated", "--rewards", rewards,
                                            "--rollout_add_target", "true", "--rollout_add_rated", "2",
                                            "--eval_at_end", "false"))
    assert manifest["rollout_added_rated"] > 0
    # With the user's next rated items in every group, far fewer groups score all alike than with the target alone.
    alone = run_stage("grpo", _grpo_argv(sft_model, tmp_path / "alone", "--rewards", rewards,
                                         "--rollout_add_target", "true", "--eval_at_end", "false"))
    assert "rollout_added_rated" not in alone
    zero_std = [entry["frac_reward_zero_std"] for entry in manifest["reward_log"]]
    assert sum(zero_std) < sum(entry["frac_reward_zero_std"] for entry in alone["reward_log"])


@pytest.mark.parametrize("rewards, extra, message", [
    (["exact_match"], (), "add the `rating` reward"),
    ([{"name": "rating", "future_window": 1}], (), "future_window is 1; set future_window >= 2"),
    ([{"name": "rating", "future_window": 5}], ("--rollout_add_rated", "3"), "leaves no beam candidate"),
])
def test_rollout_add_rated_refuses_what_it_cannot_score(sft_model, tmp_path, rewards, extra, message):
    argv = _grpo_argv(sft_model, tmp_path / "out", "--rewards", json.dumps(rewards), "--rollout_add_target", "true",
                      "--rollout_add_rated", "2", *extra)
    with pytest.raises(ConfigError, match=message):
        run_stage("grpo", argv)
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_rewards_stage_scores_the_groups_rollout_add_rated_builds(sft_model, tmp_path):
    """`rlrec rewards --add_rated N` builds GRPO's groups with the user's next rated items in them: the `rating`
    reward is flat in fewer groups than with the target alone; on valid (no train events after the target) it is
    refused."""
    rewards = json.dumps([{"name": "rating", "future_window": 2}])

    def argv(out: str, *extra: str) -> list[str]:
        return ["--model_path", str(sft_model / "sft"), "--dataset_dir", str(sft_model / "data"), "--output_dir",
                str(tmp_path / out), "--split", "train", "--max_examples", "30", "--num_generations", "4",
                "--add_target", "true", "--device", "cpu", "--rewards", rewards, *extra]

    alone = run_stage("rewards", argv("alone"))["rewards"]["rating"]
    rated = run_stage("rewards", argv("rated", "--add_rated", "2"))["rewards"]["rating"]
    assert rated["zero_variance_groups"] < alone["zero_variance_groups"]
    groups = [json.loads(line) for line in (tmp_path / "rated" / "rollouts.jsonl").read_text().splitlines()]
    assert all(len({c["item_id"] for c in g["candidates"]}) == 4 for g in groups)
    with pytest.raises(UsageError, match="set `split: train`"):  # a config check: before anything loads
        run_stage("rewards", [*argv("valid", "--add_rated", "2"), "--split", "valid"])
    with pytest.raises(ConfigError, match="add the `rating` reward"):
        run_stage("rewards", [*argv("exact", "--add_rated", "2"), "--rewards", "exact_match"])
