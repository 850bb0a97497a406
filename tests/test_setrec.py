"""SETRec: sparse mask, one-pass generation, training, grounding, cold items, save/load (tiny Qwen2, CPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rlrec.data.synthetic import synthetic_dataset
from rlrec.models.tiny import tiny_model_and_tokenizer
from rlrec.ranking import ranked_ids
from rlrec.setrec import (
    SETRecModelConfig,
    SETRecRanker,
    SETRecTrainConfig,
    build_setrec,
    ground,
    load_setrec,
    save_setrec,
    set_layout,
    train_setrec,
)
from rlrec.setrec.features import warm_mask

N_SEM = 2
CONFIG = dict(num_semantic_tokens=N_SEM, ae_hidden=[32, 16], max_history=5, prompt="user history:")


@pytest.fixture(scope="module")
def dataset():
    return synthetic_dataset(num_users=40, num_items=30, seed=0)


def make_model(dataset, warm=None, seed=0, attn: str | None = None, **config):
    lm, tokenizer = tiny_model_and_tokenizer(hidden_size=32)
    if attn:
        lm.set_attn_implementation(attn)
    item_ids = list(dataset.items)
    rng = np.random.default_rng(seed)
    cf = rng.normal(size=(len(item_ids), 8)).astype(np.float32)
    texts = rng.normal(size=(len(item_ids), 24)).astype(np.float32)
    warm = warm_mask(item_ids, dataset.train) if warm is None else warm
    torch.manual_seed(seed)
    model = build_setrec(lm, tokenizer, item_ids, cf, warm, texts, SETRecModelConfig(**{**CONFIG, **config}))
    return model.eval(), tokenizer


def test_mask_blocks_exactly_the_intra_item_pairs():
    prefix, dims = 2, 3
    layout = set_layout(prefix, [2, 0], tokens_per_item=dims, num_queries=dims)
    # Row 0: 2 prefix + 2 items x 3 + 3 queries = 11 positions, row 1 left-padded to 11.
    assert layout.blocks.shape == (2, 11)
    assert layout.blocks[0].tolist() == [0, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    assert layout.blocks[1].tolist() == [-1] * 6 + [0, 1, 2, 2, 2]
    allowed = layout.allowed()[0]
    kind = ["p", "p"] + ["a"] * 3 + ["b"] * 3 + ["q"] * 3
    for i in range(11):
        for j in range(11):
            same_set = kind[i] == kind[j] and kind[i] != "p"
            if i == j:
                expected = True
            elif same_set:
                expected = False  # tokens of one item (or the queries) never see each other
            else:
                expected = j < i  # everything earlier: prefix, earlier items
            assert bool(allowed[i, j]) == expected, (i, j)
    # Padding is never attended to; positions repeat within a set.
    assert not layout.allowed()[1][6:, :6].any()
    assert layout.position_ids[0].tolist() == [0, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    mask = layout.attention_mask(torch.float32)
    assert mask.shape == (2, 1, 11, 11) and mask.dtype == torch.float32
    assert (mask[0, 0][allowed] == 0).all() and (mask[0, 0][~allowed] < -1e30).all()


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_transformers_takes_the_4d_float_mask_as_is(dataset, attn):
    """A 4-D float mask equal to the causal one reproduces the model's own causal forward with inputs_embeds."""
    model, _ = make_model(dataset, attn=attn)
    embeds = torch.randn(2, 7, model.backbone.config.hidden_size)
    layout = set_layout(7 - 1, [0, 0], tokens_per_item=1, num_queries=1)  # all singleton blocks: plain causal
    with torch.no_grad():
        default = model.backbone(inputs_embeds=embeds, use_cache=False).last_hidden_state
        custom = model.backbone(inputs_embeds=embeds, attention_mask=layout.attention_mask(torch.float32),
                                position_ids=layout.position_ids, use_cache=False).last_hidden_state
    assert torch.allclose(default, custom, atol=1e-5)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_permuting_an_item_set_changes_nothing(dataset, attn):
    """The order of tokens inside each history item does not change the generated tokens (order-agnostic)."""
    model, _ = make_model(dataset, attn=attn)
    histories = [ex.history for ex in dataset.train[5:9] if ex.history]
    index = model.history_index(histories)
    used = index[index >= 0].unique()
    with torch.no_grad():
        corpus, _ = model.corpus()
        out = model.generate_from(index, corpus)
        swapped = corpus.clone()
        swapped[:, used] = corpus[:, used][[2, 0, 1]]  # every history item's tokens in another order
        out_swapped = model.generate_from(index, swapped)
        other = model.generate_from(model.history_index([h[:-1] for h in histories]), corpus)
    assert torch.allclose(out, out_swapped, atol=1e-5)
    assert not torch.allclose(out, other, atol=1e-4)  # ...while the queries do read the history


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_the_shared_prompt_cache_changes_nothing(dataset, attn):
    """The prompt's keys/values, computed once and shared, give what the prompt in every row gives."""
    import torch.nn.functional as F

    model, _ = make_model(dataset, attn=attn)
    histories = [ex.history for ex in dataset.train[3:9]] + [[]]
    index = model.history_index(histories)
    with torch.no_grad():
        corpus, _ = model.corpus()
        cached = model.generate_from(index, corpus)
        # Reference: [pad, prompt, items, queries] in every row under the full sparse layout, no cache.
        dims, prompt = model.num_dims, model.prompt_ids
        lengths = (index >= 0).sum(dim=1).tolist()
        layout = set_layout(len(prompt), lengths, dims, dims)
        embed = model.backbone.get_input_embeddings()(prompt)
        rows = []
        for row, t in enumerate(lengths):
            items = corpus[:, index[row, :t]].transpose(0, 1).reshape(t * dims, corpus.shape[-1])
            seq = torch.cat([embed, items, model.queries])
            rows.append(F.pad(seq, (0, 0, layout.blocks.shape[1] - len(seq), 0)))
        full = model.backbone(inputs_embeds=torch.stack(rows), attention_mask=layout.attention_mask(torch.float32),
                              position_ids=layout.position_ids, use_cache=False).last_hidden_state[:, -dims:]
    assert len(prompt) > 0
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-4)


