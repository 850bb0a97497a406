"""`TaskContext`: what every SFT task reads, computed once per run.

Tasks need more than the dataset and the SID index: the keywords and descriptions of each SID token and
prefix (TS-Align),
train popularity (query answers), the catalog to draw negatives from. Computing them once here keeps
each task a small function of `(context, position, rng)`, and checks up front that the index and the
dataset belong together - an index built from another dataset would otherwise fail deep inside a task,
or silently train on the wrong SIDs.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rlrec.data.popularity import item_popularity
from rlrec.data.schema import Example, PreparedDataset
from rlrec.init.ctfidf import prefix_keywords, token_keywords
from rlrec.init.keywords import describe_keywords, keywords_by_token
from rlrec.sid.index import SIDIndex
from rlrec.utils.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Titles run to dozens of tokens each; a title history is cut shorter than a SID history.
DEFAULT_TITLE_HISTORY = 10
MAX_TITLE_CHARS = 120


@dataclass
class TaskContext:
    """The dataset, its SID index and the derived tables the tasks share.

    `token_keywords` maps a SID token (`<b_3>`) to the words describing its items; `prefix_keywords` maps a
    SID prefix of 2..L-1 tokens (`<a_1><b_3>`) to the words describing the items under it. A prefix of one
    token is the level-0 token (already in `token_keywords`) and a full SID names one item (the item tasks
    cover it), so neither is repeated there. `token_descriptions` and `prefix_descriptions` map the same keys
    to one sentence each (TS-Rec's TS-Align answers).

    `max_history` cuts SID histories (None: as prepared, which is exactly what evaluation shows the model);
    `max_title_history` cuts title histories; `num_candidates` is the list length of `pick_positive`.
    """

    dataset: PreparedDataset
    index: SIDIndex
    token_keywords: dict[str, list[str]]
    prefix_keywords: dict[str, list[str]]
    popularity: Counter[str]
    item_ids: list[str]
    max_history: int | None = None
    max_title_history: int = DEFAULT_TITLE_HISTORY
    num_candidates: int = 5
    token_descriptions: dict[str, str] = field(default_factory=dict)
    prefix_descriptions: dict[str, str] = field(default_factory=dict)
    _memo: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(
        cls,
        dataset: PreparedDataset,
        index: SIDIndex,
        keyword_top_k: int = 5,
        *,
        max_history: int | None = None,
        max_title_history: int = DEFAULT_TITLE_HISTORY,
        num_candidates: int = 5,
    ) -> TaskContext:
        """Check that `index` covers `dataset`, then compute keywords and popularity.

        Token keywords come from `index.keywords` when the index carries them (so SFT describes each token
        with the words SA-Init initialised it from), else from c-TF-IDF over the item texts with
        `keyword_top_k` words per token; prefix keywords always come from c-TF-IDF. A token's description is
        `index.descriptions`' sentence (the file's, the teacher's or the template's, see `rlrec.init.keywords`),
        else the templated sentence of its keywords; a prefix's is always the template of its keywords (no
        source describes prefixes in sentences). The index is not modified.
        """
        _check_positive("keyword_top_k", keyword_top_k)
        _check_positive("max_title_history", max_title_history)
        if max_history is not None:
            _check_positive("max_history", max_history)
        if not isinstance(num_candidates, int) or num_candidates < 2:
            raise ConfigError(f"num_candidates is {num_candidates!r}; expected an integer >= 2 (target + negatives)")
        check_coverage(dataset, index)
        texts = [dataset.items[i].text if i in dataset.items else "" for i in index.item_ids]
        if index.keywords:
            tokens = dict(index.keywords)
        else:
            tokens = keywords_by_token(token_keywords(index.codes, texts, keyword_top_k), index.token)
        prefixes: dict[str, list[str]] = {}
        for depth in range(2, index.num_levels):
            by_prefix = prefix_keywords(index.item_ids, index.codes, texts, depth, keyword_top_k)
            for prefix, words in by_prefix.items():
                prefixes["".join(index.token(level, code) for level, code in enumerate(prefix))] = words
        tokens = {t: w for t, w in tokens.items() if w}
        prefixes = {p: w for p, w in prefixes.items() if w}
        token_descriptions = {t: index.descriptions.get(t) or describe_keywords(w) for t, w in tokens.items()}
        token_descriptions.update({t: d for t, d in index.descriptions.items() if d and t not in tokens})
        return cls(
            dataset=dataset,
            index=index,
            token_keywords=tokens,
            prefix_keywords=prefixes,
            token_descriptions=token_descriptions,
            prefix_descriptions={p: describe_keywords(w) for p, w in prefixes.items()},
            popularity=item_popularity(dataset.train),
            item_ids=list(dataset.items),
            max_history=max_history,
            max_title_history=max_title_history,
            num_candidates=num_candidates,
        )

    # -- shared helpers ----------------------------------------------------------------------------------

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """`compute()` once per context: the lookup tables a task builds from the whole catalog."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def history_sids(self, example: Example) -> list[str]:
        history = example.history if self.max_history is None else example.history[-self.max_history :]
        return [self.index.sid(item) for item in history]

    def title(self, item_id: str) -> str:
        """The item's title (its text when it has none), cut to `MAX_TITLE_CHARS`."""
        item = self.dataset.items[item_id]
        title = " ".join((item.title or item.text).split())
        return title if len(title) <= MAX_TITLE_CHARS else title[: MAX_TITLE_CHARS - 3].rstrip() + "..."

    def negatives(self, rng: random.Random, exclude: Sequence[str], k: int) -> list[str]:
        """`k` distinct catalog items outside `exclude`, uniformly (fewer when the catalog runs out)."""
        excluded = set(exclude)
        available = len(self.item_ids) - sum(1 for i in excluded if i in self.dataset.items)
        k = min(k, max(available, 0))
        chosen: list[str] = []
        while len(chosen) < k:
            item = self.item_ids[rng.randrange(len(self.item_ids))]
            if item not in excluded:
                excluded.add(item)
                chosen.append(item)
        return chosen


def dataset_name(dataset: PreparedDataset) -> str:
    """How errors name a dataset: its output folder when the manifest records one."""
    config = dataset.manifest.get("config") or {}
    return str(config.get("output_dir") or config.get("source") or "(unnamed)")


def check_coverage(dataset: PreparedDataset, index: SIDIndex) -> None:
    """Every item of the dataset needs a SID; extra index items are tolerated (and logged)."""
    missing = [item for item in dataset.items if item not in index]
    if missing:
        covered = len(dataset.items) - len(missing)
        shown = ", ".join(repr(m) for m in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise DataError(
            f"SID index covers {covered} of the {len(dataset.items)} items of dataset {dataset_name(dataset)} "
            f"(missing: {shown}): was it built from this dataset?"
        )
    extra = len(index) - len(dataset.items)
    if extra:
        logger.warning(
            "SID index has %d items that dataset %s does not: they get no SFT examples", extra, dataset_name(dataset)
        )


def _check_positive(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name} is {value!r}; expected an integer >= 1")
