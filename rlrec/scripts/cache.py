"""`rlrec cache`: precompute every user's top-K (build), or recompute some users (refresh).

    rlrec cache --action build --model_path runs/ml-100k/export --dataset_dir runs/ml-100k/data \
        --output_dir runs/ml-100k/cache --k 20
    rlrec cache --action refresh --output_dir runs/ml-100k/cache --users 17,42

`--users` on a build caches only the named users (a user with no history is an error before the model loads).

Each user's history is their latest one in the prepared dataset (history + target of their most recent
example, see `rlrec.inference.topk_cache.latest_histories`), or the line for them in `histories_file`
(`{"user_id", "history"}` JSONL: newer interactions to refresh with). A build appends every finished
batch to `topk.part.jsonl`; rerunning the same command after a crash resumes where it stopped.
Refresh reads the model, dataset and K from the cache's manifest unless given. Serve the result with
`TopKCache.load(output_dir).get(user_id)`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trl import TrlParser

from rlrec.utils.defaults import DEFAULT_RANKING_BATCH_SIZE
from rlrec.utils.errors import ConfigError
from rlrec.utils.io import read_json_object

ACTIONS = ("build", "refresh")


@dataclass
class CacheConfig:
    """Settings of `rlrec cache`."""

    action: str = field(default="build", metadata={"help": "`build` (all users, resumable) or `refresh` (`users`)."})
    output_dir: str = field(default="runs/ml-100k/cache", metadata={"help": "Cache folder."})
    model_path: str | None = field(
        default=None,
        metadata={"help": "Exported or training output folder; None on refresh: the one the cache was built with."},
    )
    dataset_dir: str | None = field(
        default=None,
        metadata={"help": "Prepared dataset for the users' histories; None: the cache's (refresh) or the model "
                  "manifest's `dataset_dir`."},
    )
    histories_file: str | None = field(
        default=None,
        metadata={"help": "JSONL of {user_id, history}; when set, these histories are used instead of the dataset's."},
    )
    users: list[str] = field(
        default_factory=list,
        metadata={"help": "Users to refresh, or to build a cache of only them (default: everyone): "
                  "`--users u1,u2` or `--users u1 u2`."},
    )
    k: int = field(default=20, metadata={"help": "Items cached per user (build; refresh keeps the cache's)."})
    num_beams: int | None = field(default=None, metadata={"help": "Beam width; None: the model folder's (≥ k)."})
    batch_size: int = field(
        default=DEFAULT_RANKING_BATCH_SIZE, metadata={"help": "Users decoded together; the unit a crash can lose."}
    )
    exclude_history: bool = field(default=False, metadata={"help": "Leave items of the history out."})
    overwrite: bool = field(default=False, metadata={"help": "Rebuild from scratch over an existing cache."})
    device: str = field(default="auto", metadata={"help": "`auto`, `cpu` or `cuda`."})
    dtype: str = field(default="auto", metadata={"help": "Model dtype: `auto` (as saved), `float32`, `bfloat16`."})

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ConfigError(f"action={self.action!r}; expected one of {', '.join(ACTIONS)}")
        if self.k < 1 or self.batch_size < 1:
            raise ConfigError(f"k={self.k}, batch_size={self.batch_size}; expected positive integers")
        self.users = [u.strip() for entry in self.users for u in str(entry).split(",") if u.strip()]
        if self.action == "refresh" and not self.users:
            raise ConfigError("action=refresh: name the users to recompute (--users u1,u2)")


def make_parser() -> TrlParser:
    return TrlParser((CacheConfig,))


def _histories(config: CacheConfig, dataset_dir: str | None) -> dict[str, list[str]]:
    from rlrec.inference.topk_cache import latest_histories, read_histories_file

    if config.histories_file:
        return read_histories_file(config.histories_file)
    if not dataset_dir:
        raise ConfigError("cache: no histories: set dataset_dir (prepared dataset) or histories_file")
    from rlrec.data.schema import PreparedDataset

    return latest_histories(PreparedDataset.load(dataset_dir))


def _named_users(histories: dict[str, list[str]], users: list[str]) -> dict[str, list[str]]:
    """The histories of the named users only, in the order named; a name with no history is an error."""
    missing = [u for u in users if u not in histories]
    if missing:
        raise ConfigError(f"cache: users {missing[:5]} (of {len(missing)}) have no history in the given data; "
                          f"expected users of the dataset or the histories_file")
    return {u: histories[u] for u in dict.fromkeys(users)}


def main(config: CacheConfig) -> dict[str, Any]:
    from rlrec.inference.recommender import Recommender
    from rlrec.inference.topk_cache import MANIFEST, build_cache, refresh_cache

    start = time.perf_counter()
    folder = Path(config.output_dir)
    previous = read_json_object(folder / MANIFEST, missing_ok=True).get("settings", {})
    model_path = config.model_path or (previous.get("model_path") if config.action == "refresh" else None)
    if not model_path:
        raise ConfigError("cache: set model_path (an exported or training output folder)")
    dataset_dir = config.dataset_dir or previous.get("dataset_dir")
    if dataset_dir is None and not config.histories_file:
        dataset_dir = read_json_object(Path(model_path) / MANIFEST, missing_ok=True).get("dataset_dir")
    histories = _histories(config, dataset_dir)  # cheap checks before the model loads
    refresh = config.action == "refresh"
    if config.users and not refresh:
        histories = _named_users(histories, config.users)
    # A refresh decodes as the build did, so refreshed users rank like everyone else.
    num_beams = config.num_beams or (previous.get("num_beams") if refresh else None)
    exclude_history = previous.get("exclude_history", config.exclude_history) if refresh else config.exclude_history
    recommender = Recommender.from_pretrained(model_path, dataset_dir=dataset_dir, device=config.device,
                                              dtype=config.dtype, num_beams=num_beams, batch_size=config.batch_size)

    def recommend_batch(batch, k):
        return recommender.recommend_batch(batch, k, exclude_history=exclude_history)

    if config.action == "build":
        settings = {"model_path": str(model_path), "dataset_dir": dataset_dir,
                    "histories_file": config.histories_file, "num_beams": recommender.num_beams,
                    "exclude_history": exclude_history, "users": "named" if config.users else "all"}
        manifest = build_cache(recommend_batch, histories, folder, k=config.k, batch_size=config.batch_size,
                               settings=settings, overwrite=config.overwrite)
        done = manifest["num_users"]
    else:
        manifest = refresh_cache(recommend_batch, histories, folder, config.users, batch_size=config.batch_size)
        done = len(config.users)
    print(f"rlrec cache {config.action}: {done} users in {time.perf_counter() - start:.1f}s; "
          f"{manifest['num_users']} users cached in {folder}", flush=True)
    return manifest


if __name__ == "__main__":  # `python rlrec/scripts/cache.py ...` runs as `rlrec cache ...`: the same checks
    from rlrec.cli import run_script

    run_script("cache")
