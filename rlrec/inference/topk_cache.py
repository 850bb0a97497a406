"""Per-user top-K cache (Semantic Convergence's serving strategy): decode offline, look up online.

Generating with beam search costs a forward pass per SID level per user; most serving requests are for
known users whose history changed little. So each user's top-K is computed ahead of time from their
*latest history* and served from a dict.

A user's latest history is everything the prepared dataset knows about them: the history of their
most recent example plus its target (test, else valid, else their last train example). The target of
the test split is the user's last known interaction, so leaving it out would serve recommendations one
step stale; evaluation must not use this cache for that reason (the test target is in the prompt).

Folder layout (`build_cache`):

- `topk.part.jsonl` while building: one line per user (`{"user_id", "items": [{"item_id", "title",
  "score"}], "unknown": [...]}`) appended and flushed after every batch, so a crash loses at most the
  batch in flight; a rerun reads it, skips the users already there and appends the rest.
- `topk.jsonl` once complete (the part file renamed), `manifest.json` with `status` (`building` or
  `complete`), the settings, and the progress (users and batches done), rewritten after every batch.

`refresh_cache` recomputes named users and rewrites `topk.jsonl` atomically. `TopKCache.load(folder)`
reads the finished file into a dict of tuples, so `get(user_id)` is one dict lookup.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from rlrec.data.schema import SPLITS, PreparedDataset
from rlrec.utils.errors import ConfigError, DataError
from rlrec.utils.io import atomic_file, read_json, read_json_object, read_jsonl, write_json
from rlrec.utils.output_dirs import MANIFEST

logger = logging.getLogger(__name__)

CACHE_FILE = "topk.jsonl"
PART_FILE = "topk.part.jsonl"
BUILDING, COMPLETE = "building", "complete"


class CachedItem(NamedTuple):
    item_id: str
    title: str
    score: float


def latest_histories(dataset: PreparedDataset) -> dict[str, list[str]]:
    """Each user's latest history: history + target of their most recent example (test > valid > train)."""
    best: dict[str, tuple[tuple[int, int, int], list[str]]] = {}
    for rank, split in enumerate(SPLITS):
        for ex in dataset.split(split):
            key = (rank, ex.timestamp, len(ex.history))
            if ex.user_id not in best or key >= best[ex.user_id][0]:
                best[ex.user_id] = (key, [*ex.history, ex.target])
    return {user: history for user, (_, history) in best.items()}


def read_histories_file(path: str | os.PathLike) -> dict[str, list[str]]:
    """`{user_id: history}` from a JSONL file of `{"user_id": str, "history": [item id or title, ...]}`."""
    path = Path(path)
    out: dict[str, list[str]] = {}
    for lineno, row in read_jsonl(path):
        history = row.get("history")
        if "user_id" not in row or not isinstance(history, list):
            raise DataError(f"{path}: line {lineno}: expected {{\"user_id\": str, \"history\": [item, ...]}}")
        out[str(row["user_id"])] = [str(item) for item in history]
    return out


def _row(user_id: str, result: Any) -> dict[str, Any]:
    return {"user_id": user_id,
            "items": [{"item_id": r.item_id, "title": r.title, "score": round(r.score, 6)} for r in result.items],
            "unknown": list(result.unknown)}


