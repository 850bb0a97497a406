"""Wall time of building Semantic IDs: text embedding, then each quantizer, with its collision rate.

    HF_HUB_OFFLINE=1 python benchmarks/sid_build.py [--synthetic-items 100000] [--rqvae-epochs 20]

Two catalogs:
- MovieLens-100k (the wheel copy, prepared with recipes/ml-100k/prepare.yaml): all-MiniLM-L6-v2
  embeddings computed afresh (no cache), then every quantizer and the CF-aware cascade;
- a synthetic catalog of `--synthetic-items` random unit vectors of dimension 384 (the size the issue
  sets as target: 100k items, 3 x 256 codes, well under a minute for residual k-means on a CPU).

Prints one line per measurement and a JSON summary last.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def quantize_timed(config, embeddings: np.ndarray, dataset=None, item_ids=None) -> dict[str, float]:
    from rlrec.scripts.sid import quantize
    from rlrec.sid.collisions import resolve_collisions
    from rlrec.sid.metrics import sid_quality

    start = time.perf_counter()
    codes, sizes, quantizer = quantize(config, embeddings, dataset, item_ids)
    seconds = time.perf_counter() - start
    resolution = resolve_collisions(codes, sizes, config.collision, quantizer.last_level_distances)
    quality = sid_quality(codes, sizes, resolution)
    return {"seconds": round(seconds, 2), "collision_rate": quality.get("collision_rate"),
            "codebook_sizes": sizes}


def movielens(args: argparse.Namespace, results: dict) -> None:
    from rlrec.cli import run_stage
    from rlrec.data.schema import PreparedDataset
    from rlrec.scripts.sid import embed_items
    from rlrec.sid.config import SIDConfig

    with tempfile.TemporaryDirectory() as tmp:
        run_stage("prepare", ["--config", "recipes/ml-100k/prepare.yaml", "--output_dir", f"{tmp}/data"])
        dataset = PreparedDataset.load(f"{tmp}/data")
    item_ids, texts = dataset.item_texts()
    config = SIDConfig(device="cpu", embedding_cache=False, seed=args.seed, rqvae_epochs=args.rqvae_epochs)
    start = time.perf_counter()
    embeddings = embed_items(config, texts, "cpu")
    results["ml-100k/embed"] = {"seconds": round(time.perf_counter() - start, 2), "items": len(texts)}
    print(f"ml-100k embed {len(texts)} texts: {results['ml-100k/embed']['seconds']} s", flush=True)
    variants = {
        "rkmeans": replace(config, quantizer="rkmeans"),
        "rkmeans_balanced": replace(config, quantizer="rkmeans_balanced"),
        "rqvae": replace(config, quantizer="rqvae"),
        "cascade_cooccurrence": replace(config, quantizer="rkmeans_balanced", cf_embedding="cooccurrence",
                                        cf_mode="cascade"),
    }
    for name, variant in variants.items():
        results[f"ml-100k/{name}"] = row = quantize_timed(variant, embeddings, dataset, item_ids)
        print(f"ml-100k {name}: {row['seconds']} s, collisions before resolution {row['collision_rate']}",
              flush=True)


def synthetic(args: argparse.Namespace, results: dict) -> None:
    from rlrec.sid.config import SIDConfig

    rng = np.random.default_rng(args.seed)
    x = rng.normal(size=(args.synthetic_items, 384)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    config = SIDConfig(device="cpu", seed=args.seed, rqvae_epochs=args.rqvae_epochs)
    for name in ("rkmeans", "rkmeans_balanced", "rqvae"):
        key = f"synthetic-{args.synthetic_items}x384/{name}"
        results[key] = row = quantize_timed(replace(config, quantizer=name), x)
        print(f"{key}: {row['seconds']} s, collisions before resolution {row['collision_rate']}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synthetic-items", type=int, default=100_000)
    parser.add_argument("--rqvae-epochs", type=int, default=20,
                        help="RQ-VAE epochs for the timing (the recipe default is 300)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--skip-movielens", action="store_true")
    args = parser.parse_args()
    import torch

    results: dict = {"torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count()}
    if not args.skip_movielens:
        movielens(args, results)
    synthetic(args, results)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
