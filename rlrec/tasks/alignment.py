"""Alignment tasks: teach what the new SID tokens mean, item by item and token by token.

- `title_to_sid` / `sid_to_title` (MiniOneRec): an item's title <-> its SID. Titles shared by several
  items have no single SID, so `title_to_sid` skips them; `sid_to_title` keeps every item.
- `ts_align_token_description` (TS-Rec's TS-Align): a SID token -> the one-sentence description of its
  cluster, and the description (with the token's level) -> the token. A description shared by two tokens
  of one level is skipped in the second direction, whose answer would otherwise be a guess.
- `ts_align_prefix_description`: the same for SID prefixes of 2..L-1 tokens.
- `ts_align_token`, `ts_align_prefix`: the keyword variants - the same two directions with the keyword
  list in place of the sentence (`TaskContext.token_keywords`, `.prefix_keywords`).

Why new names for the description tasks rather than switching `ts_align_token` to descriptions: a task
name in a recipe or in a manifest's task counts should say what was trained. Runs made before descriptions
existed recorded `ts_align_token` for keyword answers, and recipes that ask for it keep getting them; the
defaults (`DEFAULT_TASKS`) moved to the description tasks, which are TS-Rec's. Every keyword source gives
descriptions (the file's sentences, the teacher's, or c-TF-IDF's template; prefixes always the template of
their c-TF-IDF keywords), so the description tasks have examples whatever the source.

Keyword answers are the keywords in their stored order, joined by ", "; description answers the sentence.
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
TOKEN_SCOPE_PHRASINGS = (
    "What kind of items carry the SID token {token}, and what do they have in common? Answer in one sentence.",
    "Describe in one sentence the items whose SID contains the token {token}.",
)
TOKEN_FROM_DESCRIPTION_PHRASINGS = (
    'Which level-{level} SID token do the items described as follows carry: "{description}"?',
    'Items described as "{description}" share which level-{level} SID token?',
)
PREFIX_SCOPE_PHRASINGS = (
    "What kind of items have a SID starting with {prefix}, and what do they have in common? "
    "Answer in one sentence.",
    "Describe in one sentence the items whose SID starts with {prefix}.",
)
PREFIX_FROM_DESCRIPTION_PHRASINGS = (
    'Which {depth}-token SID prefix starts the SIDs of the items described as follows: "{description}"?',
    'Items described as "{description}" share which {depth}-token SID prefix?',
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


def _unique_answers(described: dict[str, list[str] | str], group: dict[str, int]) -> list[str]:
    """Keys whose (group, keywords or description) no other key shares: the reverse direction has one answer."""

    def key(value: list[str] | str) -> tuple[str, ...] | str:
        return tuple(value) if isinstance(value, list) else value

    counts = Counter((group[k], key(value)) for k, value in described.items())
    return [k for k, value in described.items() if counts[(group[k], key(value))] == 1]


def _level_of(context: TaskContext) -> dict[str, int]:
    return context.memo("token_levels", lambda: {
        token: level for level in range(context.index.num_levels) for token in context.index.level_tokens(level)
    })


def _descriptions(context: TaskContext, kind: str, prefixes: bool) -> dict[str, list[str] | str]:
    if kind == "keywords":
        return context.prefix_keywords if prefixes else context.token_keywords
    return context.prefix_descriptions if prefixes else context.token_descriptions


def token_sources(context: TaskContext, kind: str = "keywords") -> tuple[list[str], list[str], dict[str, int]]:
    """(tokens to describe, tokens to name from their `kind` - "keywords" or "description" -, level of each
    token), in vocabulary order."""

    def compute() -> tuple[list[str], list[str], dict[str, int]]:
        level_of = _level_of(context)
        described = _descriptions(context, kind, prefixes=False)
        described = {t: described[t] for t in level_of if t in described}
        return list(described), _unique_answers(described, level_of), level_of

    return context.memo(f"token_sources:{kind}", compute)


def _depth(prefix: str) -> int:
    return prefix.count("<")


def prefix_sources(context: TaskContext, kind: str = "keywords") -> tuple[list[str], list[str]]:
    """(prefixes to describe, prefixes to name from their `kind`), shortest prefixes first."""

    def compute() -> tuple[list[str], list[str]]:
        described = dict(_descriptions(context, kind, prefixes=True))
        depth = {prefix: _depth(prefix) for prefix in described}
        return list(described), _unique_answers(described, depth)

    return context.memo(f"prefix_sources:{kind}", compute)


def _answer_text(value: list[str] | str) -> str:
    return keyword_text(value) if isinstance(value, list) else value


def _token_task(kind: str, describe_phrasings: tuple[str, ...], name_phrasings: tuple[str, ...]):
    """`(size, render)` of a token task; positions below the number of described tokens describe a token,
    the rest name one from its keywords or description (the `{keywords}` / `{description}` field)."""
    field_name = "keywords" if kind == "keywords" else "description"

    def size(context: TaskContext) -> int:
        describe, name, _ = token_sources(context, kind)
        return len(describe) + len(name)

    def render(context: TaskContext, i: int, rng: random.Random) -> tuple[str, str]:
        describe, name, level_of = token_sources(context, kind)
        described = _descriptions(context, kind, prefixes=False)
        if i < len(describe):
            token = describe[i]
            return phrase(rng, describe_phrasings, token=token), _answer_text(described[token])
        token = name[i - len(describe)]
        fields = {"level": str(level_of[token] + 1), field_name: _answer_text(described[token])}
        return phrase(rng, name_phrasings, **fields), token

    return size, render


def _prefix_task(kind: str, describe_phrasings: tuple[str, ...], name_phrasings: tuple[str, ...]):
    """`(size, render)` of a prefix task, laid out as `_token_task`'s."""
    field_name = "keywords" if kind == "keywords" else "description"

    def size(context: TaskContext) -> int:
        describe, name = prefix_sources(context, kind)
        return len(describe) + len(name)

    def render(context: TaskContext, i: int, rng: random.Random) -> tuple[str, str]:
        describe, name = prefix_sources(context, kind)
        described = _descriptions(context, kind, prefixes=True)
        if i < len(describe):
            prefix = describe[i]
            return phrase(rng, describe_phrasings, prefix=prefix), _answer_text(described[prefix])
        prefix = name[i - len(describe)]
        fields = {"depth": str(_depth(prefix)), field_name: _answer_text(described[prefix])}
        return phrase(rng, name_phrasings, **fields), prefix

    return size, render


