"""Constrained beam search over SIDs: rlrec's batched search vs `generate(prefix_allowed_tokens_fn=...)`.

    HF_HUB_OFFLINE=1 python benchmarks/constrained_decoding.py [--users 16] [--beams 10 20] [--model PATH]

Both decode the same left-padded prompts with the same model and catalog, in the same batches.
`generate` copies every prompt `num_beams` times before its prefill and calls Python once per beam
per step; rlrec prefills each prompt once and masks all beams with per-level trie tensors. The
baseline's allowed-token function is a dict lookup from the generated prefix (the usual
MiniOneRec-style trie), so the comparison is not flattered by a slow callback.

By default the model is a randomly initialised Qwen2 with SmolLM2-135M's shape (no asset needed);
its output embeddings are re-drawn wider so item scores are well separated, as with a trained
model, and the agreement check is not decided by float noise between near-ties. The catalog is
random distinct 3 x 256 codes. Prints throughput per beam width, the agreement of the top-B item
sets, and last `ratio: N` (ours / theirs users/s at the largest beam width).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from rlrec.generation import SIDConstraint, constrained_beam_search

SMOLLM2_135M_SHAPE = dict(
    hidden_size=576,
    intermediate_size=1536,
    num_hidden_layers=30,
    num_attention_heads=9,
    num_key_value_heads=3,
    max_position_embeddings=8192,
    rope_theta=100000.0,
    rms_norm_eps=1e-5,
    tie_word_embeddings=True,
)
BASE_VOCAB = 49152


def random_codes(n_items: int, levels: int, codebook: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    flat = rng.choice(codebook**levels, size=n_items, replace=False)
    return np.stack(np.unravel_index(flat, (codebook,) * levels), axis=1).astype(np.int64)


def sid_tokens(levels: int, codebook: int) -> list[list[str]]:
    return [[f"<{chr(ord('a') + lvl)}_{c}>" for c in range(codebook)] for lvl in range(levels)]


def build_model(args: argparse.Namespace, tokens: list[list[str]]) -> tuple[torch.nn.Module, list[list[int]], int]:
    """The model, the token id of each (level, code), and the size of the prompt vocabulary."""
    if args.model:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.model)
        prompt_vocab = len(tokenizer)
        tokenizer.add_tokens([t for level in tokens for t in level])
        model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
        if model.get_input_embeddings().weight.shape[0] < len(tokenizer):
            model.resize_token_embeddings(len(tokenizer))
        ids = [tokenizer.convert_tokens_to_ids(level) for level in tokens]
        return model.eval(), ids, prompt_vocab
    from transformers import Qwen2Config, Qwen2ForCausalLM

    n_sid = sum(len(level) for level in tokens)
    config = Qwen2Config(vocab_size=BASE_VOCAB + n_sid, **SMOLLM2_135M_SHAPE)
    torch.manual_seed(args.seed)
    model = Qwen2ForCausalLM(config).eval()
    with torch.no_grad():  # spread the logits (std ~2.4) so beams are not decided by float noise
        model.get_output_embeddings().weight.normal_(0.0, 0.1)
    ids, start = [], BASE_VOCAB
    for level in tokens:
        ids.append(list(range(start, start + len(level))))
        start += len(level)
    return model, ids, BASE_VOCAB


def make_prompts(n: int, vocab: int, length: int, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(length - 10, length + 11, (n,), generator=gen)
    return [torch.randint(0, vocab, (int(k),), generator=gen) for k in lengths]


def left_pad(prompts: list[torch.Tensor], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, p in enumerate(prompts):
        ids[row, width - len(p) :] = p
        mask[row, width - len(p) :] = 1
    return ids, mask


def dict_trie(codes: np.ndarray, level_ids: list[list[int]]) -> dict[tuple[int, ...], list[int]]:
    """prefix of token ids → allowed next token ids (the per-beam Python lookup of the baseline)."""
    allowed: dict[tuple[int, ...], set[int]] = {}
    for row in codes.tolist():
        tokens = tuple(level_ids[lvl][c] for lvl, c in enumerate(row))
        for depth in range(len(tokens)):
            allowed.setdefault(tokens[:depth], set()).add(tokens[depth])
    return {prefix: sorted(next_ids) for prefix, next_ids in allowed.items()}


Result = tuple[list[list[int]], torch.Tensor]  # item indices per user, (users, beams) scores best first


def run_ours(model, batches, constraint, beams) -> Result:
    items, scores = [], []
    for ids, mask in batches:
        out = constrained_beam_search(model, ids, mask, constraint, num_beams=beams)
        items.extend(out.item_indices.tolist())
        scores.append(out.scores)
    return items, torch.cat(scores)


def run_generate(model, batches, constraint, trie, beams, eos_id) -> Result:
    items, scores = [], []
    for ids, mask in batches:
        width = ids.shape[1]

        def allowed(batch_id: int, sequence: torch.Tensor, width: int = width) -> list[int]:
            return trie.get(tuple(sequence[width:].tolist()), [eos_id])

        with torch.inference_mode():
            out = model.generate(
                input_ids=ids,
                attention_mask=mask,
                num_beams=beams,
                num_return_sequences=beams,
                do_sample=False,
                max_new_tokens=constraint.num_levels,
                prefix_allowed_tokens_fn=allowed,
                length_penalty=0.0,
                pad_token_id=0,
                eos_token_id=eos_id,
                output_scores=True,
                return_dict_in_generate=True,
            )
        for seq in out.sequences[:, width:].view(ids.shape[0], beams, -1).tolist():
            items.append([constraint.item_of_tokens(s) for s in seq])
        scores.append(out.sequences_scores.view(ids.shape[0], beams))
    return items, torch.cat(scores)


def timed(fn, *args) -> tuple[float, float, Result]:
    """Wall and process CPU seconds (the CPU figure is steadier when other jobs share the cores)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args)
    return time.perf_counter() - wall, time.process_time() - cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a local model folder (default: random SmolLM2-135M-shaped Qwen2)")
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=8, help="prompts per call, for both methods")
    parser.add_argument("--beams", type=int, nargs="+", default=[10, 20])
    parser.add_argument("--items", type=int, default=1600)
    parser.add_argument("--levels", type=int, default=3)
    parser.add_argument("--codebook", type=int, default=256)
    parser.add_argument("--prompt-length", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    tokens = sid_tokens(args.levels, args.codebook)
    codes = random_codes(args.items, args.levels, args.codebook, args.seed)
    model, level_ids, prompt_vocab = build_model(args, tokens)
    constraint = SIDConstraint(codes, level_ids)
    trie = dict_trie(codes, level_ids)
    eos_id = model.config.eos_token_id if isinstance(model.config.eos_token_id, int) else 2
    prompts = make_prompts(args.users, prompt_vocab, args.prompt_length, args.seed)
    batches = [left_pad(prompts[i : i + args.batch_size], 0) for i in range(0, len(prompts), args.batch_size)]
    print(
        f"model: {args.model or 'random Qwen2, SmolLM2-135M shape'} ({model.num_parameters() / 1e6:.0f}M params), "
        f"catalog {args.items} items {args.levels}x{args.codebook}, {args.users} users, prompts "
        f"{args.prompt_length}±10 tokens, batch {args.batch_size}, torch threads {torch.get_num_threads()}"
    )

    # First-call costs (allocator, kernel selection) out of the timings: ours on a full batch (cheap),
    # generate on two prompts (a full batch would cost as much as the measurement).
    run_ours(model, batches[:1], constraint, 2)
    run_generate(model, [left_pad(prompts[:2], 0)], constraint, trie, 2, eos_id)

    ratio = 0.0
    for beams in args.beams:
        t_ours, cpu_ours, (ours, our_scores) = timed(run_ours, model, batches, constraint, beams)
        t_theirs, cpu_theirs, (theirs, their_scores) = timed(
            run_generate, model, batches, constraint, trie, beams, eos_id
        )
        # Equal sets are the check; equal k-th scores tell a near-tie swap from a real disagreement.
        score_gap = (our_scores - their_scores.sort(dim=1, descending=True).values).abs().max().item()
        same = sum(set(a) == set(b) for a, b in zip(ours, theirs, strict=True))
        overlap = np.mean([len(set(a) & set(b)) / beams for a, b in zip(ours, theirs, strict=True)])
        valid = all(i is not None and i >= 0 for row in ours for i in row)
        ratio = t_theirs / t_ours
        n = args.users
        print(
            f"beams {beams:>3}: ours {n / t_ours:7.2f} users/s ({n * beams / t_ours:8.1f} seq/s, {t_ours:6.2f} s) | "
            f"generate+prefix_allowed_tokens_fn {n / t_theirs:6.2f} users/s ({n * beams / t_theirs:7.1f} seq/s, "
            f"{t_theirs:6.2f} s) | speedup {ratio:5.1f}x (CPU time {cpu_theirs / cpu_ours:5.1f}x) | "
            f"same top-{beams} set {same}/{n} users, "
            f"mean overlap {overlap:.3f}, max |score diff| {score_gap:.1e} | all ours valid: {valid}"
        )
    print(f"ratio: {ratio:.1f}")


if __name__ == "__main__":
    main()