def test_one_forward_pass_generates_all_tokens(dataset):
    model, _ = make_model(dataset)
    calls = []
    handle = model.backbone.register_forward_hook(lambda module, args, kwargs, out: calls.append(kwargs),
                                                  with_kwargs=True)
    try:
        generated = model.generate([ex.history for ex in dataset.valid[:3]])
    finally:
        handle.remove()
    # One pass over the histories and queries (plus one batch-1 pass over the shared text prompt).
    assert len(calls) == 2 and calls[0]["inputs_embeds"].shape[0] == 1
    from rlrec.generation.kv_cache import cache_keyword

    assert calls[1]["inputs_embeds"].shape[0] == 3 and calls[1][cache_keyword(model.backbone)] is not None
    assert generated.shape == (3, N_SEM + 1, model.backbone.config.hidden_size)


def test_recommender_runs_the_prompt_once_for_all_batches(dataset):
    """Served batches reuse the prompt's keys/values (one batch-1 pass in all) and rank as `score` does."""
    model, _ = make_model(dataset)
    histories = [ex.history for ex in dataset.valid[:7]]
    expected = model.score(histories)  # computes the prompt itself
    calls = []
    handle = model.backbone.register_forward_hook(lambda module, args, kwargs, out: calls.append(kwargs),
                                                  with_kwargs=True)
    try:
        recommender = SETRecRanker(model, batch_size=3)
        ranked = ranked_ids(recommender.rank(histories, k=4) + recommender.rank(histories[:2], k=4))
    finally:
        handle.remove()
    batch_sizes = [c["inputs_embeds"].shape[0] for c in calls]
    assert batch_sizes == [1, 3, 3, 1, 2]  # the prompt once, then only the histories' passes
    top = expected.topk(4, dim=1).indices.tolist()
    assert ranked[:7] == [[model.item_ids[i] for i in row] for row in top]
    recommender.refresh()  # new weights: the prompt is run again
    calls.clear()
    handle = model.backbone.register_forward_hook(lambda module, args, kwargs, out: calls.append(kwargs),
                                                  with_kwargs=True)
    try:
        recommender.rank(histories[:1], k=4)
    finally:
        handle.remove()
    assert [c["inputs_embeds"].shape[0] for c in calls] == [1, 1]


