"""Keywords that describe the items behind each Semantic-ID token (and each SID prefix).

TS-Rec's SA-Init initialises a new SID token from the embeddings of words describing its cluster, and
TS-Align teaches the model those descriptions. This module writes them into a SID index (`index_keywords`,
`index_descriptions`); each source lives in its own module. Three sources of keywords:

- offline, `token_keywords` / `prefix_keywords` (ctfidf.py): class-based TF-IDF. A cluster's items are one class;
  a word scores high when many of the cluster's items use it and few sibling clusters do. Fast,
  deterministic, no model needed.
- a teacher LLM, `teacher_keywords` (teacher.py): a local chat model is shown sample item titles of a cluster and
  asked for comma-separated keywords (greedy decoding). Answers are cached on disk, so re-running a
  recipe never re-generates them.
- a file, `read_keyword_file` (keyword_file.py): TS-Rec's released keywords and descriptions per SID token
  (a JSON list of `{"token": "<a_236>", "description": "...", "keywords": [...]}`, written by its teacher LLM), checked
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

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from rlrec.init.ctfidf import _check_len, token_clusters, token_keywords
from rlrec.init.teacher import TeacherModel, teacher_descriptions, teacher_keywords
from rlrec.utils.errors import ConfigError, DataError

if TYPE_CHECKING:
    from rlrec.sid.index import SIDIndex

logger = logging.getLogger(__name__)

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
        teacher = TeacherModel(teacher_model)
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
    teacher = TeacherModel(teacher_model) if source == "teacher" else None
    _fill_descriptions(index, texts, source, teacher, cache_path)
    return index.descriptions


def _fill_descriptions(
    index: SIDIndex, texts: Sequence[str], source: str, teacher: TeacherModel | None,
    cache_path: str | os.PathLike | None,
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