_token_size, render_ts_align_token = _token_task("keywords", TOKEN_DESCRIBE_PHRASINGS, TOKEN_NAME_PHRASINGS)
_prefix_size, render_ts_align_prefix = _prefix_task("keywords", PREFIX_DESCRIBE_PHRASINGS, PREFIX_NAME_PHRASINGS)
_token_description_size, render_ts_align_token_description = _token_task(
    "description", TOKEN_SCOPE_PHRASINGS, TOKEN_FROM_DESCRIPTION_PHRASINGS)
_prefix_description_size, render_ts_align_prefix_description = _prefix_task(
    "description", PREFIX_SCOPE_PHRASINGS, PREFIX_FROM_DESCRIPTION_PHRASINGS)


ALIGNMENT_TASKS = (
    TaskSpec("title_to_sid", "an item's title -> its SID (titles shared by several items are skipped)",
             lambda context: len(unique_title_items(context)), render_title_to_sid),
    TaskSpec("sid_to_title", "an item's SID -> its title", lambda context: len(context.item_ids), render_sid_to_title),
    TaskSpec("ts_align_token", "a SID token <-> the keywords of its items (TS-Align, keyword variant)",
             _token_size, render_ts_align_token),
    TaskSpec("ts_align_prefix", "a SID prefix of 2..L-1 tokens <-> the keywords of its items (TS-Align, keyword "
             "variant)", _prefix_size, render_ts_align_prefix),
    TaskSpec("ts_align_token_description", "a SID token <-> the one-sentence description of its items (TS-Align)",
             _token_description_size, render_ts_align_token_description),
    TaskSpec("ts_align_prefix_description", "a SID prefix of 2..L-1 tokens <-> the one-sentence description of "
             "its items (TS-Align)", _prefix_description_size, render_ts_align_prefix_description),
)
