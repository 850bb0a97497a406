"""Keywords that describe the items behind each Semantic-ID token (and each SID prefix).

TS-Rec's SA-Init initialises a new SID token from the embeddings of words describing its cluster, and
TS-Align teaches the model those descriptions. Two sources of keywords:

- offline, `token_keywords` / `prefix_keywords`: class-based TF-IDF. A cluster's items are one class;
  a word scores high when many of the cluster's items use it and few sibling clusters do. Fast,
  deterministic, no model needed.
- a teacher LLM, `teacher_keywords`: a local chat model is shown sample item titles of a cluster and
  asked for comma-separated keywords (greedy decoding). Answers are cached on disk, so re-running a
  recipe never re-generates them.

What a token's cluster is. SIDs come from residual quantisation: level l's code quantises the residual
left by levels 0..l-1, and the same codebook serves every parent. So `<b_3>` is ONE token, one embedding
row, shared by all items with code 3 at level 1 whatever their first code is; its cluster is therefore
all those items (for level 0, all items with that first code). A per-prefix cluster (`<a_1><b_3>`) is
what `prefix_keywords` describes; TS-Align uses it, SA-Init cannot (one row per token, not per prefix).

Siblings. A level's clusters are scored against each other: the background of `<b_3>` is the other
level-1 tokens, and the background of prefix `<a_1><b_3>` is every other depth-2 prefix, not only the
prefixes under `<a_1>` - so a prefix keeps the words of its parent, as a description of it should.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Hashable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar

import numpy as np

from rlrec.utils.errors import ConfigError, DataError

if TYPE_CHECKING:
    from rlrec.sid.index import SIDIndex

logger = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)

# A compact English stopword list (function words, plus a few words that describe no item).
STOPWORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having
    he her here hers herself him himself his how i if in into is it its itself just me more most my myself no
    nor not now of off on once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too under until up very
    was we were what when where which while who whom why will with would you your yours yourself yourselves
    via per etc vs get got may might must shall le la les de des du el los der das und
    """.split()
)

_WORD = re.compile(r"[^\W_]+")


def tokenize(text: str, stopwords: frozenset[str] = STOPWORDS, min_length: int = 3) -> list[str]:
    """Lowercase alphanumeric words of `text`, without stopwords, pure numbers and words under `min_length`."""
    return [
        w for w in _WORD.findall(text.lower()) if len(w) >= min_length and not w.isdigit() and w not in stopwords
    ]


# --------------------------------------------------------------------------------------------------------------
# Clusters


