"""TS-Rec's released keywords and descriptions per SID token, read and checked against a SID index.

The file is a JSON list of `{"token": "<a_236>", "description": "...", "keywords": [...]}` (written by TS-Rec's
teacher LLM). Coverage per level goes to the log and the manifest; unknown tokens are counted and skipped, or
refused with `strict`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rlrec.utils.errors import DataError, shown
from rlrec.utils.io import read_json

if TYPE_CHECKING:
    from rlrec.sid.index import SIDIndex

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------------------------
# From a file (TS-Rec's keywords and descriptions)


def read_keyword_file(
    path: str | os.PathLike, index: SIDIndex, strict: bool = False
) -> tuple[dict[str, list[str]], dict[str, str], dict[str, Any]]:
    """`(keywords, descriptions, report)` from a TS-Rec keyword file, checked against `index`.

    The file is a JSON list of objects `{"token": "<a_236>", "keywords": [phrases], "description": "..."}`
    (TS-Rec's `*.description_keywords.json`, one entry per SID token; other fields are ignored,
    `description` may be missing). Its keywords are used whole - `keyword_top_k` does not cut them, as
    TS-Rec pools all of them - and prefixes are not described by it (TS-Align's prefix tasks keep the
    c-TF-IDF prefix keywords).

    - A malformed entry (not an object, no string `token`, `keywords` not a list of strings, `description`
      not a string) or a token listed twice raises `DataError` naming the file and the entry's index.
    - An entry whose token is not in the index's vocabulary (other token prefixes, a code beyond the
      codebook) is skipped and counted, with a warning; `strict` refuses it instead, and also refuses a
      file that leaves some token in use (a code some item has) without an entry.
    - The report gives per level (by token prefix) how many tokens are in use and how many of them the
      file covers, the skipped entries, and entries for vocabulary tokens no item uses (kept: SA-Init
      writes their rows all the same).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: keyword file not found; expected a JSON list of "
                        '{"token": "<a_12>", "keywords": [...], "description": "..."}')
    data = read_json(path)
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of {{token, keywords, description}} entries, "
                        f"got a {type(data).__name__}")
    vocabulary = set(index.vocabulary())
    keywords: dict[str, list[str]] = {}
    descriptions: dict[str, str] = {}
    first_entry: dict[str, int] = {}
    unknown: list[str] = []
    for i, entry in enumerate(data):
        if not isinstance(entry, dict):
            raise _entry_error(path, i, "expected an object {token, keywords, description}", entry)
        token = entry.get("token")
        if not isinstance(token, str) or not token:
            raise _entry_error(path, i, "'token' should be a SID token string such as '<a_12>'", token)
        words = entry.get("keywords")
        if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
            raise _entry_error(path, i, f"'keywords' of {token} should be a list of strings", words)
        description = entry.get("description", "")
        if not isinstance(description, str):
            raise _entry_error(path, i, f"'description' of {token} should be a string", description)
        if token in first_entry:
            raise _entry_error(path, i, f"token {token} is listed again (first at entry {first_entry[token]})", token)
        first_entry[token] = i
        if token not in vocabulary:
            unknown.append(token)
            continue
        keywords[token] = [w.strip() for w in words if w.strip()]
        if description.strip():
            descriptions[token] = " ".join(description.split())
    coverage = keyword_coverage(index, keywords)
    uncovered = sum(level["in_use"] - level["covered"] for level in coverage.values())
    in_use = {index.token(level, int(code)) for level in range(index.num_levels)
              for code in np.unique(index.codes[:, level])}
    report: dict[str, Any] = {
        "source": "file", "file": str(path), "entries": len(data), "coverage": coverage,
        "unknown_skipped": len(unknown), "unknown_examples": unknown[:5],
        "unused": sum(1 for token in keywords if token not in in_use), "descriptions": len(descriptions),
    }
    if strict and (unknown or uncovered):
        raise DataError(f"{path}: does not match the SID index {index.source or ''} (keyword_file_strict): "
                        f"{len(unknown)} unknown token(s) {unknown[:5]}, {uncovered} token(s) in use without an "
                        f"entry; coverage {_coverage_text(coverage)}")
    logger.info("keyword file %s: %d entries, coverage %s, %d with descriptions", path, len(data),
                _coverage_text(coverage), len(descriptions))
    if unknown:
        logger.warning("keyword file %s: %d entries name tokens the SID index does not have (e.g. %s); skipped",
                       path, len(unknown), ", ".join(unknown[:5]))
    if uncovered:
        logger.warning("keyword file %s leaves %d SID tokens in use without keywords: SA-Init gives them the "
                       "vocabulary mean", path, uncovered)
    return keywords, descriptions, report


def index_keyword_file(index: SIDIndex, path: str | os.PathLike, strict: bool = False) -> dict[str, Any]:
    """Read a keyword file (`read_keyword_file`) into `index.keywords` and `index.descriptions`, replacing
    what the index carried; returns the report."""
    keywords, descriptions, report = read_keyword_file(path, index, strict=strict)
    index.keywords, index.descriptions = keywords, descriptions
    return report


def keyword_coverage(index: SIDIndex, described: Iterable[str]) -> dict[str, dict[str, int]]:
    """Per SID level (named by its token prefix): `in_use`, the tokens some item has, and `covered`, how
    many of them are in `described`."""
    described = set(described)
    out: dict[str, dict[str, int]] = {}
    for level, prefix in enumerate(index.token_prefixes):
        used = [index.token(level, int(code)) for code in np.unique(index.codes[:, level])]
        out[prefix] = {"in_use": len(used), "covered": sum(1 for token in used if token in described)}
    return out


def _entry_error(path: Path, i: int, what: str, got: object) -> DataError:
    return DataError(f"{path}: entry {i}: {what}, got {shown(got)}")


def _coverage_text(coverage: Mapping[str, Mapping[str, int]]) -> str:
    return ", ".join(f"{prefix} {c['covered']}/{c['in_use']}" for prefix, c in coverage.items())
