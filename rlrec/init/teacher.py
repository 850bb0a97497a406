"""Keywords and one-sentence descriptions of SID clusters from a teacher LLM, cached on disk.

A local chat model is shown sample item titles of a cluster and asked for comma-separated keywords, and in a
second prompt for one sentence (greedy decoding). Answers are cached by model, prompt and length, so re-running a
recipe never re-generates them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rlrec.init.ctfidf import K
from rlrec.utils.errors import DataError
from rlrec.utils.io import atomic_file

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)

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
    teacher: TeacherModel | None = None,
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
    teacher = teacher or TeacherModel(model_path, device)
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
    teacher: TeacherModel | None = None,
) -> dict[K, str]:
    """Ask a local chat model for one sentence describing each group of item titles; cached like
    `teacher_keywords` (same file, other prompt). An answer with no usable sentence gives "" (the caller
    falls back to the templated description of the keywords). `teacher` as for `teacher_keywords`."""
    teacher = teacher or TeacherModel(model_path, device)
    prompts = {key: _teacher_prompt(TEACHER_DESCRIPTION_PROMPT, titles, 0, max_titles, seed)
               for key, titles in groups.items()}
    answers = _teacher_answers(prompts, teacher, cache_path, max_new_tokens, batch_size)
    return {key: parse_description(answer) for key, answer in answers.items()}


class TeacherModel:
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
    prompts: Mapping[K, str], teacher: TeacherModel, cache_path: str | os.PathLike, max_new_tokens: int,
    batch_size: int,
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