def test_ranker_within_a_pool_keeps_the_full_order_within_it(dataset):
    model, _ = make_model(dataset)
    histories = [ex.history for ex in dataset.valid[:4]]
    full = SETRecRanker(model, batch_size=3)
    everything = ranked_ids(full.rank(histories, len(model.item_ids)))
    pool = model.item_ids[::4]
    within = ranked_ids(full.rank(histories, 5, pool=pool))
    assert within == [[item for item in row if item in set(pool)][:5] for row in everything]


def test_loss_decreases_on_a_toy_set(dataset, tmp_path):
    """16 examples seen twice a step-epoch: the model must memorise them (loss well below uniform)."""
    model, _ = make_model(dataset)
    config = SETRecTrainConfig(output_dir=str(tmp_path), max_steps=30, per_device_train_batch_size=16,
                               learning_rate=3e-3, head_learning_rate=3e-3, ae_pretrain_steps=20, use_cpu=True,
                               seed=0, logging_steps=1, save_strategy="no", disable_tqdm=True)
    examples = dataset.train[:16]
    history = train_setrec(model, examples, config)
    losses = [r["loss"] for r in history["losses"]]
    assert len(losses) == 30 and history["ae_pretrain"][-1] < history["ae_pretrain"][0]
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    assert np.mean(losses[-5:]) < 0.5 * np.log(len(dataset.items))  # the mean of uniform softmaxes: log(items)


def test_loss_is_the_mean_over_dimensions_and_warm_only_drops_cold_negatives(dataset):
    from rlrec.setrec import dimension_scores

    item_ids = list(dataset.items)
    warm = np.ones(len(item_ids), bool)
    warm[:5] = False  # five held-out items
    model, _ = make_model(dataset, warm=warm)
    examples = [ex for ex in dataset.train if model.warm[model.index[ex.target]]][:6]
    history = model.history_index([ex.history for ex in examples])
    targets = torch.tensor([model.index[ex.target] for ex in examples])
    with torch.no_grad():
        corpus, recon = model.corpus()
        logits = dimension_scores(model.generate_from(history, corpus), corpus, model.logit_scale)

        def expected(columns: torch.Tensor) -> torch.Tensor:
            per_dim = []
            for d in range(model.num_dims):
                keep = model.warm if d == 0 else columns  # the CF softmax is over warm items always
                sub = logits[:, d][:, keep]
                per_dim.append(torch.nn.functional.cross_entropy(sub, torch.cumsum(keep, 0)[targets] - 1))
            return torch.stack(per_dim).mean()  # (CE_cf + CE_1 + ... + CE_N) / (N + 1)

        out = model(history, targets)
        torch.testing.assert_close(out["rec"], expected(torch.ones(len(item_ids), dtype=torch.bool)))
        torch.testing.assert_close(out["loss"], out["rec"] + model.config.alpha * recon)
        warm_out = model(history, targets, warm_only=True)
        torch.testing.assert_close(warm_out["rec"], expected(model.warm))
        assert warm_out["rec"] < out["rec"]  # fewer negatives
    from rlrec.utils.errors import ConfigError

    with pytest.raises(ConfigError, match="train_catalog='cold'; expected one of all, warm"):
        SETRecTrainConfig(output_dir="unused", train_catalog="cold")


