"""`RankingSpec`: how a model folder is asked for recommendations, saved beside the model.

Training (`rlrec sft`, `grpo`, `setrec`) and `rlrec export` write it as `inference_config.json`; GRPO
(prompting the SFT model), evaluation, `Recommender` and export read it, so a model is always asked the
way it was trained (the same history cap) without each reader digging in the manifest.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rlrec.utils.defaults import DEFAULT_NUM_BEAMS
from rlrec.utils.errors import DataError
from rlrec.utils.io import read_json_object, write_json

SPEC_FILE = "inference_config.json"
DECODINGS = ("constrained_beam_search", "setrec_grounding")


@dataclass
class RankingSpec:
    """Attributes:
        decoding: `constrained_beam_search` (a SID model) or `setrec_grounding` (a SETRec model).
        max_history: the most recent history items a prompt holds (None: the whole history).
        num_beams: default beam width of the search (SID models; at least the k asked for).
        details: descriptive extras written alongside (SID shape, SETRec's β, ...), not read back.
    """

    decoding: str = "constrained_beam_search"
    max_history: int | None = None
    num_beams: int = DEFAULT_NUM_BEAMS
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.decoding not in DECODINGS:
            raise DataError(f"decoding={self.decoding!r}; expected one of {', '.join(DECODINGS)}")
        if self.max_history is not None and (not isinstance(self.max_history, int) or self.max_history < 1):
            raise DataError(f"max_history={self.max_history!r}; expected a positive integer or null")
        if not isinstance(self.num_beams, int) or self.num_beams < 1:
            raise DataError(f"num_beams={self.num_beams!r}; expected a positive integer")

    def save(self, folder: str | os.PathLike) -> None:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "details"}
        write_json(Path(folder) / SPEC_FILE, {**values, **self.details})

    @classmethod
    def load(cls, folder: str | os.PathLike) -> RankingSpec:
        """The folder's spec; a folder written before specs existed gets one from its manifest (the
        `prompt_max_history` it trained with, SETRec's own `max_history`)."""
        folder = Path(folder)
        path = folder / SPEC_FILE
        if path.is_file():
            values = read_json_object(path)
            values.pop("phrasing", None)  # written (always 0) by earlier versions: every model is asked one way
            known = {f.name for f in dataclasses.fields(cls)} - {"details"}
            try:
                return cls(**{k: v for k, v in values.items() if k in known},
                           details={k: v for k, v in values.items() if k not in known})
            except DataError as error:
                raise DataError(f"{path}: {error}") from None
        manifest = read_json_object(folder / "manifest.json", missing_ok=True)
        if "setrec" in (manifest.get("stage"), manifest.get("source_stage")):
            return cls(decoding="setrec_grounding")
        return cls(max_history=manifest.get("prompt_max_history"))
