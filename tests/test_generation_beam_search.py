"""Constrained beam search / sampling over the SID trie, checked against plain forward passes and `generate`."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from rlrec.generation import SIDConstraint, constrained_beam_search, constrained_sample
from rlrec.models.tiny import tiny_model, tiny_tokenizer
from rlrec.sid.index import SIDIndex

PROMPTS = [
    "The user watched these movies in order. Recommend the next item.",
    "Toy Story, GoldenEye",
    "user history: item title category brand keywords description answer yes no candidates Drama",
]


def random_codes(sizes: tuple[int, ...], n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    flat = rng.choice(int(np.prod(sizes)), size=n, replace=False)
    return np.stack(np.unravel_index(flat, sizes), axis=1).astype(np.int64)


class Case:
    """A tiny model whose tokenizer holds the SID tokens of a small random catalog."""

    def __init__(self, sizes: tuple[int, ...], n_items: int, seed: int = 0) -> None:
        self.codes = random_codes(sizes, n_items, seed)
        self.index = SIDIndex([f"item{i}" for i in range(n_items)], self.codes, list(sizes))
        self.tokenizer = tiny_tokenizer()
        self.tokenizer.add_tokens(self.index.vocabulary())
        self.tokenizer.padding_side = "left"
        self.model = tiny_model(len(self.tokenizer), seed=seed)
        self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.model.config.eos_token_id = self.tokenizer.eos_token_id
        # A freshly initialised model is nearly uniform: spread its logits so scores are well apart.
        with torch.no_grad():
            self.model.get_output_embeddings().weight.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(seed))
        self.constraint = SIDConstraint.from_index(self.index, self.tokenizer)

    def batch(self, prompts: list[str] = PROMPTS) -> dict[str, torch.Tensor]:
        return self.tokenizer(prompts, return_tensors="pt", padding=True)

    def prompt_ids(self, prompt: str) -> torch.Tensor:
        return self.tokenizer(prompt, return_tensors="pt").input_ids

    @torch.no_grad()
    def sequence_logprobs(self, prompt: str, sid_token_ids: torch.Tensor) -> torch.Tensor:
        """`(k, L)` per-token log-probs of SIDs after an unpadded prompt, from one plain forward pass."""
        prompt_ids = self.prompt_ids(prompt)[0]
        k, levels = sid_token_ids.shape
        inputs = torch.cat([prompt_ids.expand(k, -1), sid_token_ids], dim=1)
        logprobs = self.model(input_ids=inputs).logits.float().log_softmax(-1)
        start = prompt_ids.shape[0] - 1
        return logprobs[:, start : start + levels].gather(-1, sid_token_ids.unsqueeze(-1)).squeeze(-1)

    def all_item_tokens(self) -> torch.Tensor:
        return torch.stack(
            [
                self.constraint.level_token_ids[lvl][self.constraint.codes[:, lvl]]
                for lvl in range(self.constraint.num_levels)
            ],
            dim=1,
        )


@contextmanager
def attention(model: torch.nn.Module, implementation: str):
    """Run with another attention implementation (the "shared" cache builds a different mask for eager)."""
    before = model.config._attn_implementation
    model.set_attn_implementation(implementation)
    try:
        yield
    finally:
        model.set_attn_implementation(before)


@pytest.fixture(scope="module")
def case() -> Case:
    return Case(sizes=(5, 4, 6), n_items=40)


@pytest.mark.parametrize("strategy", ["shared", "copied"])
@pytest.mark.parametrize("sizes,n_items", [((5, 4, 6), 40), ((3, 2, 3, 4), 30)])
def test_wide_beam_equals_exhaustive_ranking(sizes, n_items, strategy):
    """With num_beams >= items nothing is pruned, so the beams are all items ranked by exact score."""
    s = Case(sizes, n_items, seed=1)
    enc = s.batch()
    out = constrained_beam_search(
        s.model, enc.input_ids, enc.attention_mask, s.constraint, num_beams=n_items + 3, cache_strategy=strategy
    )
    every = s.all_item_tokens()
    for row, prompt in enumerate(PROMPTS):
        exhaustive = s.sequence_logprobs(prompt, every).sum(-1)
        order = exhaustive.argsort(descending=True)
        assert out.item_indices[row, :n_items].tolist() == order.tolist()
        torch.testing.assert_close(out.scores[row, :n_items], exhaustive[order], atol=1e-4, rtol=0)
        # Padding slots: more beams than items.
        assert out.item_indices[row, n_items:].tolist() == [-1] * 3
        assert torch.isneginf(out.scores[row, n_items:]).all()
        assert not out.valid[row, n_items:].any()


@pytest.mark.parametrize("strategy,implementation", [("shared", "sdpa"), ("copied", "sdpa"), ("shared", "eager")])
def test_beams_are_valid_distinct_sorted_and_exact(case, strategy, implementation):
    enc = case.batch()
    with attention(case.model, implementation):
        out = constrained_beam_search(
            case.model, enc.input_ids, enc.attention_mask, case.constraint, num_beams=8, cache_strategy=strategy
        )
    assert out.item_indices.shape == (3, 8) and out.sequences.shape == (3, 8, 3)
    for row, prompt in enumerate(PROMPTS):
        items = out.item_indices[row].tolist()
        spelled = [case.constraint.item_of_tokens(seq) for seq in out.sequences[row].tolist()]
        assert spelled == items and min(items) >= 0
        assert len(set(items)) == len(items)
        assert case.index.parse(case.tokenizer.decode(out.sequences[row, 0])) == case.index.item_ids[items[0]]
        assert (out.scores[row, :-1] >= out.scores[row, 1:]).all()
        recomputed = case.sequence_logprobs(prompt, out.sequences[row])
        torch.testing.assert_close(out.token_logprobs[row], recomputed, atol=1e-4, rtol=0)
        torch.testing.assert_close(out.scores[row], recomputed.sum(-1), atol=1e-4, rtol=0)


@pytest.mark.parametrize("strategy", ["shared", "copied"])
def test_left_padded_batch_equals_one_by_one(case, strategy):
    enc = case.batch()
    assert (enc.attention_mask == 0).any(), "the prompts should need padding"
    batched = constrained_beam_search(
        case.model, enc.input_ids, enc.attention_mask, case.constraint, num_beams=6, cache_strategy=strategy
    )
    for row, prompt in enumerate(PROMPTS):
        ids = case.prompt_ids(prompt)
        single = constrained_beam_search(case.model, ids, None, case.constraint, num_beams=6, cache_strategy=strategy)
        assert single.item_indices[0].tolist() == batched.item_indices[row].tolist()
        torch.testing.assert_close(single.scores[0], batched.scores[row], atol=1e-4, rtol=0)


def test_same_beams_as_generate_with_prefix_allowed_tokens_fn(case):
    num_beams = 5  # <= distinct first codes, so generate never runs out of valid continuations
    for prompt in PROMPTS[:2]:
        ids = case.prompt_ids(prompt)
        ours = constrained_beam_search(case.model, ids, None, case.constraint, num_beams=num_beams)
        theirs = case.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            num_beams=num_beams,
            num_return_sequences=num_beams,
            do_sample=False,
            max_new_tokens=case.constraint.num_levels,
            prefix_allowed_tokens_fn=case.constraint.prefix_allowed_tokens_fn(ids.shape[1]),
            length_penalty=0.0,
            output_scores=True,
            return_dict_in_generate=True,
            pad_token_id=case.tokenizer.pad_token_id,
            eos_token_id=case.tokenizer.eos_token_id,
        )
        their_items = [case.constraint.item_of_tokens(seq) for seq in theirs.sequences[:, ids.shape[1] :].tolist()]
        assert their_items == ours.item_indices[0].tolist()
        torch.testing.assert_close(theirs.sequences_scores, ours.scores[0], atol=1e-4, rtol=0)


def test_prompt_validation(case):
    enc = case.tokenizer(PROMPTS[:2], return_tensors="pt", padding=True, padding_side="right")
    with pytest.raises(ValueError, match="left-padded"):
        constrained_beam_search(case.model, enc.input_ids, enc.attention_mask, case.constraint, num_beams=2)
    small = tiny_model(100)
    with pytest.raises(ValueError, match="resize"):
        constrained_beam_search(small, torch.tensor([[1, 2, 3]]), None, case.constraint, num_beams=2)


def test_constraint_from_index_and_validation(case):
    with pytest.raises(ValueError, match="not in the tokenizer"):
        SIDConstraint.from_index(case.index, tiny_tokenizer())
    ids = [[10, 11], [12, 13]]
    with pytest.raises(ValueError, match="duplicate"):
        SIDConstraint(np.array([[0, 1], [0, 1]]), ids)
    with pytest.raises(ValueError, match="levels"):
        SIDConstraint(np.array([[0, 1, 0]]), ids)
    with pytest.raises(ValueError, match="distinct"):
        SIDConstraint(np.array([[0, 1]]), [[10, 11], [11, 12]])
    c = SIDConstraint(np.array([[0, 1], [1, 0], [1, 1]]), ids)
    assert c.allowed_token_ids([]) == [10, 11]
    assert c.allowed_token_ids([10]) == [13] and c.allowed_token_ids([11]) == [12, 13]
    assert c.allowed_token_ids([12]) == [] and c.allowed_token_ids([10, 13]) == []
    assert c.item_of_tokens([11, 12]) == 1 and c.item_of_tokens([10, 12]) is None
    assert c.children(1, torch.tensor([1, -1])).tolist() == [[1, 2], [-1, -1]]


@pytest.mark.parametrize("strategy", ["shared", "copied"])
def test_sampling_draws_valid_items_with_exact_logprobs(case, strategy):
    enc = case.batch()
    generator = torch.Generator().manual_seed(0)
    out = constrained_sample(
        case.model,
        enc.input_ids,
        enc.attention_mask,
        case.constraint,
        num_samples=16,
        generator=generator,
        cache_strategy=strategy,
    )
    assert out.item_indices.shape == (3, 16) and (out.item_indices >= 0).all()
    for row, prompt in enumerate(PROMPTS):
        spelled = [case.constraint.item_of_tokens(seq) for seq in out.sequences[row].tolist()]
        assert spelled == out.item_indices[row].tolist()
        recomputed = case.sequence_logprobs(prompt, out.sequences[row])
        torch.testing.assert_close(out.token_logprobs[row], recomputed, atol=1e-4, rtol=0)
    assert len(set(out.item_indices.flatten().tolist())) > 3  # draws vary
    again = constrained_sample(
        case.model,
        enc.input_ids,
        enc.attention_mask,
        case.constraint,
        16,
        generator=torch.Generator().manual_seed(0),
        cache_strategy=strategy,
    )
    assert torch.equal(again.item_indices, out.item_indices)


def test_greedy_sampling_and_top_k_one_agree(case):
    enc = case.batch()
    greedy = constrained_sample(case.model, enc.input_ids, enc.attention_mask, case.constraint, 2, temperature=0)
    top1 = constrained_sample(case.model, enc.input_ids, enc.attention_mask, case.constraint, 2, top_k=1)
    assert torch.equal(greedy.item_indices, top1.item_indices)
    assert (greedy.item_indices[:, 0] == greedy.item_indices[:, 1]).all()
    beam1 = constrained_beam_search(case.model, enc.input_ids, enc.attention_mask, case.constraint, num_beams=1)
    assert torch.equal(beam1.item_indices[:, 0], greedy.item_indices[:, 0])


def test_sampling_top_k_stays_among_the_best_allowed_codes(case):
    ids = case.prompt_ids(PROMPTS[0])
    out = constrained_sample(
        case.model, ids, None, case.constraint, 32, top_k=2, generator=torch.Generator().manual_seed(1)
    )
    every_item = constrained_beam_search(case.model, ids, None, case.constraint, num_beams=40)
    first_tokens = every_item.sequences[0, :, 0]
    level0 = case.sequence_logprobs(PROMPTS[0], first_tokens.unique().unsqueeze(1))[:, 0]
    allowed = set(first_tokens.unique()[level0.topk(2).indices].tolist())
    assert set(out.sequences[0, :, 0].tolist()) <= allowed
    assert case.constraint.to("cpu") is case.constraint


def test_outputs_can_feed_a_training_forward(case):
    """Decoding runs in inference mode, but its outputs must be usable as inputs of a graph (RL rollouts)."""
    ids = case.prompt_ids(PROMPTS[1])
    for out in (
        constrained_beam_search(case.model, ids, None, case.constraint, num_beams=2),
        constrained_sample(case.model, ids, None, case.constraint, 2),
    ):
        inputs = torch.cat([ids.expand(2, -1), out.sequences[0]], dim=1)
        case.model.zero_grad(set_to_none=True)
        case.model(input_ids=inputs).logits.sum().backward()  # an inference tensor here would raise
        grads = [p.grad for p in case.model.parameters() if p.requires_grad]
        assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)
    case.model.zero_grad(set_to_none=True)


def test_cache_strategy_choice(case):
    from rlrec.generation.kv_cache import PromptCache

    assert PromptCache(case.model).strategy == "shared"
    with attention(case.model, "eager"):
        assert PromptCache(case.model).strategy == "shared"
    with pytest.raises(ValueError, match="strategy"):
        PromptCache(case.model, "tree")


TEMPLATED = [  # one template, so the rows share their first tokens (as chat prompts do)
    "The user watched these movies in order. Recommend the next item. History: Toy Story",
    "The user watched these movies in order. Recommend the next item. History: GoldenEye, Drama, Toy Story",
    "The user watched these movies in order. Recommend the next item. History: brand",
]


def test_common_prefix_length_of_left_padded_rows(case):
    from rlrec.generation.kv_cache import common_prefix_length

    enc = case.batch(TEMPLATED)
    n = common_prefix_length(enc.input_ids, enc.attention_mask)
    rows = [case.prompt_ids(p)[0].tolist() for p in TEMPLATED]
    assert n >= 8 and all(r[:n] == rows[0][:n] for r in rows) and len({r[n] for r in rows}) > 1
    assert common_prefix_length(enc.input_ids, enc.attention_mask) == n
    enc = case.batch(PROMPTS)
    assert common_prefix_length(enc.input_ids, enc.attention_mask) == 0
    same = case.batch([TEMPLATED[0]] * 2)  # identical rows keep one token each
    assert common_prefix_length(same.input_ids, same.attention_mask) == same.input_ids.shape[1] - 1


@pytest.mark.parametrize("strategy,implementation", [("shared", "sdpa"), ("copied", "sdpa"), ("shared", "eager")])
def test_shared_prefix_prefill_changes_no_beam(case, strategy, implementation, monkeypatch):
    """A batch whose prompts share a template runs that prefix once and ranks exactly as unshared rows do."""
    from rlrec.generation import kv_cache as cache_module

    enc = case.batch(TEMPLATED)
    prefills = []
    original = cache_module.PromptCache.prefill

    def spied_prefill(self, *args):
        logits = original(self, *args)
        prefills.append(self.shared_prefix_length)
        return logits

    monkeypatch.setattr(cache_module.PromptCache, "prefill", spied_prefill)
    with attention(case.model, implementation):
        batched = constrained_beam_search(
            case.model, enc.input_ids, enc.attention_mask, case.constraint, num_beams=6, cache_strategy=strategy
        )
        sampled = constrained_sample(case.model, enc.input_ids, enc.attention_mask, case.constraint, 8,
                                     generator=torch.Generator().manual_seed(0), cache_strategy=strategy)
    assert prefills[0] >= 8 and prefills[1] >= 8  # both decoders shared the template's tokens
    for row, prompt in enumerate(TEMPLATED):
        single = constrained_beam_search(case.model, case.prompt_ids(prompt), None, case.constraint, num_beams=6,
                                         cache_strategy=strategy)
        assert single.item_indices[0].tolist() == batched.item_indices[row].tolist()
        torch.testing.assert_close(single.scores[0], batched.scores[row], atol=1e-4, rtol=0)
        recomputed = case.sequence_logprobs(prompt, sampled.sequences[row])
        torch.testing.assert_close(sampled.token_logprobs[row], recomputed, atol=1e-4, rtol=0)
    assert prefills[2:] == [0, 0, 0]  # one prompt alone: nothing to share


def test_excluded_items_are_masked_inside_the_search(case):
    """Excluding items equals searching the trie of the other items (same beams, same scores), and a row
    whose history covers whole prefixes still gets num_beams real items when the catalog has them."""
    enc = case.batch()
    rng = np.random.default_rng(0)
    # Row 0: random items; row 1: every item under the first-level code of the best unconstrained item
    # (a whole subtree), plus some; row 2: all but 5 items.
    plain = constrained_beam_search(case.model, enc.input_ids, enc.attention_mask, case.constraint, num_beams=8)
    top_code = int(case.codes[int(plain.item_indices[1, 0]), 0])
    subtree = [int(i) for i in np.flatnonzero(case.codes[:, 0] == top_code)]
    exclude = [sorted(rng.choice(40, 12, replace=False).tolist()), sorted({*subtree, 3, 7}), list(range(35))]
    out = constrained_beam_search(case.model, enc.input_ids, enc.attention_mask, case.constraint, num_beams=8,
                                  exclude=exclude)
    for row, banned in enumerate(exclude):
        allowed = [i for i in range(40) if i not in set(banned)]
        sub = SIDConstraint.from_index(case.index.subset([f"item{i}" for i in allowed]), case.tokenizer)
        reference = constrained_beam_search(case.model, enc.input_ids[row:row + 1], enc.attention_mask[row:row + 1],
                                            sub, num_beams=8)
        got = out.item_indices[row].tolist()
        expected = [allowed[r] if r >= 0 else -1 for r in reference.item_indices[0].tolist()]
        assert got == expected
        torch.testing.assert_close(out.scores[row], reference.scores[0], atol=1e-4, rtol=0)  # batch vs one row
        assert not set(got) & set(banned)
        assert sum(r >= 0 for r in got) == min(8, len(allowed))  # never fewer items than the catalog allows
    assert out.item_indices[1].tolist() != plain.item_indices[1].tolist()  # the excluded subtree mattered
    with pytest.raises(ValueError, match="exclude has 1 rows for a batch of 3"):
        constrained_beam_search(case.model, enc.input_ids, enc.attention_mask, case.constraint, 4, exclude=[[1]])


@dataclass
class _OldOutput:
    """A model output from before transformers named the KV cache `cache`."""

    logits: torch.Tensor
    past_key_values: object


class _OldSignature(torch.nn.Module):
    """The tiny model as transformers < 5.2x showed it: the cache goes in and out as `past_key_values`."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner, self.config = inner, inner.config

    def get_input_embeddings(self):
        return self.inner.get_input_embeddings()

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None, use_cache=None,
                logits_to_keep=0):
        from rlrec.generation.kv_cache import cache_keyword, returned_cache

        out = self.inner(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         use_cache=use_cache, logits_to_keep=logits_to_keep,
                         **{cache_keyword(self.inner): past_key_values})
        return _OldOutput(out.logits, returned_cache(out))


