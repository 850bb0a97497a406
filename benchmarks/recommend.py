"""Serving speed: `Recommender` recommendations/s at batch 1 and batch 64, and `TopKCache` lookups/s.

    HF_HUB_OFFLINE=1 python benchmarks/recommend.py [--users 64] [--beams 20] [--k 10] [--model FOLDER]

`--model` takes an exported or training output folder (`Recommender.from_pretrained`). Without it the
model is a randomly initialised Qwen2 with SmolLM2-135M's shape over a random 3 x 256 catalog (no asset
needed); prompts are tokenized by rlrec's tiny test tokenizer with the SID tokens added, so a prompt
has a few tokens per history item more or less than with SmolLM2's tokenizer. Histories are random
catalog items. The cache part builds a cache of `--cache_users` users with random lists (the lookup
cost does not depend on how they were computed) and times `get` over all of them.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time

import numpy as np
import torch

from rlrec.inference import Catalog, Recommender, TopKCache
from rlrec.inference.topk_cache import build_cache
from rlrec.sid.index import SIDIndex

SMOLLM2_135M_SHAPE = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                          num_key_value_heads=3, max_position_embeddings=8192, rope_theta=100000.0,
                          rms_norm_eps=1e-5, tie_word_embeddings=True)
BASE_VOCAB = 49152


def random_recommender(args: argparse.Namespace) -> Recommender:
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from rlrec.models.tiny import tiny_tokenizer

    rng = np.random.default_rng(args.seed)
    flat = rng.choice(256**3, size=args.items, replace=False)
    codes = np.stack(np.unravel_index(flat, (256,) * 3), axis=1).astype(np.int64)
    index = SIDIndex([str(i) for i in range(args.items)], codes, [256, 256, 256])
    tokenizer = tiny_tokenizer()
    tokenizer.add_tokens(index.vocabulary())
    torch.manual_seed(args.seed)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=max(BASE_VOCAB, len(tokenizer)), **SMOLLM2_135M_SHAPE)).eval()
    catalog = Catalog({item: f"item {item}" for item in index.item_ids})
    return Recommender.from_model(model, tokenizer, index, catalog, num_beams=args.beams, batch_size=64)


def time_recommend(rec: Recommender, histories: list[list[str]], batch: int, k: int) -> float:
    rec.batch_size = batch
    rec.recommend_batch(histories[:batch], k)  # warm-up
    start = time.perf_counter()
    for s in range(0, len(histories), batch):
        rec.recommend_batch(histories[s:s + batch], k)
    return len(histories) / (time.perf_counter() - start)


def time_cache(num_users: int, k: int, lookups: int) -> float:
    class Fake:
        def __init__(self, items):
            self.items, self.unknown = items, []

    class Item:
        def __init__(self, r):
            self.item_id, self.title, self.score = str(r), f"item {r}", -float(r)

    users = {f"user{u}": [] for u in range(num_users)}
    with tempfile.TemporaryDirectory() as tmp:
        build_cache(lambda hs, kk: [Fake([Item(r) for r in range(kk)]) for _ in hs], users, tmp, k=k,
                    batch_size=10_000)
        cache = TopKCache.load(tmp)
    keys = [f"user{random.randrange(num_users)}" for _ in range(lookups)]
    start = time.perf_counter()
    for key in keys:
        cache.get(key)
    return lookups / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="exported or training output folder (default: random SmolLM2 shape)")
    parser.add_argument("--users", type=int, default=64, help="histories timed per batch size")
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--beams", type=int, default=20)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--items", type=int, default=1600, help="catalog size of the random model")
    parser.add_argument("--history", type=int, default=10, help="items per history")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 2)))
    parser.add_argument("--cache_users", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    random.seed(args.seed)

    if args.model:
        rec = Recommender.from_pretrained(args.model, num_beams=args.beams, device="cpu")
    else:
        rec = random_recommender(args)
    items = rec.index.item_ids
    histories = [random.sample(items, args.history) for _ in range(args.users)]
    print(f"model: {args.model or 'random SmolLM2-135M shape'}, {len(items)} items, {args.beams} beams, k={args.k}, "
          f"{args.history}-item histories, {args.threads} threads")
    for batch in args.batch_sizes:
        rate = time_recommend(rec, histories, batch, args.k)
        print(f"recommend batch {batch}: {rate:.2f} recommendations/s")
    rate = time_cache(args.cache_users, args.k, args.lookups)
    print(f"cache lookup ({args.cache_users} users): {rate:,.0f} lookups/s ({1e6 / rate:.2f} us each)")


if __name__ == "__main__":
    main()
