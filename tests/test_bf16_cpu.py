"""bf16 on the CPU: the paths a GPU run takes in bf16 run here too, so dtype mistakes show before a GPU does.

Each check compares a bf16 run with the float32 run of the same weights: bf16 keeps ~3 significant digits, so
scores agree to a few hundredths and every output is still a real item with finite values.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlrec.generation import SIDConstraint, constrained_beam_search
from rlrec.generation.rollout import SIDRollout, render_prompts
from rlrec.init import add_sid_tokens
from rlrec.models.tiny import tiny_model_and_tokenizer
from rlrec.sid.synthetic import synthetic_sid_index
from rlrec.tasks.prompts import history_prompt


@pytest.fixture(scope="module")
def policy():
    index = synthetic_sid_index([f"i{k}" for k in range(40)], (4, 4, 6))
    model, tokenizer = tiny_model_and_tokenizer()
    add_sid_tokens(tokenizer, model, index.vocabulary())
    tokenizer.padding_side = "left"
    with torch.no_grad():  # spread the logits so rankings are not decided by bf16 rounding
        model.get_output_embeddings().weight.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(0))
    return model.eval(), tokenizer, index


def _bf16(model):
    import copy

    return copy.deepcopy(model).to(torch.bfloat16)


@pytest.mark.parametrize("strategy", ["shared", "copied"])
def test_beam_search_in_bf16_matches_float32(policy, strategy):
    """The shared-prefix KV path (SDPA with a tree mask) and the copied one, with bf16 weights."""
    model, tokenizer, index = policy
    prompts = render_prompts(tokenizer, [history_prompt(["i1", "i2", "i3"], index), history_prompt(["i7"], index)])
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(p)) + p for p in prompts])
    mask = (torch.arange(width)[None] >= torch.tensor([width - len(p) for p in prompts])[:, None]).long()
    constraint = SIDConstraint.from_index(index, tokenizer)
    full = constrained_beam_search(model, ids, mask, constraint, 8, cache_strategy=strategy)
    half = constrained_beam_search(_bf16(model), ids, mask, constraint, 8, cache_strategy=strategy)
    assert half.valid.all() and torch.isfinite(half.scores).all()
    assert half.scores.dtype == torch.float32  # scores are accumulated in float32 whatever the weights
    for row in range(2):
        assert len(set(half.item_indices[row].tolist())) == 8
        assert half.item_indices[row, 0] == full.item_indices[row, 0]
        torch.testing.assert_close(half.scores[row, :3], full.scores[row, :3], atol=0.15, rtol=0.02)


def test_rollout_logprobs_in_bf16_are_the_policys(policy):
    """GRPO recomputes the completion log-probs with the bf16 policy; the rollout must report the same ones."""
    model, tokenizer, index = policy
    half = _bf16(model)
    rollout = SIDRollout(index, tokenizer, num_generations=4, batch_size=2)
    prompt_ids = render_prompts(tokenizer, [history_prompt(["i4", "i5"], index)])
    items, sequences, logprobs = rollout.decode(half, prompt_ids)
    assert (items >= 0).all() and torch.isfinite(logprobs).all()
    for g in range(4):
        ids = torch.tensor([prompt_ids[0] + sequences[0, g].tolist()])
        with torch.no_grad():
            logits = half(input_ids=ids).logits[0, len(prompt_ids[0]) - 1: -1].float()
        expected = logits.log_softmax(-1).gather(1, sequences[0, g][:, None])[:, 0]
        torch.testing.assert_close(logprobs[0, g], expected, atol=0.05, rtol=0.0)


def test_sft_step_under_bf16_autocast_on_cpu(tmp_path):
    """`bf16: true` with `use_cpu`: the compact model's SFT trains (finite, falling loss) and saves float32 weights."""
    import json

    from safetensors.torch import load_file

    from rlrec.cli import run_stage
    from rlrec.data.synthetic import synthetic_dataset

    dataset = synthetic_dataset(num_users=30, num_items=40, seed=2, history_cut=6)
    (tmp_path / "data").mkdir()
    dataset.save(tmp_path / "data")
    synthetic_sid_index(sorted(dataset.items), seed=1).save(tmp_path / "sid")
    manifest = run_stage("sft", [
        "--dataset_dir", str(tmp_path / "data"), "--sid_dir", str(tmp_path / "sid"), "--model_name_or_path",
        "scratch", "--scratch_hidden_size", "32", "--scratch_num_heads", "2", "--output_dir", str(tmp_path / "sft"),
        "--use_cpu", "true", "--bf16", "true", "--max_steps", "12", "--per_device_train_batch_size", "16",
        "--learning_rate", "0.01", "--logging_steps", "1", "--save_strategy", "no", "--report_to", "none",
        "--eval_at_end", "false",
    ])
    assert manifest["config"]["training"]["bf16"] is True
    state = json.loads((tmp_path / "sft" / "trainer_state.json").read_text()) if (
        tmp_path / "sft" / "trainer_state.json").is_file() else None
    losses = [e["loss"] for e in state["log_history"] if "loss" in e] if state else [manifest["train"]["train_loss"]]
    assert all(np.isfinite(losses)) and np.isfinite(manifest["train"]["train_loss"])
    weights = load_file(tmp_path / "sft" / "model.safetensors")
    assert all(t.dtype == torch.float32 and torch.isfinite(t).all() for t in weights.values())


def test_setrec_scores_and_trains_in_bf16():
    from rlrec.data.synthetic import synthetic_dataset
    from rlrec.setrec import SETRecModelConfig, build_setrec
    from rlrec.setrec.features import warm_mask

    dataset = synthetic_dataset(num_users=20, num_items=30, seed=0)
    lm, tokenizer = tiny_model_and_tokenizer(hidden_size=32)
    item_ids = list(dataset.items)
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    n = len(item_ids)
    model = build_setrec(lm.to(torch.bfloat16), tokenizer, item_ids, rng.normal(size=(n, 8)).astype(np.float32),
                         warm_mask(item_ids, dataset.train), rng.normal(size=(n, 24)).astype(np.float32),
                         SETRecModelConfig(num_semantic_tokens=2, ae_hidden=[32, 16], max_history=5, prompt="user:"))
    histories = [ex.history for ex in dataset.valid[:4]]
    scores = model.eval().score(histories)
    assert scores.shape == (4, n) and torch.isfinite(scores).all()
    model.train()
    batch = model.history_index([ex.history for ex in dataset.train[:8]])
    targets = torch.tensor([model.index[ex.target] for ex in dataset.train[:8]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(batch, targets)
    out["loss"].backward()
    assert torch.isfinite(out["loss"]) and model.queries.grad is not None and torch.isfinite(model.queries.grad).all()
