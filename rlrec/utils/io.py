"""Small file helpers shared by every stage: atomic output folders, JSON and JSON-lines files.

A stage writes its whole artifact into a temporary sibling folder and renames it into place only
when it has succeeded, so a failed run never leaves a half-written folder where a later stage
would read it.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from rlrec.utils.errors import DataError

logger = logging.getLogger(__name__)


@contextmanager
def atomic_output_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder next to `path`; on success it replaces `path`, on error it is removed.

    An existing `path` is replaced only after the new content is complete.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.tmp-", dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if final.exists():
        old = final.parent / f".{final.name}.old-{os.getpid()}"
        os.replace(final, old)
        logger.info("replacing existing %s", final)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def open_text(path: str | os.PathLike) -> IO[str]:
    """Open a text file for reading, transparently decompressing `.gz`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    with open_text(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: line {err.lineno}: invalid JSON ({err.msg})") from err


def read_json_object(path: str | os.PathLike, missing_ok: bool = False) -> dict[str, Any]:
    """A JSON file holding an object (manifests, configs); `{}` for a missing file when `missing_ok`."""
    path = Path(path)
    if missing_ok and not path.is_file():
        return {}
    data = read_json(path)
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object")
    return data


def write_jsonl(path: str | os.PathLike, rows: Any) -> int:
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False))
            f.write("\n")
            n += 1
    return n


def read_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield `(line_number, object)` for every non-blank line; a bad line raises naming file and line."""
    path = Path(path)
    with open_text(path) as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise DataError(f"{path}: line {lineno}: invalid JSON ({err.msg})") from err
            if not isinstance(obj, dict):
                raise DataError(f"{path}: line {lineno}: expected a JSON object, got {type(obj).__name__}")
            yield lineno, obj
