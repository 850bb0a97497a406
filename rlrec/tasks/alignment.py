"""Alignment tasks: teach what the new SID tokens mean, item by item and token by token.

- `title_to_sid` / `sid_to_title` (MiniOneRec): an item's title <-> its SID. Titles shared by several
  items have no single SID, so `title_to_sid` skips them; `sid_to_title` keeps every item.
- `ts_align_token` (TS-Rec TS-Align): a SID token -> the keywords of its cluster, and the keywords (with
  the token's level) -> the token. A keyword list shared by two tokens of one level is skipped in the
  second direction, whose answer would otherwise be a guess.
- `ts_align_prefix`: the same for SID prefixes of 2..L-1 tokens (`TaskContext.prefix_keywords`).

Keyword answers are the keywords in their stored order, joined by ", ".
"""

from __future__ import annotations

import random
from collections import Counter

from rlrec.tasks.context import TaskContext
from rlrec.tasks.spec import TaskSpec, phrase

TITLE_TO_SID_PHRASINGS = (
    'Which SID stands for the item "{title}"?',
    'What is the SID of "{title}"?',
)
SID_TO_TITLE_PHRASINGS = (
    "Which item has the SID {sid}? Answer with its title.",
    "What is the title of the item {sid}?",
)
TOKEN_DESCRIBE_PHRASINGS = (
    "What do the items under the SID token {token} have in common? Answer with keywords.",
    "Describe the SID token {token} in a few keywords.",
)
TOKEN_NAME_PHRASINGS = (
    "Which level-{level} SID token stands for items described by: {keywords}?",
    "Name the level-{level} SID token whose items are about: {keywords}.",
)
PREFIX_DESCRIBE_PHRASINGS = (
    "What do the items whose SID starts with {prefix} have in common? Answer with keywords.",
    "Describe the SID prefix {prefix} in a few keywords.",
)
PREFIX_NAME_PHRASINGS = (
    "Which {depth}-token SID prefix stands for items described by: {keywords}?",
    "Name the {depth}-token SID prefix whose items are about: {keywords}.",
)


def keyword_text(keywords: list[str]) -> str:
    return ", ".join(keywords)


# -- items --------------------------------------------------------------------------------------------------


def unique_title_items(context: TaskContext) -> list[str]:
    """Items whose title no other item shares, in catalog order."""

    def compute() -> list[str]:
        counts = Counter(context.title(item) for item in context.item_ids)
        return [item for item in context.item_ids if counts[context.title(item)] == 1]

    return context.memo("unique_title_items", compute)


def render_title_to_sid(context: TaskContext, i: int, rng: random.Random) -> tuple[str, str]:
    item = unique_title_items(context)[i]
    return phrase(rng, TITLE_TO_SID_PHRASINGS, title=context.title(item)), context.index.sid(item)


def render_sid_to_title(context: TaskContext, i: int, rng: random.Random) -> tuple[str, str]:
    item = context.item_ids[i]
    return phrase(rng, SID_TO_TITLE_PHRASINGS, sid=context.index.sid(item)), context.title(item)


# -- tokens and prefixes -------------------------------------------------------------------------------------


def _unique_by_keywords(described: dict[str, list[str]], group: dict[str, int]) -> list[str]:
    """Keys whose (group, keyword list) no other key shares: the reverse direction has one answer."""
    counts = Counter((group[key], tuple(words)) for key, words in described.items())
    return [key for key, words in described.items() if counts[(group[key], tuple(words))] == 1]


def token_sources(context: TaskContext) -> tuple[list[str], list[str], dict[str, int]]:
    """(tokens to describe, tokens to name from keywords, level of each token), in vocabulary order."""

    def compute() -> tuple[list[str], list[str], dict[str, int]]:
        level_of = {
            token: level for level in range(context.index.num_levels) for token in context.index.level_tokens(level)
        }
        described = {t: context.token_keywords[t] for t in level_of if t in context.token_keywords}
        return list(described), _unique_by_keywords(described, level_of), level_of

    return context.memo("token_sources", compute)


def _depth(prefix: str) -> int:
    return prefix.count("<")


def prefix_sources(context: TaskContext) -> tuple[list[str], list[str]]:
    """(prefixes to describe, prefixes to name from keywords), shortest prefixes first."""

    def compute() -> tuple[list[str], list[str]]:
        described = dict(context.prefix_keywords)
        depth = {prefix: _depth(prefix) for prefix in described}
        return list(described), _unique_by_keywords(described, depth)

    return context.memo("prefix_sources", compute)


def _token_size(context: TaskContext) -> int:
    describe, name, _ = token_sources(context)
    return len(describe) + len(name)


def render_ts_align_token(context: TaskContext, i: int, rng: random.Random) -> tuple[str, str]:
    """Positions below the number of described tokens describe a token; the rest name one."""
    describe, name, level_of = token_sources(context)
    if i < len(describe):
        token = describe[i]
        return phrase(rng, TOKEN_DESCRIBE_PHRASINGS, token=token), keyword_text(context.token_keywords[token])
    token = name[i - len(describe)]
    keywords = keyword_text(context.token_keywords[token])
    return phrase(rng, TOKEN_NAME_PHRASINGS, level=str(level_of[token] + 1), keywords=keywords), token


def _prefix_size(context: TaskContext) -> int:
    describe, name = prefix_sources(context)
    return len(describe) + len(name)


def render_ts_align_prefix(context: TaskContext, i: int, rng: random.Random) -> tuple[str, str]:
    describe, name = prefix_sources(context)
    if i < len(describe):
        prefix = describe[i]
        return phrase(rng, PREFIX_DESCRIBE_PHRASINGS, prefix=prefix), keyword_text(context.prefix_keywords[prefix])
    prefix = name[i - len(describe)]
    keywords = keyword_text(context.prefix_keywords[prefix])
    return phrase(rng, PREFIX_NAME_PHRASINGS, depth=str(_depth(prefix)), keywords=keywords), prefix


ALIGNMENT_TASKS = (
    TaskSpec("title_to_sid", "an item's title -> its SID (titles shared by several items are skipped)",
             lambda context: len(unique_title_items(context)), render_title_to_sid),
    TaskSpec("sid_to_title", "an item's SID -> its title", lambda context: len(context.item_ids), render_sid_to_title),
    TaskSpec("ts_align_token", "a SID token <-> the keywords of its items (TS-Align)", _token_size,
             render_ts_align_token),
    TaskSpec("ts_align_prefix", "a SID prefix of 2..L-1 tokens <-> the keywords of its items (TS-Align)",
             _prefix_size, render_ts_align_prefix),
)
