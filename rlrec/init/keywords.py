"""Keywords that describe the items behind each Semantic-ID token (and each SID prefix).

TS-Rec's SA-Init initialises a new SID token from the embeddings of words describing its cluster, and
TS-Align teaches the model those descriptions. Two sources of keywords:

- offline, `token_keywords` / `prefix_keywords`: class-based TF-IDF. A cluster's items are one class;
  a word scores high when many of the cluster's items use it and few sibling clusters do. Fast,
  deterministic, no model needed.
- a teacher LLM, `teacher_keywords`: a local chat model is shown sample item titles of a cluster and
  asked for comma-separated keywords (greedy decoding). Answers are cached on disk, so re-running a
  recipe never re-generates them.
- a file, `read_keyword_file`: TS-Rec's released keywords and descriptions per SID token (a JSON list of
  `{"token": "<a_236>", "description": "...", "keywords": [...]}`, written by its teacher LLM), checked
  against the index: coverage per level, unknown tokens counted and skipped (or refused, `strict`).

Descriptions. TS-Rec's TS-Align teaches a token's one-sentence description, not a keyword list, so every
source also gives one sentence per token: c-TF-IDF a templated sentence from the keywords
(`describe_keywords`), the teacher its own sentence (`teacher_descriptions`, a second cached prompt), the
file its `description` field. `index_keywords` / `index_keyword_file` store them in `index.descriptions`.

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
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import numpy as np

from rlrec.utils.errors import ConfigError, DataError, shown
from rlrec.utils.io import atomic_file, read_json

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
TEACHER_DESCRIPTION_PROMPT = (
    "Here are some items from one group of a catalogue:\n{titles}\n\n"
    "In one sentence, describe the typical scope and shared features of the items in this group. "
    "Answer with the sentence only."
)
TEACHER_MAX_TITLES = 12  # sample titles shown per cluster
TEACHER_KEYWORD_TOKENS = 32
TEACHER_BATCH_SIZE = 8
TEACHER_DESCRIPTION_TOKENS = 48  # one sentence; a longer answer is cut at its first sentence anyway
MAX_DESCRIPTION_CHARS = 400


def teacher_keywords(
    groups: Mapping[K, Sequence[str]],
    model_path: str | os.PathLike | None,
    cache_path: str | os.PathLike,
    top_k: int = 5,
    max_titles: int = TEACHER_MAX_TITLES,
    max_new_tokens: int = TEACHER_KEYWORD_TOKENS,
    batch_size: int = TEACHER_BATCH_SIZE,
    seed: int = 0,
    device: str | None = None,
    teacher: _Teacher | None = None,
) -> dict[K, list[str]]:
    """Ask a local chat model for `top_k` keywords per group of item titles (greedy decoding), cached.

    `groups` maps a cluster key to its items' titles; at most `max_titles` of them (a seeded sample)
    go into the prompt. `model_path` is anything `load_base_model` accepts (None = SmolLM2). Each answer
    is cached in the JSON file `cache_path` under a hash of (model path, prompt, generation settings), so
    a second call - or a re-run after a crash, the cache is written after every batch - only generates
    what is missing and loads no model when nothing is. The raw answer is cached and parsed on read.
    `device` defaults to CUDA when available. `teacher` (instead of `model_path`, `device`) reuses a model
    already loaded for another prompt.
    """
    teacher = teacher or _Teacher(model_path, device)
    prompts = {key: _teacher_prompt(TEACHER_PROMPT, titles, top_k, max_titles, seed) for key, titles in groups.items()}
    answers = _teacher_answers(prompts, teacher, cache_path, max_new_tokens, batch_size)
    return {key: parse_keywords(answer, top_k) for key, answer in answers.items()}


def teacher_descriptions(
    groups: Mapping[K, Sequence[str]],
    model_path: str | os.PathLike | None,
    cache_path: str | os.PathLike,
    max_titles: int = TEACHER_MAX_TITLES,
    max_new_tokens: int = TEACHER_DESCRIPTION_TOKENS,
    batch_size: int = TEACHER_BATCH_SIZE,
    seed: int = 0,
    device: str | None = None,
    teacher: _Teacher | None = None,
) -> dict[K, str]:
    """Ask a local chat model for one sentence describing each group of item titles; cached like
    `teacher_keywords` (same file, other prompt). An answer with no usable sentence gives "" (the caller
    falls back to the templated description of the keywords). `teacher` as for `teacher_keywords`."""
    teacher = teacher or _Teacher(model_path, device)
    prompts = {key: _teacher_prompt(TEACHER_DESCRIPTION_PROMPT, titles, 0, max_titles, seed)
               for key, titles in groups.items()}
    answers = _teacher_answers(prompts, teacher, cache_path, max_new_tokens, batch_size)
    return {key: parse_description(answer) for key, answer in answers.items()}


class _Teacher:
    """The teacher LLM, loaded on first use: a run whose answers are all cached loads no model, and one
    that generates keywords and then descriptions loads it once."""

    def __init__(self, model_path: str | os.PathLike | None, device: str | None = None) -> None:
        self.model_path = model_path
        self.key = str(Path(model_path).expanduser().resolve()) if model_path is not None else "smollm2"
        self.device = device
        self._loaded: tuple | None = None

    def answer(self, prompts: list[str], max_new_tokens: int) -> list[str]:
        if self._loaded is None:
            import torch

            from rlrec.models.loading import load_base_model

            device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
            self._loaded = load_base_model(self.model_path, device=device)
        model, tokenizer = self._loaded
        return _generate(model, tokenizer, prompts, max_new_tokens)


def _teacher_answers(
    prompts: Mapping[K, str], teacher: _Teacher, cache_path: str | os.PathLike, max_new_tokens: int, batch_size: int
) -> dict[K, str]:
    """The teacher's raw answer to each prompt, from the cache or generated (and cached after every batch)."""
    cache_path = Path(cache_path)
    cache: dict[str, dict[str, str]] = _read_cache(cache_path)
    hashes = {key: _cache_key(teacher.key, prompt, max_new_tokens) for key, prompt in prompts.items()}
    todo = [key for key in prompts if hashes[key] not in cache]
    if todo:
        logger.info("teacher: generating %d of %d answers with %s", len(todo), len(prompts), teacher.key)
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            answers = teacher.answer([prompts[k] for k in batch], max_new_tokens)
            for key, answer in zip(batch, answers, strict=True):
                cache[hashes[key]] = {"model": teacher.key, "answer": answer}
            _write_cache(cache_path, cache)
    return {key: cache[hashes[key]]["answer"] for key in prompts}


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