def test_grounding_ranks_the_item_with_the_generated_tokens_first():
    torch.manual_seed(0)
    dims, items, hidden = 1 + 3, 50, 64
    corpus = torch.nn.functional.normalize(torch.randn(dims, items, hidden), dim=-1)
    warm = torch.ones(items, dtype=torch.bool)
    warm[7] = False  # a cold item wins on its semantic tokens alone
    for target in (3, 7, 42):
        generated = corpus[:, target].unsqueeze(0)
        scores = ground(generated, corpus, warm, beta=0.5)
        assert int(scores.argmax()) == target
    # Cold items ignore their CF token: changing it changes nothing.
    changed = corpus.clone()
    changed[0, 7] = 100.0
    assert torch.allclose(ground(corpus[:, 7].unsqueeze(0), changed, warm, 0.5)[0, 7],
                          ground(corpus[:, 7].unsqueeze(0), corpus, warm, 0.5)[0, 7])


def test_a_cold_item_can_be_recommended(dataset, monkeypatch):
    item_ids = list(dataset.items)
    warm = warm_mask(item_ids, dataset.train)
    cold = [i for i, w in zip(item_ids, warm, strict=True) if not w]
    if not cold:  # make one: the catalog's last item, never seen in train
        warm[-1] = False
        cold = [item_ids[-1]]
    model, _ = make_model(dataset, warm=warm)
    target = model.index[cold[0]]
    assert not model.warm[target]
    # The model "generates" exactly the cold item's tokens. Unit-length tokens make "equal tokens" the best
    # inner product, as in the grounding test; the cold item has no CF token to help it.
    original = model.corpus

    def unit_corpus():
        tokens, recon = original()
        return torch.nn.functional.normalize(tokens, dim=-1), recon

    monkeypatch.setattr(model, "corpus", unit_corpus)
    monkeypatch.setattr(model, "generate_from",
                        lambda index, corpus, prompt_kv=None: corpus[:, target].expand(len(index), -1, -1))
    ranked = ranked_ids(SETRecRanker(model, batch_size=2).rank([ex.history for ex in dataset.valid[:3]], k=5))
    assert all(row[0] == cold[0] for row in ranked)


def test_save_and_load_give_the_same_scores(dataset, tmp_path):
    model, tokenizer = make_model(dataset)
    histories = [ex.history for ex in dataset.test[:4]]
    before = model.score(histories)
    save_setrec(model, tmp_path / "m", tokenizer, {"note": "test"})
    loaded = load_setrec(tmp_path / "m")
    assert loaded.item_ids == model.item_ids and loaded.warm.tolist() == model.warm.tolist()
    assert torch.allclose(loaded.score(histories), before, atol=1e-4)


def test_lora_trains_adapters_and_heads_only(dataset, tmp_path):
    from trl import ModelConfig, get_peft_config

    from rlrec.setrec import apply_lora, merge_lora

    model, _ = make_model(dataset)
    apply_lora(model, get_peft_config(ModelConfig(use_peft=True, lora_r=4, lora_target_modules=["all-linear"])))
    base = {n: p.detach().clone() for n, p in model.backbone.named_parameters() if "lora_" not in n}
    heads = {n: p.detach().clone() for n, p in model.named_parameters() if not n.startswith("backbone.")}
    config = SETRecTrainConfig(output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=8,
                               ae_pretrain_steps=0, use_cpu=True, save_strategy="no", disable_tqdm=True)
    train_setrec(model, dataset.train[:24], config)
    assert any(not torch.equal(p, heads[n]) for n, p in model.named_parameters() if n in heads)
    for name, p in model.backbone.named_parameters():
        if name in base:
            assert torch.equal(p, base[name]), name
    merge_lora(model)
    assert not any("lora_" in n for n, _ in model.backbone.named_parameters())
