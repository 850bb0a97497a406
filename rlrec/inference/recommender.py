"""`Recommender`: top-k items for a user history from a trained or exported model folder.

    rec = Recommender.from_pretrained("runs/ml-100k/export")
    rec.recommend(["50", "Star Wars (1977)"], k=10).items   # [Recommendation(item_id, title, score, sid), ...]

The ranking is the evaluation's own (`rlrec.ranking`): for a SID model the next-item prompt it was
trained with (history cap from the folder's `RankingSpec`) and `constrained_beam_search`
over the SID trie, so every recommendation is a real, distinct item and `score` is the summed
log-probability of its SID tokens (higher is better; comparable within one history).

History entries are item ids or titles (looked up in the `Catalog`). An entry that names no item with a
SID is never dropped silently: it is listed in the result's `unknown` (and logged), or raises a
DataError with `on_unknown="error"`.

`from_pretrained` accepts an exported folder (`rlrec export`: `catalog.jsonl`, `inference_config.json`)
or a training output folder (`rlrec sft` / `rlrec grpo`, full model or LoRA adapter), whose item titles
come from the prepared dataset named in its manifest. It also serves a SETRec folder (`rlrec setrec`):
the same API, with SETRec's one-pass scoring instead of the beam search (`rlrec.setrec.SETRecRanker`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from rlrec.inference.catalog import CATALOG_FILE, Catalog
from rlrec.ranking import Ranker, SIDRanker, load_ranker
from rlrec.sid.index import SIDIndex
from rlrec.utils.defaults import DEFAULT_NUM_BEAMS, DEFAULT_RANKING_BATCH_SIZE
from rlrec.utils.errors import ConfigError, DataError
from rlrec.utils.io import read_json_object
from rlrec.utils.output_dirs import MANIFEST

logger = logging.getLogger(__name__)

ON_UNKNOWN = ("warn", "error")


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
    """Top-k items per history, with titles, from any `Ranker` (a SID model's beam search, SETRec's grounding).

    Args:
        ranker: the model's ranker (`rlrec.ranking`); `from_pretrained`, `from_model` and `from_setrec` build it.
        catalog: titles of the items (for title lookup of history entries and for the results).
        on_unknown: `warn` (report unknown entries in the result) or `error` (raise DataError).
    """

    def __init__(self, ranker: Ranker, catalog: Catalog | None = None, *, on_unknown: str = "warn") -> None:
        if on_unknown not in ON_UNKNOWN:
            raise ConfigError(f"on_unknown={on_unknown!r}; expected one of {', '.join(ON_UNKNOWN)}")
        self.ranker = ranker
        self.model = ranker.model
        self.catalog = catalog or Catalog.from_ids(ranker.item_ids)
        self.on_unknown = on_unknown

    @property
    def max_history(self) -> int | None:
        """The most recent history items the model reads (as trained)."""
        return getattr(self.ranker, "max_history", None)

    @property
    def num_beams(self) -> int | None:
        """The default beam width of a SID model's search (None for a SETRec model, which scores every item)."""
        return getattr(self.ranker, "num_beams", None)

    @classmethod
    def from_model(cls, model: Any, tokenizer: Any, index: SIDIndex, catalog: Catalog | None = None, *,
                   num_beams: int = DEFAULT_NUM_BEAMS, batch_size: int = DEFAULT_RANKING_BATCH_SIZE,
                   max_history: int | None = None,
                   on_unknown: str = "warn") -> Recommender:
        """Serve a SID model in memory: `index` is the one it was trained with, `max_history` the history cap of
        its training prompts, `num_beams` the default beam width (raised to k when a call asks for more)."""
        return cls(SIDRanker(model, tokenizer, index, num_beams=num_beams, batch_size=batch_size,
                             max_history=max_history), catalog, on_unknown=on_unknown)

    @classmethod
    def from_setrec(cls, model: Any, catalog: Catalog | None = None, *, batch_size: int = 32,
                    on_unknown: str = "warn") -> Recommender:
        """Serve a SETRec model (`rlrec setrec`): one forward pass per batch, every item scored by grounding.

        `Recommendation.sid` is empty (SETRec's identifiers are continuous token sets) and `score` is the
        grounded similarity. The history cap is the model's own (`max_history` of its config).
        """
        from rlrec.setrec import SETRecRanker

        return cls(SETRecRanker(model, batch_size=batch_size), catalog, on_unknown=on_unknown)

    # -- loading --------------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, *, dataset_dir: str | os.PathLike | None = None,
                        sid_dir: str | os.PathLike | None = None, device: str | torch.device = "auto",
                        dtype: str | torch.dtype = "auto", num_beams: int | None = None, batch_size: int = 32,
                        max_history: int | None = None, on_unknown: str = "warn") -> Recommender:
        """Load an exported folder, a training output folder (full model or LoRA adapter) or a SETRec folder.

        Settings not given here come from the folder's `RankingSpec` (`inference_config.json`: beam width,
        the trained history cap). Titles come from `catalog.jsonl`, else from `items.jsonl` of `dataset_dir`
        (default: the manifest's `dataset_dir`), else items are named by id.
        """
        folder = Path(path).expanduser()
        ranker = load_ranker(folder, sid_dir=sid_dir, device=device, dtype=dtype, num_beams=num_beams,
                             batch_size=batch_size, max_history=max_history)
        manifest = read_json_object(folder / MANIFEST, missing_ok=True)
        catalog = load_catalog(folder, ranker.item_ids, dataset_dir or manifest.get("dataset_dir"))
        return cls(ranker, catalog, on_unknown=on_unknown)

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
            if item is None and self.ranker.knows(str(entry)):
                item = str(entry)
            if note:
                warnings.append(note)
            if item is None or not self.ranker.knows(item):
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
        """The top-`k` items after each history, in input order (the ranker decodes them in batches).

        With `exclude_history`, items of the history are left out inside the ranking (SID models: masked in
        the beam search), so `k` unseen items come back whenever the catalog has them.
        With `candidates` (item ids or titles), only those items are ranked — new arrivals, one category —
        (SID models: a beam search over their SIDs alone), so the order among them is the model's, not a
        filter of a top list that may not contain them.
        """
        if k < 1:
            raise ConfigError(f"k={k}; expected a positive integer")
        pool = None if candidates is None else self.resolve_candidates(candidates)
        resolved = [self.resolve_history(h) for h in histories]
        ranked = self.ranker.rank([h.item_ids for h in resolved], k, exclude_history=exclude_history, pool=pool)
        results = []
        for history, found in zip(resolved, ranked, strict=True):
            items = [Recommendation(item, self.catalog.title(item), score, self.ranker.identifier(item))
                     for item, score in found]
            warnings = list(history.warnings)
            if len(items) < k:  # the ranking spends its slots on allowed items: the catalog or pool has no more
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