def parse_description(answer: str) -> str:
    """One sentence from a model's free-text answer: a leading "Description:" and quotes removed, whitespace
    collapsed, cut after the first sentence (and at `MAX_DESCRIPTION_CHARS`); "" when nothing is left."""
    text = re.sub(r"^\s*(description|answer)\s*:\s*", "", answer.strip(), flags=re.IGNORECASE)
    text = " ".join(text.split()).strip("\"'` ")
    end = re.search(r"[.!?](?=\s|$)", text)
    if end is not None:
        text = text[: end.end()]
    if len(text) > MAX_DESCRIPTION_CHARS:
        text = text[: MAX_DESCRIPTION_CHARS - 3].rstrip() + "..."
    return text if re.search(r"[^\W\d_]", text) else ""


def _teacher_prompt(template: str, titles: Sequence[str], top_k: int, max_titles: int, seed: int) -> str:
    titles = [t for t in titles if t]
    if len(titles) > max_titles:
        # Seeded by the titles themselves, so a cluster's sample does not depend on the others.
        digest = int(hashlib.sha256("\n".join(titles).encode()).hexdigest()[:8], 16)
        rng = np.random.default_rng(seed + digest)
        titles = [titles[i] for i in sorted(rng.choice(len(titles), max_titles, replace=False))]
    return template.format(titles="\n".join(f"- {t}" for t in titles), k=top_k)


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
    with atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(cache, f, indent=1, ensure_ascii=False)


# --------------------------------------------------------------------------------------------------------------
# On a SID index


