"""`SIDIndex`: item ids ↔ code tuples ↔ SID token strings, saved as `index.json`.

Level `l`, code `c` is the token `<{prefix}_{c}>` with prefixes a, b, c, ... per level, so an
item's SID reads `<a_12><b_3><c_200>`. Every later stage goes through this class: SFT adds
`vocabulary()` to the tokenizer and writes SIDs into prompts, decoding follows `trie`, rewards and
evaluation turn generated text back into items with `parse`, which never raises.

`index.json` holds `format_version`, `codebook_sizes`, `token_prefixes`, `items` (item id → codes,
in catalog order), `keywords` (token → words describing its items; filled by the SFT stage) and
`descriptions` (token → one sentence describing its items, for TS-Align; optional, so an index.json
written before it existed still loads, with no descriptions).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from rlrec.sid.trie import PrefixTrie
from rlrec.utils.errors import DataError, shown
from rlrec.utils.io import atomic_file, read_json

if TYPE_CHECKING:  # the dataset module imports nothing from here; typing only
    from rlrec.data.schema import PreparedDataset

INDEX_FILE = "index.json"
EMBEDDINGS_FILE = "item_embeddings.npy"  # beside index.json: the vectors the codes were quantised from
FORMAT_VERSION = 1
DEFAULT_PREFIXES = tuple("abcdefghijklmnopqrstuvwxyz")
_PREFIX_RE = re.compile(r"[a-z]+")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


class SIDIndex:
    """The Semantic IDs of a catalog. Item ids are strings; codes an `(n, levels)` int array."""

    def __init__(
        self,
        item_ids: list[str],
        codes: np.ndarray,
        codebook_sizes: list[int],
        *,
        token_prefixes: list[str] | None = None,
        keywords: dict[str, list[str]] | None = None,
        descriptions: dict[str, str] | None = None,
        embeddings: np.ndarray | None = None,
    ) -> None:
        codes = np.asarray(codes)
        item_ids = [str(i) for i in item_ids]
        levels = len(codebook_sizes)
        if codes.ndim != 2 or codes.shape != (len(item_ids), levels):
            raise DataError(
                f"SID index: codes of shape {codes.shape}, expected ({len(item_ids)} items, {levels} levels)"
            )
        if not np.issubdtype(codes.dtype, np.integer):
            raise DataError(f"SID index: codes must be integers, got {codes.dtype}")
        if levels < 1 or any(int(s) < 1 for s in codebook_sizes):
            raise DataError(
                f"SID index: codebook_sizes {list(codebook_sizes)} must be positive, one per level"
            )
        prefixes = list(DEFAULT_PREFIXES[:levels] if token_prefixes is None else token_prefixes)
        if len(prefixes) != levels:
            raise DataError(f"SID index: {levels} levels need {levels} token prefixes, got {len(prefixes)}")
        if len(set(prefixes)) != levels or not all(_PREFIX_RE.fullmatch(p) for p in prefixes):
            raise DataError(f"SID index: token prefixes {prefixes} must be distinct lowercase words")
        sizes = np.asarray(codebook_sizes, dtype=np.int64)
        bad = np.flatnonzero(((codes < 0) | (codes >= sizes)).any(axis=1))
        if bad.size:
            row = int(bad[0])
            raise DataError(
                f"SID index: item {item_ids[row]!r} has codes {codes[row].tolist()} outside the "
                f"codebook sizes {sizes.tolist()}"
            )
        self._item_ids = item_ids
        self._codes = codes.astype(np.int64)
        self._codes.setflags(write=False)
        self._sizes = [int(s) for s in codebook_sizes]
        self._prefixes = prefixes
        self._row = {item: row for row, item in enumerate(item_ids)}
        if len(self._row) != len(item_ids):
            seen: set[str] = set()
            dup = next(i for i in item_ids if i in seen or seen.add(i))
            raise DataError(f"SID index: duplicate item id {dup!r}")
        self._by_codes = {tuple(row): i for i, row in enumerate(self._codes.tolist())}
        if len(self._by_codes) != len(item_ids):
            first: dict[tuple[int, ...], str] = {}
            for item, row in zip(item_ids, self._codes.tolist(), strict=True):
                if tuple(row) in first:
                    raise DataError(
                        f"SID index: items {first[tuple(row)]!r} and {item!r} share the codes {row} "
                        "(resolve collisions first)"
                    )
                first[tuple(row)] = item
        self._vocab = [
            [f"<{p}_{c}>" for c in range(size)] for p, size in zip(prefixes, self._sizes, strict=True)
        ]
        self._pattern = re.compile(r"\s*".join(rf"<{p}_(0|[1-9][0-9]{{0,9}})>" for p in prefixes))
        self.keywords: dict[str, list[str]] = dict(keywords or {})
        self.descriptions: dict[str, str] = dict(descriptions or {})
        # The index.json `load` read (None: built in memory): errors about the index name it.
        self.source: str | None = None
        if embeddings is not None and np.asarray(embeddings).shape[:1] != (len(item_ids),):
            raise DataError(f"SID index: embeddings of shape {np.asarray(embeddings).shape}, expected one row per "
                            f"item ({len(item_ids)})")
        self._embeddings = None if embeddings is None else np.asarray(embeddings)
        self._embeddings_file: Path | None = None  # read on first use (`load`)

    # -- shape -------------------------------------------------------------------------------------------

    @property
    def num_levels(self) -> int:
        return len(self._sizes)

    @property
    def codebook_sizes(self) -> list[int]:
        return list(self._sizes)

    @property
    def token_prefixes(self) -> list[str]:
        return list(self._prefixes)

    @property
    def item_ids(self) -> list[str]:
        """Item ids in catalog order (row order of `codes`)."""
        return list(self._item_ids)

    @property
    def codes(self) -> np.ndarray:
        """Read-only `(n, num_levels)` int64 codes, one row per item in catalog order."""
        return self._codes

    def __len__(self) -> int:
        return len(self._item_ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._row

    @cached_property
    def trie(self) -> PrefixTrie:
        """The prefix trie of all SIDs (built on first use); its leaf values are rows of `item_ids`."""
        return PrefixTrie(self._codes, self._sizes)

    # -- item ↔ codes ↔ tokens ---------------------------------------------------------------------------

    def _row_of(self, item_id: str) -> int:
        try:
            return self._row[item_id]
        except KeyError:
            raise KeyError(f"item {item_id!r} is not in the SID index") from None

    def subset(self, item_ids: Iterable[str]) -> SIDIndex:
        """The index of some of its items (same codebooks and tokens), in this index's order.

        Decoding over a subset's trie ranks only those items: the candidate pool of a cold-start
        evaluation, say. Unknown ids raise, naming the first.
        """
        wanted = {str(i) for i in item_ids}
        unknown = wanted - set(self._row)
        if unknown:
            raise DataError(f"SID index: {len(unknown)} item(s) not in the index, e.g. {sorted(unknown)[0]!r}")
        rows = [row for row, item in enumerate(self._item_ids) if item in wanted]
        embeddings = self.embeddings
        return SIDIndex([self._item_ids[r] for r in rows], self._codes[rows], self._sizes,
                        token_prefixes=self._prefixes, keywords=self.keywords, descriptions=self.descriptions,
                        embeddings=None if embeddings is None else embeddings[rows])

    def token(self, level: int, code: int) -> str:
        """The token string of `code` at `level` (0-based), e.g. `<b_3>`."""
        return self._vocab[level][code]

    def codes_of(self, item_id: str) -> tuple[int, ...]:
        return tuple(self._codes[self._row_of(item_id)].tolist())

    def tokens(self, item_id: str) -> list[str]:
        return [self._vocab[level][c] for level, c in enumerate(self.codes_of(item_id))]

    def sid(self, item_id: str) -> str:
        """The item's SID as one string, e.g. `<a_12><b_3><c_200>`."""
        return "".join(self.tokens(item_id))

    def item_for_codes(self, codes: tuple[int, ...]) -> str | None:
        """The item with exactly these codes, or None."""
        try:
            row = self._by_codes.get(tuple(int(c) for c in codes))
        except (TypeError, ValueError):
            return None
        return None if row is None else self._item_ids[row]

    def parse(self, text: object) -> str | None:
        """The item named by the first complete SID in `text`, or None; never raises.

        Tokens may be separated by whitespace (as some tokenizers decode them); anything before or
        after the SID is ignored. Only the first complete SID counts (a text listing many SIDs
        must not earn a match from a later one): if it is not an item, the answer is None, as for a
        partial SID or a non-string.
        """
        if not isinstance(text, str):
            return None
        match = self._pattern.search(text)
        if match is None:
            return None
        return self.item_for_codes(tuple(int(g) for g in match.groups()))

    def vocabulary(self) -> list[str]:
        """Every SID token, level by level (`<a_0>`, ..., `<a_255>`, `<b_0>`, ...)."""
        return [token for level in self._vocab for token in level]

    def level_tokens(self, level: int) -> list[str]:
        """The tokens of one level, in code order (token of code c at position c)."""
        return list(self._vocab[level])

    @property
    def embeddings(self) -> np.ndarray | None:
        """The item embeddings the codes were quantised from, rows in `item_ids` order (None: not known, e.g.
        SIDs imported from a file). `semantic_cosine` compares items with them."""
        if self._embeddings is None and self._embeddings_file is not None:
            emb = np.load(self._embeddings_file)
            if emb.ndim != 2 or emb.shape[0] != len(self):
                raise DataError(f"{self._embeddings_file}: embeddings of shape {emb.shape}, expected "
                                f"({len(self)} items of {self.source or INDEX_FILE}, dim)")
            self._embeddings = emb
        return self._embeddings

    # -- files ------------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "num_levels": self.num_levels,
            "codebook_sizes": self.codebook_sizes,
            "token_prefixes": self.token_prefixes,
            "token_format": "<{prefix}_{code}>",
            "keywords": self.keywords,
            "descriptions": self.descriptions,
            "items": {item: row for item, row in zip(self._item_ids, self._codes.tolist(), strict=True)},
        }

    def save(self, folder: str | os.PathLike) -> Path:
        """Write `folder/index.json` (via a temporary file, so a reader never sees half of it)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        # One line per field, per keyword token and per item: a 100k-item index stays readable and diffable.
        lines = []
        for key, value in self.to_json().items():
            if isinstance(value, dict):
                inner = [f"    {_dumps(k)}: {_dumps(v)}" for k, v in value.items()]
                body = "{\n" + ",\n".join(inner) + "\n  }" if inner else "{}"
                lines.append(f"  {_dumps(key)}: {body}")
            else:
                lines.append(f"  {_dumps(key)}: {_dumps(value)}")
        text = "{\n" + ",\n".join(lines) + "\n}\n"
        with atomic_file(folder / INDEX_FILE) as tmp:
            tmp.write_text(text, encoding="utf-8")
        emb_path = folder / EMBEDDINGS_FILE
        if self.embeddings is not None:  # float16: a million 384-d items in 768 MB, enough for cosine rewards
            with atomic_file(emb_path, suffix=".npy") as tmp:
                np.save(tmp, self.embeddings.astype(np.float16))
        else:
            emb_path.unlink(missing_ok=True)  # never leave another index's embeddings beside this one
        return folder / INDEX_FILE

    @classmethod
    def load(cls, folder: str | os.PathLike) -> SIDIndex:
        """Read `folder/index.json` (or a path to the file itself), checking every field."""
        path = Path(folder)
        if path.is_dir() or not path.suffix:
            path = path / INDEX_FILE
        if not path.is_file():
            raise DataError(f"{path}: file not found; expected the SID index `rlrec sid` writes ({INDEX_FILE} in its "
                            "output folder, or in the sid/ folder of a trained model)")
        data = read_json(path)
        index = cls.from_json(data, source=str(path))
        index.source = str(path)
        if (path.parent / EMBEDDINGS_FILE).is_file():
            index._embeddings_file = path.parent / EMBEDDINGS_FILE
        return index

    @classmethod
    def from_json(cls, data: Any, source: str = INDEX_FILE) -> SIDIndex:
        """Build from the `index.json` object; bad content raises DataError naming `source` and the field."""

        def fail(field: str, expected: str, got: Any) -> DataError:
            return DataError(f"{source}: field {field}: expected {expected}, got {shown(got)}")

        if not isinstance(data, dict):
            raise fail("(top level)", "a JSON object", type(data).__name__)
        version = data.get("format_version")
        if version != FORMAT_VERSION:
            raise fail("'format_version'", f"{FORMAT_VERSION} (written by this rlrec)", version)
        sizes = data.get("codebook_sizes")
        if (
            not isinstance(sizes, list)
            or not sizes
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sizes)
        ):
            raise fail("'codebook_sizes'", "a non-empty list of positive integers", sizes)
        levels = len(sizes)
        prefixes = data.get("token_prefixes", list(DEFAULT_PREFIXES[:levels]))
        if (
            not isinstance(prefixes, list)
            or len(prefixes) != levels
            or not all(isinstance(p, str) and _PREFIX_RE.fullmatch(p) for p in prefixes)
            or len(set(prefixes)) != levels
        ):
            raise fail("'token_prefixes'", f"{levels} distinct lowercase words", prefixes)
        items = data.get("items")
        if not isinstance(items, dict) or not items:
            raise fail("'items'", "a non-empty object {item_id: [codes]}", type(items).__name__)
        codes = np.empty((len(items), levels), dtype=np.int64)
        for row, (item, value) in enumerate(items.items()):
            ok = (
                isinstance(value, list)
                and len(value) == levels
                and all(
                    isinstance(c, int) and not isinstance(c, bool) and 0 <= c < s
                    for c, s in zip(value, sizes, strict=True)
                )
            )
            if not ok:
                raise fail(f"'items'[{item!r}]", f"{levels} integer codes below {sizes}", value)
            codes[row] = value
        keywords = data.get("keywords", {})
        if not isinstance(keywords, dict):
            raise fail("'keywords'", "an object {token: [words]}", type(keywords).__name__)
        try:
            index = cls(list(items), codes, sizes, token_prefixes=prefixes)
        except DataError as err:
            raise DataError(f"{source}: field 'items': {err}") from err
        vocabulary = set(index.vocabulary())
        for token, words in keywords.items():
            if token not in vocabulary:
                raise fail(f"'keywords'[{token!r}]", "a token of the vocabulary", token)
            if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
                raise fail(f"'keywords'[{token!r}]", "a list of strings", words)
        index.keywords = {token: list(words) for token, words in keywords.items()}
        descriptions = data.get("descriptions", {})  # absent from index.json files written before descriptions
        if not isinstance(descriptions, dict):
            raise fail("'descriptions'", "an object {token: sentence}", type(descriptions).__name__)
        for token, sentence in descriptions.items():
            if token not in vocabulary:
                raise fail(f"'descriptions'[{token!r}]", "a token of the vocabulary", token)
            if not isinstance(sentence, str):
                raise fail(f"'descriptions'[{token!r}]", "a string", sentence)
        index.descriptions = dict(descriptions)
        return index


def check_index_matches(index: SIDIndex, dataset: PreparedDataset, sid_dir: str | os.PathLike,
                        dataset_dir: str | os.PathLike) -> None:
    """Every item the splits mention must have a SID, or the index was built from another dataset.

    The train split must not be empty either: TRL would stop on it with a bare StopIteration.
    """
    dataset.require_examples("train")
    used = {ex.target for split in ("train", "valid", "test") for ex in dataset.split(split)}
    used.update(item for ex in dataset.train for item in ex.history)
    missing = sorted(item for item in used if item not in index)
    if missing:
        raise DataError(
            f"{sid_dir}: the SID index has no SID for {len(missing)} of the {len(used)} items used by {dataset_dir} "
            f"(e.g. {missing[:3]}); was it built from this dataset?"
        )
