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
import zlib
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


@contextmanager
def atomic_file(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path` to write; on success it replaces `path` (one rename, so a reader
    sees the old file or the new one, never half of either), on error it is removed. `suffix` keeps an
    extension that a writer insists on (`np.save` appends `.npy` otherwise)."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f".tmp{suffix}", dir=final.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def open_text(path: str | os.PathLike) -> CheckedTextFile:
    """Open a text file for reading, transparently decompressing `.gz`.

    Read errors come back as a DataError naming the file and, for line-wise reads, the line: a truncated
    or corrupt download otherwise surfaces as a bare `EOFError` or `zlib.error` from deep inside a reader.
    """
    path = Path(path)
    if not path.is_file():
        if path.is_dir():
            raise DataError(f"{path}: is a folder; expected a file")
        raise DataError(f"{path}: file not found")
    try:
        if path.suffix == ".gz":
            return CheckedTextFile(gzip.open(path, "rt", encoding="utf-8"), path)
        return CheckedTextFile(open(path, encoding="utf-8"), path)
    except OSError as err:  # permissions and the like
        raise DataError(f"{path}: cannot open ({err.strerror or err})") from err


class CheckedTextFile:
    """A text file whose decompression and decoding errors raise DataError naming the file and the line.

    Lines handed out so far are complete, so a failure while reading is at the next line: the line number
    in the message is where the file stops being readable. Everything else is delegated to the file.
    """

    def __init__(self, file: IO[str], path: Path) -> None:
        self._file = file
        self._path = path
        self._lines = 0  # lines returned by iteration / readline so far

    def __enter__(self) -> CheckedTextFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> CheckedTextFile:
        return self

    def __next__(self) -> str:
        try:
            line = next(self._file)
        except (EOFError, OSError, zlib.error, UnicodeDecodeError) as err:
            raise self._error(err, self._lines + 1) from err
        self._lines += 1
        return line

    def readline(self, size: int = -1) -> str:
        try:
            line = self._file.readline(size)
        except (EOFError, OSError, zlib.error, UnicodeDecodeError) as err:
            raise self._error(err, self._lines + 1) from err
        if line.endswith("\n"):
            self._lines += 1
        return line

    def read(self, size: int = -1) -> str:
        try:
            return self._file.read(size)
        except (EOFError, OSError, zlib.error, UnicodeDecodeError) as err:
            raise self._error(err, None) from err

    def readlines(self) -> list[str]:
        return list(self)

    def close(self) -> None:
        self._file.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)

    def _error(self, err: BaseException, lineno: int | None) -> DataError:
        where = f"{self._path}: line {lineno}" if lineno is not None else str(self._path)
        if isinstance(err, EOFError):
            return DataError(f"{where}: the compressed file ends early (truncated or partly downloaded?); expected a "
                             "complete gzip file")
        if isinstance(err, gzip.BadGzipFile) and "Not a gzipped file" in str(err):
            return DataError(f"{self._path}: not a gzip file; expected gzip-compressed text for a .gz name "
                             "(rename it without .gz if it is plain text)")
        if isinstance(err, (gzip.BadGzipFile, zlib.error)):
            return DataError(f"{where}: corrupt compressed data ({err}); expected a valid gzip file "
                             "(download it again)")
        if isinstance(err, UnicodeDecodeError):
            hint = ""
            if self._path.suffix != ".gz" and _starts_with(self._path, GZIP_MAGIC):
                hint = "; it looks gzip-compressed: give it a .gz name"
            return DataError(f"{where}: not UTF-8 text (byte 0x{err.object[err.start]:02x}: {err.reason}); expected "
                             f"UTF-8{hint}")
        return DataError(f"{where}: cannot read ({err})")


GZIP_MAGIC = b"\x1f\x8b"


def _starts_with(path: Path, magic: bytes) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(magic)) == magic
    except OSError:
        return False


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
            if line.strip():
                yield lineno, json_object_line(line, path, lineno)


def json_object_line(line: str, path: str | os.PathLike, lineno: int) -> dict:
    """One line of a JSON-lines file as an object, or a DataError naming the file, the line and what is wrong."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: line {lineno}: invalid JSON ({err.msg})") from err
    if not isinstance(obj, dict):
        raise DataError(f"{path}: line {lineno}: expected a JSON object, got {type(obj).__name__}")
    return obj
