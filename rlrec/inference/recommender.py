"""`Recommender`: top-k items for a user history from a trained or exported model folder.

    rec = Recommender.from_pretrained("runs/ml-100k/export")
    rec.recommend(["50", "Star Wars (1977)"], k=10).items   # [Recommendation(item_id, title, score, sid), ...]

The prompt is the one the model was trained with (`SIDRecommender.encode`: the next-item chat prompt,
the same history cap as in training), and decoding is `constrained_beam_search` over the SID trie, so
every recommendation is a real, distinct item; `score` is the summed log-probability of its SID tokens
(higher is better; comparable within one history). A model only ranks well when asked the way it was
trained, which is why this class reuses the evaluation's prompt code instead of building its own.

History entries are item ids or titles (looked up in the `Catalog`). An entry that names no item with a
SID is never dropped silently: it is listed in the result's `unknown` (and logged), or raises a
DataError with `on_unknown="error"`.

`from_pretrained` accepts an exported folder (`rlrec export`: `catalog.jsonl`, `inference_config.json`)
or a training output folder (`rlrec sft` / `rlrec grpo`, full model or LoRA adapter), whose item titles
come from the prepared dataset named in its manifest. It also serves a SETRec folder (`rlrec setrec`):
the same API, with SETRec's one-pass scoring instead of the beam search (`rlrec.inference.backends`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from rlrec.evaluation.sid_recommender import SIDRecommender
from rlrec.inference.backends import SETRecBackend, SIDBackend
from rlrec.inference.catalog import CATALOG_FILE, Catalog
from rlrec.sid.index import INDEX_FILE, SIDIndex
from rlrec.utils.errors import ConfigError, DataError
from rlrec.utils.io import read_json_object

logger = logging.getLogger(__name__)

INFERENCE_CONFIG = "inference_config.json"
MANIFEST = "manifest.json"
ON_UNKNOWN = ("warn", "error")
DEFAULT_NUM_BEAMS = 20


@dataclass
class Recommendation:
    """One recommended item; `score` is the log-probability of its SID under the model (SETRec: the grounded
    score, and `sid` is empty, SETRec's identifiers being continuous token sets)."""

    item_id: str
    title: str
    score: float
    sid: str


@dataclass
class Recommendations:
    """The top-k items for one history, best first, with what could not be used from that history.

    Attributes:
        items: the recommendations, best first.
        history: the item ids the prompt was built from (before the trained history cap).
        unknown: history entries that name no item with a SID (neither an id nor a title of the catalog).
        warnings: other remarks (ambiguous titles, an empty history, fewer than k items).
    """

    items: list[Recommendation]
    history: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def item_ids(self) -> list[str]:
        return [item.item_id for item in self.items]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _History:
    item_ids: list[str]
    unknown: list[str]
    warnings: list[str]


class Recommender:
    """Top-k items per history from a SID model (constrained beam search) or a SETRec model (`from_setrec`).

    Args:
        model, tokenizer: a causal LM whose tokenizer holds the SID tokens of `index`.
        index: the SID index the model was trained with.
        catalog: titles of the items (for title lookup of history entries and for the results).
        num_beams: beam width of the search (at least `k`; raised to `k` when a call asks for more).
        batch_size: histories decoded together.
        max_history: keep only the most recent history items in the prompt (as in training).
        on_unknown: `warn` (report unknown entries in the result) or `error` (raise DataError).
        phrasing: the next-item phrasing the model was trained to answer (0 everywhere in rlrec).
    """

    def __init__(self, model: Any, tokenizer: Any, index: SIDIndex, catalog: Catalog | None = None, *,
                 num_beams: int = DEFAULT_NUM_BEAMS, batch_size: int = 32, max_history: int | None = None,
                 on_unknown: str = "warn", phrasing: int = 0) -> None:
        searcher = SIDRecommender(model, tokenizer, index, num_beams=num_beams, batch_size=batch_size,
                                  max_history=max_history, phrasing=phrasing)
        self._setup(SIDBackend(searcher), catalog or Catalog.from_ids(index.item_ids), num_beams=num_beams,
                    batch_size=batch_size, max_history=max_history, on_unknown=on_unknown)
        self.tokenizer = tokenizer
        self.index: SIDIndex | None = index

    @classmethod
    def from_setrec(cls, model: Any, catalog: Catalog | None = None, *, batch_size: int = 32,
                    on_unknown: str = "warn") -> Recommender:
        """Serve a SETRec model (`rlrec setrec`): one forward pass per batch, every item scored by grounding.

        `Recommendation.sid` is empty (SETRec's identifiers are continuous token sets) and `score` is the
        grounded similarity. The history cap is the model's own (`max_history` of its config).
        """
        from rlrec.setrec import SETRecRecommender

        recommender = cls.__new__(cls)
        recommender._setup(SETRecBackend(SETRecRecommender(model, batch_size=batch_size)),
                           catalog or Catalog.from_ids(model.item_ids),
                           num_beams=DEFAULT_NUM_BEAMS, batch_size=batch_size,
                           max_history=model.config.max_history, on_unknown=on_unknown)
        recommender.tokenizer = None
        recommender.index = None
        return recommender

    def _setup(self, backend: SIDBackend | SETRecBackend, catalog: Catalog, *, num_beams: int, batch_size: int,
               max_history: int | None, on_unknown: str) -> None:
        if on_unknown not in ON_UNKNOWN:
            raise ConfigError(f"on_unknown={on_unknown!r}; expected one of {', '.join(ON_UNKNOWN)}")
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size}; expected a positive integer")
        self.backend = backend
        self.model = backend.model
        self.catalog = catalog
        self.num_beams = num_beams
        self.batch_size = batch_size
        self.max_history = max_history
        self.on_unknown = on_unknown

    # -- loading --------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, dataset_dir: str | os.PathLike | None = None,
                        sid_dir: str | os.PathLike | None = None, device: str | torch.device = "auto",
                        dtype: str | torch.dtype = "auto", num_beams: int | None = None, batch_size: int = 32,
                        max_history: int | None = None, on_unknown: str = "warn") -> Recommender:
        """Load an exported folder or a training output folder (full model or LoRA adapter).

        Settings not given here come from the folder: `inference_config.json` (exported), else the
        training manifest's `prompt_max_history`. Titles come from `catalog.jsonl`, else from
        `items.jsonl` of `dataset_dir` (default: the manifest's `dataset_dir`), else items are named by id.
        """
        from rlrec.models.checkpoint import load_checkpoint

        folder = Path(path).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"{folder}: model folder not found")
        manifest = read_json_object(folder / MANIFEST, missing_ok=True)
        if "setrec" in (manifest.get("stage"), manifest.get("source_stage")):  # trained or exported SETRec
            from rlrec.setrec import load_setrec

            model = load_setrec(folder, device=device, dtype=dtype)
            catalog = load_catalog(folder, model.item_ids, dataset_dir or manifest.get("dataset_dir"))
            return cls.from_setrec(model, catalog, batch_size=batch_size, on_unknown=on_unknown)
        sid_folder = Path(sid_dir) if sid_dir else folder / "sid"
        if not (sid_folder / INDEX_FILE).is_file():
            raise ConfigError(f"{sid_folder}: no SID index ({INDEX_FILE}); expected an `rlrec export`, `rlrec sft` "
                              "or `rlrec grpo` output folder, or set sid_dir")
        index = SIDIndex.load(sid_folder)
        settings = read_json_object(folder / INFERENCE_CONFIG, missing_ok=True)
        if max_history is None:
            max_history = settings.get("max_history", manifest.get("prompt_max_history"))
        if num_beams is None:
            num_beams = int(settings.get("num_beams", DEFAULT_NUM_BEAMS))
        catalog = load_catalog(folder, index.item_ids, dataset_dir or manifest.get("dataset_dir"))
        model, tokenizer = load_checkpoint(folder, device=device, dtype=dtype)
        return cls(model, tokenizer, index, catalog, num_beams=num_beams, batch_size=batch_size,
                   max_history=max_history, on_unknown=on_unknown, phrasing=int(settings.get("phrasing", 0)))

    # -- histories ------------------------------------------------------------------------------------

    def resolve_history(self, history: Sequence[str]) -> _History:
        """Item ids of a history given by ids or titles, with the entries that name no usable item."""
        if isinstance(history, str):
            raise ConfigError(f"history must be a list of item ids or titles, got the string {history!r}")
        ids: list[str] = []
        unknown: list[str] = []
        warnings: list[str] = []
        for entry in history:
            item, note = self.catalog.resolve(str(entry))
            if item is None and self.backend.knows(str(entry)):
                item = str(entry)
            if note:
                warnings.append(note)
            if item is None or not self.backend.knows(item):
                unknown.append(str(entry))
            else:
                ids.append(item)
        if unknown:
            message = (f"history: {len(unknown)} of {len(history)} entries name no item of the catalog: "
                       f"{unknown[:5]}; expected item ids or titles of the model's items")
            if self.on_unknown == "error":
                raise DataError(message)
            logger.warning("%s; recommending from the other %d", message, len(ids))
        if not ids:
            warnings.append("no known item in the history: the recommendations ignore the user")
        return _History(ids, unknown, warnings)

    # -- recommending ---------------------------------------------------------------------------------

    def resolve_candidates(self, candidates: Sequence[str]) -> list[str]:
        """Item ids of a candidate pool given by ids or titles; entries naming no item are reported as in
        histories (`on_unknown`), and a pool with no known item is an error."""
        if isinstance(candidates, str):
            raise ConfigError(f"candidates must be a list of item ids or titles, got the string {candidates!r}")
        resolved = self.resolve_history(candidates)
        if not resolved.item_ids:
            raise DataError(f"no candidate names an item of the catalog: {list(candidates)[:5]}")
        return list(dict.fromkeys(resolved.item_ids))

    def recommend(self, history: Sequence[str], k: int = 10, *, exclude_history: bool = False,
                  candidates: Sequence[str] | None = None) -> Recommendations:
        """The top-`k` items after one history (item ids or titles, oldest first)."""
        return self.recommend_batch([history], k, exclude_history=exclude_history, candidates=candidates)[0]

    def recommend_batch(self, histories: Sequence[Sequence[str]], k: int = 10, *,
                        exclude_history: bool = False,
                        candidates: Sequence[str] | None = None) -> list[Recommendations]:
        """The top-`k` items after each history, in input order; decoded `batch_size` histories at a time.

        With `exclude_history`, items of the history are left out inside the search (SID models: masked in
        the beam search, so `k` unseen items come back whenever the catalog has them).
        With `candidates` (item ids or titles), only those items are ranked — new arrivals, one category —
        by a beam search over their SIDs alone, so the order among them is the model's, not a filter of a
        top list that may not contain them.
        """
        if k < 1:
            raise ConfigError(f"k={k}; expected a positive integer")
        backend = self.backend if candidates is None else self.backend.restricted_to(
            self.resolve_candidates(candidates))
        resolved = [self.resolve_history(h) for h in histories]
        beams = max(self.num_beams, k)
        # Decoding a batch costs its longest prompt: decode histories of similar length together.
        order = sorted(range(len(resolved)), key=lambda i: len(resolved[i].item_ids))
        results: list[Recommendations | None] = [None] * len(resolved)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.inference_mode():
                for start in range(0, len(order), self.batch_size):
                    chunk = order[start:start + self.batch_size]
                    for i, result in zip(chunk, self._search(backend, [resolved[i] for i in chunk], k, beams,
                                                             exclude_history), strict=True):
                        results[i] = result
        finally:
            self.model.train(was_training)
        return results  # type: ignore[return-value]

    def _search(self, backend: SIDBackend | SETRecBackend, histories: list[_History], k: int, beams: int,
                exclude_history: bool) -> list[Recommendations]:
        ranked = backend.rank([h.item_ids for h in histories], k, beams, exclude_history)
        results = []
        for history, found in zip(histories, ranked, strict=True):
            items = [Recommendation(item, self.catalog.title(item), score, backend.identifier(item))
                     for item, score in found]
            warnings = list(history.warnings)
            if len(items) < k:  # the search spends its beams on allowed items: the catalog or pool has no more
                warnings.append(f"only {len(items)} of k={k} items: no more items are allowed (catalog, candidate "
                                "pool, excluded history)")
            results.append(Recommendations(items, list(history.item_ids), list(history.unknown), warnings))
        return results


def load_catalog(folder: Path, item_ids: Sequence[str], dataset_dir: str | os.PathLike | None) -> Catalog:
    """The folder's `catalog.jsonl`, else the dataset's `items.jsonl`, else a catalog of bare ids."""
    if (folder / CATALOG_FILE).is_file():
        return Catalog.load(folder / CATALOG_FILE)
    if dataset_dir is not None:
        items = Path(dataset_dir) / "items.jsonl"
        if items.is_file():
            return Catalog.load(items)
        logger.warning("%s not found: items are named by id only", items)
    else:
        logger.warning("%s has no %s and no dataset_dir: items are named by id only", folder, CATALOG_FILE)
    return Catalog.from_ids(item_ids)
