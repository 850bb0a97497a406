"""`load_ranker`: the ranker of a trained or exported model folder, asked as its `RankingSpec` says.

A SID model folder (constrained beam search) is opened here. A folder of another model family says so in its
spec's `decoding`, and that family registers how to open it (`register_folder_ranker`): SETRec does, from
`rlrec.setrec`. So the ranking layer knows no model family above it; `FAMILY_MODULES` names the module that
registers each known decoding, imported the first time such a folder is met.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rlrec.ranking.base import Ranker
from rlrec.ranking.spec import RankingSpec
from rlrec.sid.index import INDEX_FILE, SIDIndex
from rlrec.utils.errors import ConfigError

SID_DECODING = "constrained_beam_search"
FolderRanker = Callable[..., Ranker]  # (folder, *, device, dtype, batch_size) -> Ranker
_FOLDER_RANKERS: dict[str, FolderRanker] = {}
FAMILY_MODULES = {"setrec_grounding": "rlrec.setrec"}  # decoding -> the module that registers its loader


def register_folder_ranker(decoding: str, loader: FolderRanker) -> None:
    """Open model folders whose spec has this `decoding` with `loader(folder, device=, dtype=, batch_size=)`."""
    _FOLDER_RANKERS[decoding] = loader


def folder_ranker(decoding: str) -> FolderRanker:
    """The registered loader of a decoding, importing the model family that provides it when known."""
    if decoding not in _FOLDER_RANKERS and decoding in FAMILY_MODULES:
        importlib.import_module(FAMILY_MODULES[decoding])
    try:
        return _FOLDER_RANKERS[decoding]
    except KeyError:
        known = [SID_DECODING, *sorted(set(_FOLDER_RANKERS) | set(FAMILY_MODULES))]
        raise ConfigError(f"no ranker is registered for decoding {decoding!r}; expected one of "
                          f"{', '.join(known)}") from None


def load_sid_index(folder: str | os.PathLike, hint: str = "") -> SIDIndex:
    """The SID index in `folder` (an `rlrec sid` output or a model folder's `sid/`), or a ConfigError."""
    folder = Path(folder)
    if not (folder / INDEX_FILE).is_file() and not folder.is_file():
        raise ConfigError(f"{folder}: no SID index ({INDEX_FILE}) found{hint}")
    return SIDIndex.load(folder)


def load_ranker(path: str | os.PathLike, *, sid_dir: str | os.PathLike | None = None,
                index: SIDIndex | None = None, device: Any = "auto",
                dtype: str | Any = "auto", num_beams: int | None = None, batch_size: int = 32,
                max_history: int | None = None) -> Ranker:
    """A SETRec folder (`rlrec setrec`, or its export) ranks by grounding; any other folder is a SID model
    (full or LoRA) ranked by constrained beam search with `index`, else the one in `sid_dir` (default
    `<path>/sid`).
    `num_beams` and `max_history` default to the folder's spec."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"{folder}: model folder not found")
    spec = RankingSpec.load(folder)
    if spec.decoding != SID_DECODING:
        return folder_ranker(spec.decoding)(folder, device=device, dtype=dtype, batch_size=batch_size)
    from rlrec.models.checkpoint import load_checkpoint
    from rlrec.ranking.sid import SIDRanker

    index = index or load_sid_index(sid_dir or folder / "sid", "" if sid_dir else
                           "; expected an `rlrec sft`, `rlrec grpo` or `rlrec export` folder, or set sid_dir")
    model, tokenizer = load_checkpoint(folder, device=device, dtype=dtype)
    return SIDRanker(model, tokenizer, index, num_beams=num_beams or spec.num_beams, batch_size=batch_size,
                     max_history=max_history if max_history is not None else spec.max_history)
