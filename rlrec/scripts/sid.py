"""`rlrec sid`: embed item texts, quantise them into Semantic IDs, resolve collisions, write the index.

    rlrec sid --config recipes/ml-100k/sid.yaml [--quantizer rkmeans_balanced --collision reassign ...]

Reads a prepared dataset folder and writes `output_dir` atomically:

- `index.json`: the `SIDIndex` (item id → codes, codebook sizes, token prefixes, keywords);
- `manifest.json`: `{"stage": "sid", "rlrec_version", "config", "dataset_dir", "num_items",
  "embedding_dim", "quality": {...}, "seconds": {...}}` with the quality figures of
  `rlrec.sid.metrics`, also printed as a table.

With `sid_file` set, the SIDs are read from that file (e.g. MiniOneRec's `index/<Category>.index.json`,
see `rlrec.sid.imported`) instead of embedding and quantising; the manifest then has
`"source": "sid_file"` and `embedding_dim: null`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from trl import TrlParser

import rlrec
from rlrec.data.schema import PreparedDataset
from rlrec.sid.collisions import resolve_collisions
from rlrec.sid.config import SIDConfig
from rlrec.sid.index import SIDIndex
from rlrec.sid.metrics import format_quality, sid_quality
from rlrec.sid.quantizers import CascadeQuantizer, Quantizer, get_quantizer
from rlrec.utils.devices import resolve_device
from rlrec.utils.errors import DataError
from rlrec.utils.io import atomic_output_dir, write_json
from rlrec.utils.output_dirs import check_output_dir

logger = logging.getLogger(__name__)


def make_parser() -> TrlParser:
    return TrlParser((SIDConfig,))


def embed_items(config: SIDConfig, texts: list[str], device: str) -> np.ndarray:
    """Text embeddings of the items (L2-normalised), through the shared cached embedder."""
    from rlrec.sid.embeddings import embed_texts
    from rlrec.utils.assets import minilm_model_dir

    model = config.embedding_model or str(minilm_model_dir())
    return embed_texts(
        texts,
        model_path=model,
        batch_size=config.embedding_batch_size,
        cache_dir=config.embedding_cache_dir,
        use_cache=config.embedding_cache,
        device=device,
    )


def quantize(
    config: SIDConfig,
    text: np.ndarray,
    dataset: PreparedDataset | None = None,
    item_ids: list[str] | None = None,
) -> tuple[np.ndarray, list[int], Quantizer | CascadeQuantizer]:
    """Codes `(n, num_levels)` of the items, their codebook sizes, and the fitted quantizer.

    With `cf_embedding` set, the behavioural embedding of `item_ids` (learned from `dataset`) is
    mixed in (`cf_mode: concat`) or drives the first level (`cf_mode: cascade`).
    """
    if config.cf_embedding == "none":
        quantizer = get_quantizer(config.quantizer, config)
        return quantizer.fit_encode(text), quantizer.codebook_sizes, quantizer
    from rlrec.sid.cf import behavioural_embeddings, mix_embeddings

    if dataset is None or item_ids is None:
        raise ValueError("cf_embedding needs the dataset and the item ids")
    cf = behavioural_embeddings(
        dataset, item_ids, method=config.cf_embedding, dim=config.cf_dim, seed=config.seed
    )
    if config.cf_mode == "cascade":
        cascade = CascadeQuantizer(config)
        return cascade.fit_encode(text, cf), cascade.codebook_sizes, cascade
    quantizer = get_quantizer(config.quantizer, config)
    mixed = mix_embeddings(text, cf, config.cf_weight)
    return quantizer.fit_encode(mixed), quantizer.codebook_sizes, quantizer


def import_sid_file(config: SIDConfig) -> SIDIndex:
    """`main` with `sid_file` set: the file's SIDs for the dataset's items, collisions resolved, no embedding."""
    from rlrec.sid import imported

    start = time.perf_counter()
    dataset = PreparedDataset.load(config.dataset_dir)
    item_ids = list(dataset.items)
    if not item_ids:
        raise DataError(f"{Path(config.dataset_dir) / 'items.jsonl'}: no items to give Semantic IDs")
    sids = imported.import_sids(config.sid_file, item_ids, config.codebook_size)
    if len(sids.token_prefixes) != config.num_levels:
        logger.warning(
            "%s has %d levels; num_levels=%d is ignored", config.sid_file, len(sids.token_prefixes), config.num_levels
        )
    if sids.unused_items:
        logger.info("%s: %d of its %d items are not in the dataset and are left out",
                    config.sid_file, sids.unused_items, sids.file_items)
    clash = imported.describe_collisions(config.sid_file, sids)
    if clash and config.collision == "none":
        raise DataError(f"{clash}; collision=none expects unique SIDs. Use collision: append_level or reassign")
    if clash:
        logger.warning("%s; resolving them with collision=%s", clash, config.collision)
    seconds = {"import": time.perf_counter() - start}

    start = time.perf_counter()
    sizes = sids.codebook_sizes
    distances = imported.same_distance(sizes[-1]) if config.collision == "reassign" else None
    resolution = resolve_collisions(sids.codes, sizes, config.collision, distances)
    prefixes = list(sids.token_prefixes)
    if len(resolution.codebook_sizes) > len(prefixes):
        prefixes.append(imported.extra_prefix(prefixes))
    embeddings = imported.read_embeddings(config.sid_embeddings_file, sids) if config.sid_embeddings_file else None
    index = SIDIndex(item_ids, resolution.codes, resolution.codebook_sizes, token_prefixes=prefixes,
                     embeddings=embeddings)
    quality = sid_quality(sids.codes, sizes, resolution)
    seconds["resolve"] = time.perf_counter() - start

    return save_index(index, config, quality, seconds, f"imported from {config.sid_file}", embedding_dim=None,
                      device=None, source="sid_file", sid_file=str(config.sid_file),
                      sid_file_items=sids.file_items, sid_file_unused_items=sids.unused_items)


def main(config: SIDConfig) -> SIDIndex:
    check_output_dir(config.output_dir, overwrite=config.overwrite_output_dir, stage="sid")
    if config.sid_file:
        return import_sid_file(config)
    seconds: dict[str, float] = {}
    start = time.perf_counter()
    get_quantizer(config.quantizer, config)  # an unknown name fails before any slow work
    device = resolve_device(config.device, "sid")
    dataset = PreparedDataset.load(config.dataset_dir)
    item_ids, texts = dataset.item_texts()
    if not item_ids:
        raise DataError(f"{Path(config.dataset_dir) / 'items.jsonl'}: no items to give Semantic IDs")
    logger.info("embedding %d item texts", len(texts))
    embeddings = embed_items(config, texts, str(device))
    seconds["embed"] = time.perf_counter() - start

    start = time.perf_counter()
    codes, sizes, quantizer = quantize(config, embeddings, dataset, item_ids)
    seconds["quantize"] = time.perf_counter() - start

    start = time.perf_counter()
    resolution = resolve_collisions(codes, sizes, config.collision, quantizer.last_level_distances)
    # The text embeddings stay with the index (`item_embeddings.npy`): `semantic_cosine` compares items with them.
    index = SIDIndex(item_ids, resolution.codes, resolution.codebook_sizes, embeddings=embeddings)
    quality = sid_quality(codes, sizes, resolution)
    seconds["resolve"] = time.perf_counter() - start

    return save_index(index, config, quality, seconds, None, embedding_dim=int(embeddings.shape[1]),
                      device=str(device), source="embeddings")


if __name__ == "__main__":  # `python rlrec/scripts/sid.py ...` runs as `rlrec sid ...`: the same checks
    from rlrec.cli import run_script

    run_script("sid")


def save_index(index: SIDIndex, config: SIDConfig, quality: dict[str, Any], seconds: dict[str, float],
               origin: str | None, **fields: Any) -> SIDIndex:
    """Write the index and its manifest (stage, config, counts, `fields`, quality, timings) into `output_dir`
    atomically, and print the quality table."""
    manifest = {
        "stage": "sid",
        "rlrec_version": rlrec.__version__,
        "config": dataclasses.asdict(config),
        "dataset_dir": str(config.dataset_dir),
        "num_items": len(index),
        **fields,
        "quality": quality,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
    }
    with atomic_output_dir(config.output_dir) as tmp:
        index.save(tmp)
        write_json(tmp / "manifest.json", manifest)
    print(format_quality(quality))
    print(f"SID index of {len(index)} items{f' ({origin})' if origin else ''} written to {config.output_dir}")
    return index
