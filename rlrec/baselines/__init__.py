"""Classic (non-generative) recommenders trained on the prepared train split.

- `sasrec`: SASRec, the self-attentive sequential baseline (`train_sasrec`, `SASRecModel.score`), also
  the source of `cf_embedding: sasrec` item embeddings for Semantic IDs.
- `sequences`: users' training sequences rebuilt from the one-example-per-position train split.

SASRec needs torch; it is imported on first use (`from rlrec.baselines import train_sasrec` works),
so importing `rlrec.baselines.sequences` stays light.
"""

from __future__ import annotations

from typing import Any

from rlrec.baselines.sequences import train_sequences

_SASREC = ("SASRecConfig", "SASRecModel", "train_sasrec")

__all__ = [*_SASREC, "train_sequences"]


def __getattr__(name: str) -> Any:
    if name in _SASREC:
        from rlrec.baselines import sasrec

        return getattr(sasrec, name)
    raise AttributeError(f"module 'rlrec.baselines' has no attribute {name!r}")
