"""Quality figures of a set of Semantic IDs, written into the sid folder's manifest.

They say whether the codes are worth training on before any GPU time is spent:

- collision rate (before resolution): the share of items whose full code tuple is shared with
  another item. High means the quantizer cannot tell those items apart; resolution then adds
  tokens that carry no meaning.
- per level, codebook utilisation (codes used / codebook size) and perplexity (exp of the entropy of
  code usage: equals the codebook size when usage is uniform, 1 when one code takes everything).
  Low values mean wasted tokens and a lopsided trie.
- items per leaf (distinct full tuples) and what resolution added (moved items, extra level size).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rlrec.sid.collisions import Resolution, group_codes


def level_usage(codes: np.ndarray, size: int) -> dict[str, float | int]:
    """Used codes, utilisation and perplexity of one level's codes."""
    counts = np.bincount(np.asarray(codes, dtype=np.int64), minlength=size)
    p = counts[counts > 0] / counts.sum()
    used = int((counts > 0).sum())
    return {
        "size": int(size),
        "used": used,
        "utilisation": round(used / size, 4),
        "perplexity": round(float(np.exp(-(p * np.log(p)).sum())), 2),
    }


def sid_quality(
    codes: np.ndarray, codebook_sizes: list[int], resolution: Resolution | None = None
) -> dict[str, Any]:
    """Quality figures of `codes` (before collision resolution) and, if given, of the resolution."""
    codes = np.asarray(codes, dtype=np.int64)
    n, levels = codes.shape
    _, counts = group_codes(codes)
    shared = counts[counts > 1]
    quality: dict[str, Any] = {
        "num_items": int(n),
        "num_levels": int(levels),
        "codebook_sizes": [int(s) for s in codebook_sizes],
        "collision_rate": round(float(shared.sum()) / n, 4),
        "colliding_groups": int(shared.size),
        "levels": [level_usage(codes[:, level], codebook_sizes[level]) for level in range(levels)],
        "items_per_leaf": {
            "leaves": int(counts.size),
            "min": int(counts.min()),
            "mean": round(float(counts.mean()), 4),
            "max": int(counts.max()),
        },
    }
    if resolution is not None:
        quality["resolution"] = {
            "strategy": resolution.strategy,
            "moved": int(resolution.moved),
            "extra_level_size": resolution.extra_level_size,
            "num_levels": int(resolution.codes.shape[1]),
            "codebook_sizes": [int(s) for s in resolution.codebook_sizes],
            "sid_tokens": int(sum(resolution.codebook_sizes)),
        }
    return quality


def format_quality(quality: dict[str, Any]) -> str:
    """A small plain-text table of `sid_quality`'s figures, for the console."""
    lines = [
        f"SID quality: {quality['num_items']} items, {quality['num_levels']} levels",
        f"  {'level':<6}{'size':>6}{'used':>7}{'util':>9}{'perplexity':>12}",
    ]
    for level, usage in enumerate(quality["levels"]):
        lines.append(
            f"  {chr(ord('a') + level):<6}{usage['size']:>6}{usage['used']:>7}"
            f"{usage['utilisation']:>9.1%}{usage['perplexity']:>12.1f}"
        )
    leaf = quality["items_per_leaf"]
    lines.append(
        f"  collision rate {quality['collision_rate']:.2%} ({quality['colliding_groups']} groups); "
        f"items per leaf min {leaf['min']} / mean {leaf['mean']:.3f} / max {leaf['max']}"
    )
    res = quality.get("resolution")
    if res is not None:
        extra = (
            f", extra level of {res['extra_level_size']} codes"
            if res["extra_level_size"]
            else ", no extra level"
        )
        lines.append(
            f"  resolution {res['strategy']}: {res['moved']} items moved{extra}; "
            f"{res['num_levels']} levels, {res['sid_tokens']} SID tokens"
        )
    return "\n".join(lines)