def _read_done(part: Path) -> dict[str, dict[str, Any]]:
    """Rows already in the part file; a torn last line (a crash mid-write) is cut off the file."""
    done: dict[str, dict[str, Any]] = {}
    if not part.is_file():
        return done
    good = 0
    with open(part, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                break
            done[str(row["user_id"])] = row
            good += len(line)
    if good != part.stat().st_size:
        logger.warning("%s: dropping a torn last line (%d bytes)", part, part.stat().st_size - good)
        with open(part, "r+b") as f:
            f.truncate(good)
    return done


def _write_manifest(folder: Path, manifest: dict[str, Any]) -> None:
    with atomic_file(folder / MANIFEST) as tmp:
        write_json(tmp, manifest)


def build_cache(recommend_batch: Callable[[Sequence[Sequence[str]], int], Sequence[Any]],
                histories: Mapping[str, Sequence[str]], output_dir: str | os.PathLike, *, k: int,
                batch_size: int = 32, settings: Mapping[str, Any] | None = None,
                overwrite: bool = False, show_progress: bool = True) -> dict[str, Any]:
    """Compute the top-`k` of every user of `histories` into `output_dir`, resuming an unfinished build.

    `recommend_batch(histories, k)` returns one result per history with `.items` (each with `item_id`,
    `title`, `score`) and `.unknown` (`Recommender.recommend_batch`). `settings` (model, k, ...) are
    recorded; a build in progress with other settings is refused rather than mixed into, and a
    complete cache is rebuilt only with `overwrite`. Returns the manifest.
    """
    if k < 1 or batch_size < 1:
        raise ConfigError(f"k={k}, batch_size={batch_size}; expected positive integers")
    if not histories:
        raise DataError("no user histories to cache")
    folder = Path(output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    part, final = folder / PART_FILE, folder / CACHE_FILE
    settings = {"k": k, **dict(settings or {})}
    manifest = read_json(folder / MANIFEST) if (folder / MANIFEST).is_file() else None
    if manifest is not None and not overwrite:
        if manifest.get("status") == COMPLETE:
            raise ConfigError(f"{folder}: the cache is already complete; refresh users with action=refresh, "
                              "or rebuild it with overwrite=true")
        if manifest.get("settings") != settings:
            raise ConfigError(f"{folder}: an unfinished cache with other settings is there "
                              f"({manifest.get('settings')} vs {settings}); use another output_dir or overwrite=true")
    if manifest is None or overwrite:
        part.unlink(missing_ok=True)
        final.unlink(missing_ok=True)
        manifest = {"stage": "cache", "status": BUILDING, "settings": settings, "num_users": len(histories),
                    "users_done": 0, "batches_done": 0, "created": time.time()}
    done = _read_done(part)
    stale = [user for user in done if user not in histories]
    if stale:
        raise DataError(f"{part}: holds users missing from the histories ({stale[:5]}); the data changed since "
                        "the build started: use overwrite=true")
    # Similar lengths decode together (padding costs); the order is fixed so a resumed build sees the same batches.
    todo = sorted((u for u in histories if u not in done), key=lambda u: (len(histories[u]), u))
    if done:
        logger.info("cache %s: resuming, %d of %d users done", folder, len(done), len(histories))
    manifest.update(num_users=len(histories), users_done=len(done))
    _write_manifest(folder, manifest)
    from tqdm.auto import tqdm

    with open(part, "a", encoding="utf-8") as f, tqdm(total=len(histories), initial=len(done), desc="cache",
                                                      unit="user", disable=not show_progress,
                                                      mininterval=1.0) as bar:
        for start in range(0, len(todo), batch_size):
            users = todo[start:start + batch_size]
            results = recommend_batch([histories[u] for u in users], k)
            f.write("".join(json.dumps(_row(u, r), ensure_ascii=False) + "\n" for u, r in zip(users, results,
                                                                                             strict=True)))
            f.flush()
            os.fsync(f.fileno())
            manifest["users_done"] += len(users)
            manifest["batches_done"] += 1
            _write_manifest(folder, manifest)
            bar.update(len(users))
    os.replace(part, final)
    manifest.update(status=COMPLETE, completed=time.time())
    _write_manifest(folder, manifest)
    return manifest


def refresh_cache(recommend_batch: Callable[[Sequence[Sequence[str]], int], Sequence[Any]],
                  histories: Mapping[str, Sequence[str]], output_dir: str | os.PathLike,
                  users: Iterable[str], *, batch_size: int = 32) -> dict[str, Any]:
    """Recompute the named users (new ones are added) with the cache's `k`; everyone else is kept as is."""
    folder = Path(output_dir)
    manifest_path = folder / MANIFEST
    if not manifest_path.is_file() or read_json(manifest_path).get("status") != COMPLETE:
        raise ConfigError(f"{folder}: no complete cache to refresh; build it first (action=build)")
    manifest = read_json(manifest_path)
    users = list(dict.fromkeys(users))
    if not users:
        raise ConfigError("refresh: no users named (users: u1,u2,...)")
    missing = [u for u in users if u not in histories]
    if missing:
        raise DataError(f"refresh: no history for users {missing[:5]} (of {len(missing)}) in the given data")
    k = int(manifest["settings"]["k"])
    fresh: dict[str, dict[str, Any]] = {}
    for start in range(0, len(users), batch_size):
        chunk = users[start:start + batch_size]
        for user, result in zip(chunk, recommend_batch([histories[u] for u in chunk], k), strict=True):
            fresh[user] = _row(user, result)
    rows = {str(row["user_id"]): row for _, row in read_jsonl(folder / CACHE_FILE)}
    added = [u for u in users if u not in rows]
    rows.update(fresh)
    with atomic_file(folder / CACHE_FILE) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows.values())
    manifest["num_users"] = len(rows)
    manifest.setdefault("refreshes", []).append({"time": time.time(), "users": len(users), "added": len(added)})
    _write_manifest(folder, manifest)
    return manifest


class TopKCache:
    """The finished cache in memory: `get(user_id)` is a dict lookup returning a tuple of `CachedItem`."""

    def __init__(self, rows: Mapping[str, tuple[CachedItem, ...]], manifest: Mapping[str, Any] | None = None) -> None:
        self._rows = dict(rows)
        self.manifest = dict(manifest or {})

    @classmethod
    def load(cls, path: str | os.PathLike) -> TopKCache:
        """Read `topk.jsonl` of a complete cache folder (or the file itself)."""
        path = Path(path)
        folder, file = (path, path / CACHE_FILE) if path.is_dir() else (path.parent, path)
        if not file.is_file():
            hint = " (the build is unfinished: rerun it to resume)" if (folder / PART_FILE).is_file() else ""
            raise DataError(f"{file}: top-K cache file not found{hint}")
        manifest = read_json_object(folder / MANIFEST, missing_ok=True)
        rows: dict[str, tuple[CachedItem, ...]] = {}
        for lineno, row in read_jsonl(file):
            try:
                rows[str(row["user_id"])] = tuple(CachedItem(str(i["item_id"]), str(i.get("title", i["item_id"])),
                                                             float(i["score"])) for i in row["items"])
            except (KeyError, TypeError, ValueError) as err:
                raise DataError(f"{file}: line {lineno}: expected user_id and items [{{item_id, score}}]: {err}") \
                    from err
        return cls(rows, manifest)

    def get(self, user_id: str, default: tuple[CachedItem, ...] | None = None) -> tuple[CachedItem, ...] | None:
        """The user's cached top-K, best first, or `default` for a user not in the cache."""
        return self._rows.get(user_id, default)

    def __contains__(self, user_id: object) -> bool:
        return user_id in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    def users(self) -> list[str]:
        return list(self._rows)