def token_clusters(codes: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
    """`(level, code) -> indices of the items with that code at that level`, for every code in use."""
    codes = _check_codes(codes)
    clusters: dict[tuple[int, int], np.ndarray] = {}
    for level in range(codes.shape[1]):
        column = codes[:, level]
        for code in np.unique(column):
            clusters[(level, int(code))] = np.flatnonzero(column == code)
    return clusters


def prefix_clusters(codes: np.ndarray, depth: int) -> dict[tuple[int, ...], np.ndarray]:
    """`codes[:depth] prefix -> indices of the items whose SID starts with it`, for every prefix in use."""
    codes = _check_codes(codes)
    if not 1 <= depth <= codes.shape[1]:
        raise ConfigError(f"prefix depth {depth} is outside 1..{codes.shape[1]} (the number of SID levels)")
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, row in enumerate(codes[:, :depth].tolist()):
        groups.setdefault(tuple(row), []).append(i)
    return {prefix: np.asarray(idx) for prefix, idx in sorted(groups.items())}


# --------------------------------------------------------------------------------------------------------------
# Offline: class-based TF-IDF


def ctfidf_keywords(
    groups: Mapping[K, Sequence[str]],
    top_k: int = 5,
    stopwords: frozenset[str] = STOPWORDS,
    min_length: int = 3,
) -> dict[K, list[str]]:
    """The `top_k` most distinctive words of each group of texts, against the other groups.

    score(w, g) = share of g's texts containing w  *  log(1 + G / number of groups containing w)

    Counting texts rather than occurrences keeps one long description from dominating a cluster; the
    smoothed inverse group frequency never reaches zero, so a word every group shares can still fill
    the list of a group with nothing more distinctive. Ties break alphabetically (deterministic).
    """
    if top_k < 1:
        raise ConfigError(f"top_k must be >= 1, got {top_k}")
    presence: dict[K, Counter[str]] = {}
    sizes: dict[K, int] = {}
    for key, texts in groups.items():
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(set(tokenize(text, stopwords, min_length)))
        presence[key], sizes[key] = counts, len(texts)
    group_freq: Counter[str] = Counter()
    for counts in presence.values():
        group_freq.update(counts.keys())
    n_groups = len(groups)
    keywords: dict[K, list[str]] = {}
    for key, counts in presence.items():
        scored = sorted(
            ((n / sizes[key]) * math.log(1 + n_groups / group_freq[w]), w) for w, n in counts.items()
        )
        scored.sort(key=lambda sw: -sw[0])  # stable: equal scores stay alphabetical
        keywords[key] = [w for _, w in scored[:top_k]]
    return keywords


def token_keywords(
    codes: np.ndarray, texts: Sequence[str], top_k: int = 5, **kwargs
) -> dict[tuple[int, int], list[str]]:
    """c-TF-IDF keywords of each SID token `(level, code)`; clusters of one level are scored together.

    `texts[i]` describes the item of `codes[i]` (its title plus categories, as embedded for the SIDs).
    Codes no item uses get no entry (SA-Init then falls back to the vocabulary mean).
    """
    codes = _check_codes(codes)
    _check_len(texts, codes)
    out: dict[tuple[int, int], list[str]] = {}
    for level in range(codes.shape[1]):
        groups = {
            key: [texts[i] for i in idx] for key, idx in token_clusters(codes[:, level : level + 1]).items()
        }
        out.update({(level, code): kw for (_, code), kw in ctfidf_keywords(groups, top_k, **kwargs).items()})
    return out


def prefix_keywords(
    item_ids: Sequence[str],
    codes: np.ndarray,
    texts: Sequence[str] | Mapping[str, str],
    depth: int,
    top_k: int = 5,
    **kwargs,
) -> dict[tuple[int, ...], list[str]]:
    """c-TF-IDF keywords of each SID prefix of length `depth` (for TS-Align's prefix descriptions).

    `codes[i]` is the SID of `item_ids[i]`; `texts` is aligned with `item_ids`, or maps item id -> text.
    """
    codes = _check_codes(codes)
    _check_len(item_ids, codes)
    if isinstance(texts, Mapping):
        missing = [i for i in item_ids if i not in texts]
        if missing:
            raise DataError(f"prefix_keywords: no text for items {missing[:5]}")
        texts = [texts[i] for i in item_ids]
    _check_len(texts, codes)
    groups = {prefix: [texts[i] for i in idx] for prefix, idx in prefix_clusters(codes, depth).items()}
    return ctfidf_keywords(groups, top_k, **kwargs)


# --------------------------------------------------------------------------------------------------------------
# Teacher LLM

TEACHER_PROMPT = (
    "Here are some items from one group of a catalogue:\n{titles}\n\n"
    "Give {k} short keywords that describe what these items have in common, "
    "as one comma-separated list. Answer with the keywords only."
)


def teacher_keywords(
    groups: Mapping[K, Sequence[str]],
    model_path: str | os.PathLike | None,
    cache_path: str | os.PathLike,
    top_k: int = 5,
    max_titles: int = 12,
    max_new_tokens: int = 32,
    batch_size: int = 8,
    seed: int = 0,
    device: str | None = None,
) -> dict[K, list[str]]:
    """Ask a local chat model for `top_k` keywords per group of item titles (greedy decoding), cached.

    `groups` maps a cluster key to its items' titles; at most `max_titles` of them (a seeded sample)
    go into the prompt. `model_path` is anything `load_base_model` accepts (None = SmolLM2). Each answer
    is cached in the JSON file `cache_path` under a hash of (model path, prompt, generation settings), so
    a second call - or a re-run after a crash, the cache is written after every batch - only generates
    what is missing and loads no model when nothing is. The raw answer is cached and parsed on read.
    `device` defaults to CUDA when available.
    """
    cache_path = Path(cache_path)
    cache: dict[str, dict[str, str]] = _read_cache(cache_path)
    model_key = str(Path(model_path).expanduser().resolve()) if model_path is not None else "smollm2"
    prompts = {key: _teacher_prompt(titles, top_k, max_titles, seed) for key, titles in groups.items()}
    hashes = {key: _cache_key(model_key, prompt, max_new_tokens) for key, prompt in prompts.items()}
    todo = [key for key in groups if hashes[key] not in cache]
    if todo:
        logger.info("teacher keywords: generating %d of %d groups with %s", len(todo), len(groups), model_key)
        import torch

        from rlrec.models.loading import load_base_model

        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        model, tokenizer = load_base_model(model_path, device=device)
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            answers = _generate(model, tokenizer, [prompts[k] for k in batch], max_new_tokens)
            for key, answer in zip(batch, answers, strict=True):
                cache[hashes[key]] = {"model": model_key, "answer": answer}
            _write_cache(cache_path, cache)
    return {key: parse_keywords(cache[hashes[key]]["answer"], top_k) for key in groups}


def parse_keywords(answer: str, top_k: int = 5) -> list[str]:
    """Keywords from a model's free-text answer: split on commas / semicolons / newlines, cleaned, deduplicated.

    Numbering, bullets, quotes and a leading "Keywords:" are removed; pieces longer than four words are
    sentences, not keywords, and are dropped.
    """
    answer = re.sub(r"^\s*(keywords?|answer)\s*:\s*", "", answer.strip(), flags=re.IGNORECASE)
    out: list[str] = []
    for piece in re.split(r"[,;\n]+", answer):
        piece = re.sub(r"^\s*(?:\d+[.)]|[-*\u2022])\s*", "", piece)
        piece = piece.strip().strip("\"'`.:!?()[]{}").strip().lower()
        if piece and len(piece.split()) <= 4 and piece not in out:
            out.append(piece)
        if len(out) == top_k:
            break
    return out


def _teacher_prompt(titles: Sequence[str], top_k: int, max_titles: int, seed: int) -> str:
    titles = [t for t in titles if t]
    if len(titles) > max_titles:
        # Seeded by the titles themselves, so a cluster's sample does not depend on the others.
        digest = int(hashlib.sha256("\n".join(titles).encode()).hexdigest()[:8], 16)
        rng = np.random.default_rng(seed + digest)
        titles = [titles[i] for i in sorted(rng.choice(len(titles), max_titles, replace=False))]
    return TEACHER_PROMPT.format(titles="\n".join(f"- {t}" for t in titles), k=top_k)


def _cache_key(model_key: str, prompt: str, max_new_tokens: int) -> str:
    return hashlib.sha256(f"{model_key}\n{max_new_tokens}\n{prompt}".encode()).hexdigest()


def _generate(model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[str]:
    """Greedy answers to chat prompts, batched with left padding."""
    import torch

    texts = [
        tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
        for p in prompts
    ]
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    finally:
        tokenizer.padding_side = side
    with torch.no_grad():
        out = model.generate(
            **batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id
        )
    return tokenizer.batch_decode(out[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)


def _read_cache(path: Path) -> dict[str, dict[str, str]]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: line {err.lineno}: the teacher-keyword cache is not valid JSON ({err.msg})") from err
    if not isinstance(data, dict):
        raise DataError(f"{path}: the teacher-keyword cache should be a JSON object")
    return data


def _write_cache(path: Path, cache: Mapping[str, object]) -> None:
    """Write the cache to a temporary file and rename it, so a crash never leaves half a JSON file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(cache, f, indent=1, ensure_ascii=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------------------------------------------
# On a SID index


def index_keywords(
    index: SIDIndex,
    texts: Sequence[str] | Mapping[str, str],
    source: Literal["ctfidf", "teacher"] = "ctfidf",
    top_k: int = 5,
    teacher_model: str | os.PathLike | None = None,
    cache_path: str | os.PathLike | None = None,
) -> dict[str, list[str]]:
    """Keywords of every SID token in use, keyed by token string; also stored in `index.keywords`.

    `texts` is aligned with `index.item_ids` or maps item id -> text: the item texts for `"ctfidf"`,
    their titles for `"teacher"` (which needs `cache_path`; `teacher_model` None means SmolLM2).
    """
    item_ids = index.item_ids
    if isinstance(texts, Mapping):
        missing = [i for i in item_ids if i not in texts]
        if missing:
            raise DataError(f"index_keywords: no text for items {missing[:5]}")
        texts = [texts[i] for i in item_ids]
    _check_len(texts, index.codes)
    if source == "ctfidf":
        by_code = token_keywords(index.codes, texts, top_k)
    elif source == "teacher":
        if cache_path is None:
            raise ConfigError("index_keywords: source 'teacher' needs a cache_path for the teacher's answers")
        groups = {key: [texts[i] for i in idx] for key, idx in token_clusters(index.codes).items()}
        by_code = teacher_keywords(groups, teacher_model, cache_path, top_k=top_k)
    else:
        raise ConfigError(f"keyword source must be 'ctfidf' or 'teacher', got {source!r}")
    index.keywords = keywords_by_token(by_code, index.token)
    return index.keywords


def keywords_by_token(
    keywords: Mapping[tuple[int, int], list[str]], token_name: Callable[[int, int], str]
) -> dict[str, list[str]]:
    """Re-key `(level, code) -> keywords` by token string, e.g. with `token_name=index.token`."""
    return {token_name(level, code): kw for (level, code), kw in keywords.items()}


# --------------------------------------------------------------------------------------------------------------
# Checks


def _check_codes(codes: np.ndarray) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.ndim != 2 or not np.issubdtype(codes.dtype, np.integer):
        raise ConfigError(f"codes must be an integer array of shape (items, levels), got {codes.dtype} {codes.shape}")
    return codes


def _check_len(seq: Sequence, codes: np.ndarray) -> None:
    if len(seq) != len(codes):
        raise DataError(f"{len(seq)} item ids/texts for {len(codes)} rows of SID codes; they must be aligned")
