"""Recommendations per second: SETRec's one-pass generation vs SID constrained beam search, same base model.

    HF_HUB_OFFLINE=1 python benchmarks/setrec_vs_sid.py [--users 16] [--beams 20] [--history 10]

Both use one randomly initialised Qwen2 with SmolLM2-135M's shape (`constrained_decoding.py`) and a
1600-item catalog, and read the same users' histories of `--history` items after the same text prefix:

- SID: the prompt is the prefix plus each history item's 3 SID tokens; `constrained_beam_search` with
  `SIDConstraint` (rlrec's batched search: one prefill, 2 steps over a shared KV cache) ranks `--beams` items;
- SETRec: the prefix plus each history item's 5 continuous tokens (1 CF + 4 semantic) and 5 queries, under
  the sparse mask, in one forward pass; grounding scores all 1600 items by 5 matrix products.

So SETRec reads the longer sequence (5 tokens per item against 3), and still needs no decoding loop. Both
run the text prefix once rather than in every row: the SID search once per batch (its prefill shares the
rows' common prefix; a batch of one has nothing to share), SETRec once per weights (the prompt's keys and
values are cached by `SETRecRanker`).

What ratio to expect: on a CPU both methods are bound by the same matrix products, so users/s follow
the multiply-adds each user costs (printed as the "compute-bound ratio estimate"; about 1.5 with the
defaults). The decoding loop's cost shows on a GPU, where passes this small are bound by
latency (kernel launches, the beam bookkeeping between steps) more than by arithmetic, and the SID
search needs 3 passes one after another (prefill, 2 steps) to SETRec's 1.
`--batch-size 1` measures single-user latency.
`--with_generate` also times the usual SID decoding, `generate(prefix_allowed_tokens_fn=...)` (the
baseline SETRec's paper measures against), and prints SETRec's ratio to it.
Prints users/s of each and last `ratio: N` (SETRec / rlrec's SID beam search users/s).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
from constrained_decoding import BASE_VOCAB, SMOLLM2_135M_SHAPE, dict_trie, left_pad, random_codes, run_generate

from rlrec.generation import SIDConstraint, constrained_beam_search
from rlrec.setrec import SETRecModelConfig, SETRecRanker
from rlrec.setrec.model import SETRecModel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--beams", type=int, default=20)
    parser.add_argument("--items", type=int, default=1600)
    parser.add_argument("--history", type=int, default=10, help="history items per user")
    parser.add_argument("--prefix", type=int, default=30, help="text tokens before the history")
    parser.add_argument("--semantic-tokens", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--with_generate", action="store_true",
                        help="also time generate(prefix_allowed_tokens_fn=...) (slow: ~0.3 users/s on 2 CPU cores)")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import Qwen2Config, Qwen2ForCausalLM

    levels, codebook = 3, 256
    codes = random_codes(args.items, levels, codebook, args.seed)
    config = Qwen2Config(vocab_size=BASE_VOCAB + levels * codebook, **SMOLLM2_135M_SHAPE)
    torch.manual_seed(args.seed)
    lm = Qwen2ForCausalLM(config).eval()
    level_ids = [list(range(BASE_VOCAB + lvl * codebook, BASE_VOCAB + (lvl + 1) * codebook)) for lvl in range(levels)]
    constraint = SIDConstraint(codes, level_ids)

    rng = np.random.default_rng(args.seed)
    item_ids = [str(i) for i in range(args.items)]
    histories = [[str(i) for i in rng.choice(args.items, size=args.history, replace=False)] for _ in range(args.users)]
    prefix = torch.randint(0, BASE_VOCAB, (args.prefix,), generator=torch.Generator().manual_seed(args.seed))
    prompts = []
    for history in histories:
        sid = [level_ids[lvl][c] for item in history for lvl, c in enumerate(codes[int(item)])]
        prompts.append(torch.cat([prefix, torch.tensor(sid)]))
    batches = [left_pad(prompts[i:i + args.batch_size], 0) for i in range(0, len(prompts), args.batch_size)]

    setrec = SETRecModel(lm.model, item_ids, rng.normal(size=(args.items, 64)).astype(np.float32),
                         np.ones(args.items, bool), rng.normal(size=(args.items, 384)).astype(np.float32),
                         SETRecModelConfig(num_semantic_tokens=args.semantic_tokens, max_history=args.history),
                         prefix.tolist()).eval()
    ranker = SETRecRanker(setrec, batch_size=args.batch_size)
    print(f"model: random Qwen2, SmolLM2-135M shape ({lm.num_parameters() / 1e6:.0f}M params), catalog {args.items} "
          f"items, {args.users} users x {args.history} history items, prefix {args.prefix} tokens, batch "
          f"{args.batch_size}, torch threads {torch.get_num_threads()}")
    # Matrix-product work per user, and the passes that must run one after another. On a compute-bound
    # device (a CPU) the users/s ratio follows the first; on a latency-bound one (a GPU at these sizes) the
    # second. A position costs the transformer's weights (body); a SID row that is scored also costs the
    # vocabulary projection (log-probabilities need the whole vocabulary); SETRec's grounding costs one
    # product per identifier dimension against the catalog.
    hidden, steps = config.hidden_size, levels - 1  # the last level is read from the step before
    body = lm.num_parameters() - config.vocab_size * hidden  # MACs per position (tied embeddings)
    shared = args.prefix if args.batch_size > 1 else 0  # the SID prefill's common prefix, once per batch
    sid_prompt = len(prompts[0]) - shared + shared / args.batch_size
    sid_positions = sid_prompt + steps * args.beams
    sid_macs = sid_positions * body + (1 + steps * args.beams) * config.vocab_size * hidden
    setrec_positions = (args.history + 1) * setrec.num_dims + args.prefix / len(prompts)
    setrec_macs = setrec_positions * body + setrec.num_dims * args.items * hidden
    print(f"per user: SID {sid_prompt:.1f} prompt positions + {steps} steps x {args.beams} beams = "
          f"{sid_positions:.1f} positions, {sid_macs / 1e9:.1f} GMAC, in {1 + steps} sequential passes; SETRec "
          f"{setrec_positions:.1f} positions (its {args.prefix}-token prompt runs once for all users), "
          f"{setrec_macs / 1e9:.1f} GMAC, in 1 pass")
    print(f"compute-bound ratio estimate (GMAC): {sid_macs / setrec_macs:.1f}; "
          f"latency-bound (sequential passes): {1 + steps}")

    def run_sid() -> list[list[int]]:
        out = []
        for ids, mask in batches:
            out.extend(constrained_beam_search(lm, ids, mask, constraint, num_beams=args.beams).item_indices.tolist())
        return out

    def run_setrec() -> list[list[tuple[str, float]]]:
        ranker.refresh()  # the corpus (all items' tokens) and the prompt's keys/values count too
        return ranker.rank(histories, args.beams)

    with torch.inference_mode():
        # Warm-up: first-call costs (allocator, kernel selection) out of the timings.
        constrained_beam_search(lm, *batches[0], constraint, num_beams=2)
        ranker.rank(histories[: args.batch_size], args.beams)
        def run_generate_sid() -> list[list[int]]:
            eos = BASE_VOCAB - 1  # any non-SID token: the trie allows it only after a complete SID
            return run_generate(lm, batches, constraint, dict_trie(codes, level_ids), args.beams, eos)[0]

        runs = [("sid_beam", run_sid), ("setrec", run_setrec)]
        if args.with_generate:
            runs.append(("sid_generate", run_generate_sid))
        timings = {}
        for name, fn in runs:
            start = time.perf_counter()
            ranked = fn()
            timings[name] = time.perf_counter() - start
            assert len(ranked) == args.users and all(len(r) == args.beams for r in ranked)
    for name, seconds in timings.items():
        print(f"{name:>12}: {args.users / seconds:7.2f} users/s ({seconds:6.2f} s for {args.users} users, "
              f"top-{args.beams})")
    if "sid_generate" in timings:
        print(f"setrec vs generate(prefix_allowed_tokens_fn): {timings['sid_generate'] / timings['setrec']:.1f}x")
    print(f"ratio: {timings['sid_beam'] / timings['setrec']:.1f}")


if __name__ == "__main__":
    main()