@pytest.mark.parametrize("strategy", ["shared", "copied"])
def test_kv_cache_keyword_follows_the_model_signature(case, strategy):
    """Both sides of transformers' `past_key_values` -> `cache` rename decode alike, and a model that takes
    `cache` is never handed the deprecated name (it warns from 5.2x and goes in 5.40)."""
    import inspect

    from rlrec.generation.kv_cache import cache_keyword

    old = _OldSignature(case.model)
    assert cache_keyword(old) == "past_key_values"
    takes_cache = "cache" in inspect.signature(case.model.forward).parameters
    assert cache_keyword(case.model) == ("cache" if takes_cache else "past_key_values")

    class Wrapped(torch.nn.Module):  # as a PEFT model: a forward of **kwargs around the real one
        def get_base_model(self):
            return case.model

        def forward(self, **kwargs):
            return case.model(**kwargs)

    assert cache_keyword(Wrapped()) == cache_keyword(case.model)
    seen: list[set[str]] = []
    hook = case.model.register_forward_pre_hook(lambda m, args, kwargs: seen.append(set(kwargs)), with_kwargs=True)
    try:
        enc = case.batch(TEMPLATED)
        new = constrained_beam_search(case.model, enc.input_ids, enc.attention_mask, case.constraint, num_beams=6,
                                      cache_strategy=strategy)
        n_new = len(seen)
        before = constrained_beam_search(old, enc.input_ids, enc.attention_mask, case.constraint, num_beams=6,
                                         cache_strategy=strategy)
    finally:
        hook.remove()
    keywords = set().union(*seen[:n_new])
    assert ("cache" in keywords) == takes_cache and ("past_key_values" in keywords) != takes_cache
    assert new.item_indices.tolist() == before.item_indices.tolist()
    torch.testing.assert_close(new.scores, before.scores)