def index_keywords(
    index: SIDIndex,
    texts: Sequence[str] | Mapping[str, str],
    source: Literal["ctfidf", "teacher"] = "ctfidf",
    top_k: int = 5,
    teacher_model: str | os.PathLike | None = None,
    cache_path: str | os.PathLike | None = None,
    descriptions: bool = True,
) -> dict[str, list[str]]:
    """Keywords of every SID token in use, keyed by token string; also stored in `index.keywords`.

    `texts` is aligned with `index.item_ids` or maps item id -> text: the item texts for `"ctfidf"`,
    their titles for `"teacher"` (which needs `cache_path`; `teacher_model` None means SmolLM2).
    With `descriptions`, `index.descriptions` is filled too (`index_descriptions`), the teacher's
    sentences from the model already loaded for its keywords.
    """
    texts = _aligned_texts(index, texts)
    teacher = None
    if source == "ctfidf":
        by_code = token_keywords(index.codes, texts, top_k)
    elif source == "teacher":
        if cache_path is None:
            raise ConfigError("index_keywords: source 'teacher' needs a cache_path for the teacher's answers")
        teacher = _Teacher(teacher_model)
        groups = {key: [texts[i] for i in idx] for key, idx in token_clusters(index.codes).items()}
        by_code = teacher_keywords(groups, teacher_model, cache_path, top_k, teacher=teacher)
    else:
        raise ConfigError(f"keyword source must be 'ctfidf' or 'teacher', got {source!r}")
    index.keywords = keywords_by_token(by_code, index.token)
    if descriptions:
        index.descriptions = {}
        _fill_descriptions(index, texts, source, teacher, cache_path)
    return index.keywords


def index_descriptions(
    index: SIDIndex,
    texts: Sequence[str] | Mapping[str, str],
    source: Literal["ctfidf", "teacher"] = "ctfidf",
    teacher_model: str | os.PathLike | None = None,
    cache_path: str | os.PathLike | None = None,
) -> dict[str, str]:
    """One sentence for every token of `index.keywords` that has no description yet; stored in
    `index.descriptions`. `"ctfidf"`: `describe_keywords` of its keywords (no texts read); `"teacher"`: the
    teacher's sentence about the cluster's titles (`texts` as for `index_keywords`), the template where the
    teacher gave no usable sentence. For an index whose keywords were computed before descriptions existed.
    """
    if source not in ("ctfidf", "teacher"):
        raise ConfigError(f"description source must be 'ctfidf' or 'teacher', got {source!r}")
    if source == "teacher" and cache_path is None:
        raise ConfigError("index_descriptions: source 'teacher' needs a cache_path for the teacher's answers")
    texts = _aligned_texts(index, texts) if source == "teacher" else []
    teacher = _Teacher(teacher_model) if source == "teacher" else None
    _fill_descriptions(index, texts, source, teacher, cache_path)
    return index.descriptions


def _fill_descriptions(
    index: SIDIndex, texts: Sequence[str], source: str, teacher: _Teacher | None, cache_path: str | os.PathLike | None
) -> None:
    """Describe the tokens without a description: the teacher every token in use (it reads the titles, not the
    keywords), falling back to the template of the keywords; c-TF-IDF every token with keywords."""
    generated: dict[str, str] = {}
    if source == "teacher":
        groups = {index.token(level, code): [texts[i] for i in idx]
                  for (level, code), idx in token_clusters(index.codes).items()
                  if not index.descriptions.get(index.token(level, code))}
        generated = teacher_descriptions(groups, None, cache_path, teacher=teacher)
    todo = [token for token in [*generated, *index.keywords] if not index.descriptions.get(token)]
    for token in dict.fromkeys(todo):
        sentence = generated.get(token) or describe_keywords(index.keywords.get(token, []))
        if sentence:
            index.descriptions[token] = sentence


def describe_keywords(keywords: Sequence[str], max_keywords: int = 5) -> str:
    """A templated one-sentence description from a keyword list (c-TF-IDF's descriptions): "Items in this
    group are mostly about red, apple and fruit." - the same words as the keywords, in a sentence, so the
    description tasks have an answer of the same form whatever the keyword source. "" without keywords."""
    words = [w.strip() for w in keywords if w and w.strip()][:max_keywords]
    if not words:
        return ""
    listed = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
    return f"Items in this group are mostly about {listed}."


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


def _aligned_texts(index: SIDIndex, texts: Sequence[str] | Mapping[str, str]) -> list[str]:
    if isinstance(texts, Mapping):
        missing = [i for i in index.item_ids if i not in texts]
        if missing:
            raise DataError(f"index_keywords: no text for items {missing[:5]}")
        texts = [texts[i] for i in index.item_ids]
    _check_len(texts, index.codes)
    return list(texts)


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
