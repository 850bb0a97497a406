"""`query_to_sid`: a short query (genre, category, brand, year, or cluster keywords) -> the SID of an item.

Many items match a query such as "genre: Comedy", so the question asks for the most popular matching
item (train interactions; ties go to the earlier item of the catalog): an answer derivable from the data,
and the one a recommender with nothing else to go on should give. Queries (Semantic Convergence's
query alignment) are:

- facets: every attribute value in `QUERY_FIELDS` that some item has, and every pair of values of two
  different fields that some item has together ("genre: Comedy; year: 1995");
- keywords: the keyword list of each level-0 SID token and of each SID prefix of 2..L-1 tokens, whose
  answer is the most popular item under that token or prefix (lists shared by two clusters are skipped).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable

from rlrec.tasks.context import TaskContext
from rlrec.tasks.spec import TaskSpec, phrase

# Attribute field -> how a query names it. Fields mapping to one label form one facet ("category").
QUERY_FIELDS: dict[str, str] = {
    "genres": "genre",
    "main_category": "category",
    "categories": "category",
    "brand": "brand",
    "year": "year",
}
FACET_PHRASINGS = (
    "Recommend the most popular item with {query}.",
    "Which item with {query} do users choose most? Answer with its SID.",
)
KEYWORD_PHRASINGS = (
    "Recommend the most popular item described by: {query}.",
    "Which item about {query} do users choose most? Answer with its SID.",
)

Facet = tuple[str, str]  # (label, value)


def item_facets(attributes: dict, fields: dict[str, str] = QUERY_FIELDS) -> list[Facet]:
    """The item's (label, value) facets, deduplicated, in field order; lists give one facet per value."""
    facets: list[Facet] = []
    for name, label in fields.items():
        value = attributes.get(name)
        values: Iterable = value if isinstance(value, list) else [value]
        for v in values:
            if v is None or isinstance(v, (bool, dict, list)):
                continue
            text = " ".join(str(v).split())
            if text and (label, text) not in facets:
                facets.append((label, text))
    return facets


def item_queries(facets: list[Facet]) -> list[tuple[Facet, ...]]:
    """Single facets, then pairs of facets with different labels."""
    pairs = [(a, b) for a, b in itertools.combinations(facets, 2) if a[0] != b[0]]
    return [(f,) for f in facets] + pairs


def facet_text(query: tuple[Facet, ...]) -> str:
    return "; ".join(f"{label}: {value}" for label, value in query)


def _most_popular(context: TaskContext, groups: Iterable[tuple[str, Iterable[str]]]) -> dict[str, str]:
    """Query text -> its most popular item; `groups` yields (query text, matching items in catalog order)."""
    best: dict[str, str] = {}
    for text, items in groups:
        for item in items:
            if text not in best or context.popularity[item] > context.popularity[best[text]]:
                best[text] = item
    return best


def query_sources(context: TaskContext) -> list[tuple[str, str, str]]:
    """(kind "facet" or "keywords", query text, answer item id): facet queries first, in catalog order."""

    def compute() -> list[tuple[str, str, str]]:
        by_facets = _most_popular(context, (
            (facet_text(query), [item])
            for item in context.item_ids
            for query in item_queries(item_facets(context.dataset.items[item].attributes))
        ))
        rows = [("facet", text, item) for text, item in by_facets.items()]
        rows += [("keywords", text, item) for text, item in _keyword_answers(context).items()]
        return rows

    return context.memo("query_sources", compute)


def _keyword_answers(context: TaskContext) -> dict[str, str]:
    """Keyword text of each level-0 token and each prefix -> the most popular item under it."""
    index = context.index
    described: dict[str, list[str]] = {
        t: context.token_keywords[t] for t in index.level_tokens(0) if t in context.token_keywords
    }
    described.update(context.prefix_keywords)
    texts = [", ".join(words) for words in described.values()]
    shared = _shared(texts)
    members: dict[str, list[str]] = {key: [] for key in described}
    for item in context.item_ids:
        tokens = index.tokens(item)
        for depth in range(1, index.num_levels):
            key = "".join(tokens[:depth])
            if key in members:
                members[key].append(item)
    groups = ((text, members[key]) for key, text in zip(described, texts, strict=True) if text not in shared)
    return _most_popular(context, groups)


def _shared(texts: list[str]) -> set[str]:
    """The texts that occur more than once."""
    seen: set[str] = set()
    shared: set[str] = set()
    for text in texts:
        (shared if text in seen else seen).add(text)
    return shared


def render_query_to_sid(context: TaskContext, i: int, rng: random.Random) -> tuple[str, str]:
    kind, text, item = query_sources(context)[i]
    phrasings = FACET_PHRASINGS if kind == "facet" else KEYWORD_PHRASINGS
    return phrase(rng, phrasings, query=text), context.index.sid(item)


QUERY_TASKS = (
    TaskSpec("query_to_sid", "a facet or keyword query -> the SID of the most popular matching item",
             lambda context: len(query_sources(context)), render_query_to_sid),
)
