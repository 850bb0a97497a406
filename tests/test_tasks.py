"""SFT tasks: every answer is derivable from the data; mixtures honour weights, counts and seeds."""

from __future__ import annotations

import logging
import random
import re

import numpy as np
import pytest

from rlrec.data.synthetic import synthetic_dataset
from rlrec.evaluation.groups import item_popularity
from rlrec.sid.index import SIDIndex
from rlrec.tasks import TASKS, TaskContext, build_mixture, mixture_summary, plan_counts
from rlrec.tasks.prompts import NEXT_ITEM_PHRASINGS, next_item_prompt
from rlrec.tasks.query import item_facets, item_queries
from rlrec.utils.errors import ConfigError, DataError

SID = re.compile(r"(?:<[a-z]_\d+>){3}")


def make_index(item_ids: list[str], sizes: tuple[int, ...] = (4, 5, 8)) -> SIDIndex:
    """A collision-free index: item k gets the mixed-radix digits of k (level 0 varies fastest)."""
    codes = []
    for k in range(len(item_ids)):
        row = []
        for size in sizes:
            row.append(k % size)
            k //= size
        codes.append(row)
    return SIDIndex(item_ids, np.array(codes), list(sizes))


@pytest.fixture(scope="module")
def dataset():
    return synthetic_dataset(60, 80, seed=0)


@pytest.fixture(scope="module")
def context(dataset) -> TaskContext:
    return TaskContext.build(dataset, make_index(list(dataset.items)))


def natural(context: TaskContext, task: str, seed: int = 0) -> list[dict]:
    return TASKS[task].examples(context, random.Random(seed))


def text(row: dict) -> tuple[str, str]:
    assert [m["role"] for m in row["prompt"]] == ["user"]
    assert [m["role"] for m in row["completion"]] == ["assistant"]
    return row["prompt"][0]["content"], row["completion"][0]["content"]


# -- context ----------------------------------------------------------------------------------------------------


def test_context_computes_keywords_and_popularity(dataset, context):
    index = context.index
    assert index.keywords == {}  # the caller's index is left alone
    used = {index.token(level, c) for level in range(3) for c in np.unique(index.codes[:, level])}
    assert set(context.token_keywords) == used
    assert all(1 <= len(w) <= 5 for w in context.token_keywords.values())
    prefixes = {"".join(index.tokens(item)[:2]) for item in dataset.items}
    assert set(context.prefix_keywords) == prefixes  # depth 2 only for 3 levels
    assert context.popularity == item_popularity(dataset.train)
    assert context.item_ids == list(dataset.items)


def test_context_prefers_keywords_stored_in_the_index(dataset):
    index = make_index(list(dataset.items))
    index.keywords = {"<a_0>": ["alpha", "beta"], "<b_1>": ["gamma"]}
    context = TaskContext.build(dataset, index, keyword_top_k=2)
    assert context.token_keywords == {"<a_0>": ["alpha", "beta"], "<b_1>": ["gamma"]}
    assert all(len(w) <= 2 for w in context.prefix_keywords.values())


def test_index_from_another_dataset_is_refused(dataset):
    other = make_index([f"x{i}" for i in range(len(dataset.items))])
    with pytest.raises(DataError, match=rf"covers 0 of the {len(dataset.items)} items .*built from this dataset"):
        TaskContext.build(dataset, other)
    partial = make_index(list(dataset.items)[1:])
    with pytest.raises(DataError, match=rf"covers {len(dataset.items) - 1} of .*missing: 'i"):
        TaskContext.build(dataset, partial)


@pytest.mark.parametrize("kwargs", [{"keyword_top_k": 0}, {"num_candidates": 1}, {"max_history": 0}])
def test_context_rejects_bad_settings(dataset, kwargs):
    with pytest.raises(ConfigError, match=next(iter(kwargs))):
        TaskContext.build(dataset, make_index(list(dataset.items)), **kwargs)


# -- tasks ------------------------------------------------------------------------------------------------------


def test_every_task_has_examples_in_the_chat_format(context):
    for name, spec in TASKS.items():
        rows = natural(context, name)
        assert len(rows) == spec.size(context) > 0, name
        for row in rows:
            prompt, answer = text(row)
            assert row["task"] == name and prompt and answer


def test_next_item_uses_the_evaluation_prompt(dataset, context):
    rows = natural(context, "next_item")
    used = set()
    for ex, row in zip(dataset.train, rows, strict=True):
        history = [context.index.sid(i) for i in ex.history]
        options = [next_item_prompt(history, p) for p in range(len(NEXT_ITEM_PHRASINGS))]
        assert row["prompt"] in options
        used.add(options.index(row["prompt"]))
        assert text(row)[1] == context.index.sid(ex.target)
    assert used == set(range(len(NEXT_ITEM_PHRASINGS)))  # phrasings rotate, 0 (evaluation's) among them


def test_max_history_cuts_sid_histories(dataset):
    context = TaskContext.build(dataset, make_index(list(dataset.items)), max_history=2)
    for ex, row in zip(dataset.train, natural(context, "next_item"), strict=True):
        assert SID.findall(text(row)[0]) == [context.index.sid(i) for i in ex.history[-2:]]


def test_next_item_title(dataset, context):
    for ex, row in zip(dataset.train, natural(context, "next_item_title"), strict=True):
        prompt, answer = text(row)
        assert answer == context.index.sid(ex.target)
        assert all(f'"{context.title(i)}"' in prompt for i in ex.history[-context.max_title_history:])
        assert not SID.search(prompt)


def test_negative_yes_no(dataset, context):
    rows = natural(context, "negative_yes_no")
    assert len(rows) == 2 * len(dataset.train)
    for i, row in enumerate(rows):
        ex = dataset.train[i // 2]
        prompt, answer = text(row)
        *history, candidate = SID.findall(prompt)
        assert history == [context.index.sid(h) for h in ex.history]
        item = context.index.parse(candidate)
        if i % 2 == 0:
            assert (answer, item) == ("Yes", ex.target)
        else:
            assert answer == "No" and item != ex.target and item not in ex.history


def test_pick_positive(dataset, context):
    n = context.num_candidates
    positions = []
    for ex, row in zip(dataset.train, natural(context, "pick_positive"), strict=True):
        prompt, answer = text(row)
        sids = SID.findall(prompt)
        history, candidates = sids[:-n], sids[-n:]
        assert history == [context.index.sid(h) for h in ex.history]
        assert len(set(candidates)) == n and answer in candidates
        assert answer == context.index.sid(ex.target)
        assert not {context.index.parse(c) for c in candidates if c != answer} & set(ex.history)
        positions.append(candidates.index(answer))
    assert len(set(positions)) == n  # the target is not always in the same place


def test_title_and_sid_alignment(dataset, context):
    for row in natural(context, "sid_to_title"):
        prompt, answer = text(row)
        assert answer == context.title(context.index.parse(prompt))
    by_title: dict[str, list[str]] = {}
    for item in dataset.items:
        by_title.setdefault(context.title(item), []).append(item)
    rows = natural(context, "title_to_sid")
    assert len(rows) == sum(len(items) == 1 for items in by_title.values())
    for row in rows:
        prompt, answer = text(row)
        title = re.search(r'"(.*)"', prompt).group(1)
        assert by_title[title] == [context.index.parse(answer)]


def test_ts_align_token_both_directions(context):
    keywords = context.token_keywords
    described, named = 0, 0
    for row in natural(context, "ts_align_token"):
        prompt, answer = text(row)
        tokens = re.findall(r"<[a-z]_\d+>", prompt)
        if tokens:  # token -> keywords
            (token,) = tokens
            assert answer == ", ".join(keywords[token])
            described += 1
        else:  # keywords -> token, at the level the prompt names
            level = int(re.search(r"level-(\d+)", prompt).group(1)) - 1
            assert answer in context.index.level_tokens(level)
            assert ", ".join(keywords[answer]) in prompt
            matches = [t for t in context.index.level_tokens(level) if keywords.get(t) == keywords[answer]]
            assert matches == [answer]
            named += 1
    assert described == len(keywords) and 0 < named <= described


def test_ts_align_prefix_both_directions(context):
    keywords = context.prefix_keywords
    described, named = 0, 0
    for row in natural(context, "ts_align_prefix"):
        prompt, answer = text(row)
        prefix = re.search(r"(?:<[a-z]_\d+>)+", prompt)
        if prefix:
            assert answer == ", ".join(keywords[prefix.group(0)])
            described += 1
        else:
            assert ", ".join(keywords[answer]) in prompt and answer.count("<") == 2
            named += 1
    assert described == len(keywords) and named > 0


def test_ts_align_token_description_renders_the_index_descriptions(dataset):
    """TS-Rec's TS-Align: token -> its description (the index's sentence, else the template of its keywords), and
    the description -> the token at the level the prompt names; a sentence shared within a level is not asked."""
    from rlrec.init.keywords import describe_keywords

    index = make_index(list(dataset.items))
    index.keywords = {"<a_0>": ["alpha"], "<a_1>": ["beta", "gamma"], "<b_0>": ["delta"], "<b_1>": ["eps"]}
    index.descriptions = {"<a_0>": "Tools for the workshop, sold one by one.", "<b_0>": "Shared sentence.",
                          "<b_1>": "Shared sentence."}
    context = TaskContext.build(dataset, index)
    assert context.token_descriptions == {"<a_0>": "Tools for the workshop, sold one by one.",
                                          "<a_1>": describe_keywords(["beta", "gamma"]),
                                          "<b_0>": "Shared sentence.", "<b_1>": "Shared sentence."}
    described, named = {}, {}
    for row in natural(context, "ts_align_token_description"):
        prompt, answer = text(row)
        tokens = re.findall(r"<[a-z]_\d+>", prompt)
        if tokens:  # token -> description
            (token,) = tokens
            assert "one sentence" in prompt
            described[token] = answer
        else:  # description -> token
            level = int(re.search(r"level-(\d+)", prompt).group(1)) - 1
            assert answer in index.level_tokens(level) and f'"{context.token_descriptions[answer]}"' in prompt
            named[answer] = prompt
    assert described == context.token_descriptions
    assert set(named) == {"<a_0>", "<a_1>"}  # <b_0> and <b_1> share their sentence


def test_ts_align_prefix_description_templates_prefix_keywords(context):
    from rlrec.init.keywords import describe_keywords

    assert context.prefix_descriptions == {p: describe_keywords(w) for p, w in context.prefix_keywords.items()}
    described = 0
    for row in natural(context, "ts_align_prefix_description"):
        prompt, answer = text(row)
        prefix = re.search(r"(?:<[a-z]_\d+>)+", prompt)
        if prefix:
            assert answer == context.prefix_descriptions[prefix.group(0)]
            described += 1
        else:
            assert answer.count("<") == 2 and f'"{context.prefix_descriptions[answer]}"' in prompt
    assert described == len(context.prefix_descriptions)


def test_default_mixture_uses_the_description_tasks():
    from rlrec.training.config import DEFAULT_TASKS

    assert {"ts_align_token_description", "ts_align_prefix_description"} <= set(DEFAULT_TASKS)
    assert not {"ts_align_token", "ts_align_prefix"} & set(DEFAULT_TASKS)  # the keyword variants are opt-in


def test_query_to_sid_answers_the_most_popular_match(dataset, context):
    def most_popular(items):
        return max(items, key=lambda i: (context.popularity[i], -context.item_ids.index(i)))

    kinds = set()
    for row in natural(context, "query_to_sid"):
        prompt, answer = text(row)
        facet_query = re.search(r"item with (.*?)(?:\.$| do users)", prompt)
        if facet_query:
            facets = [tuple(part.split(": ", 1)) for part in facet_query.group(1).split("; ")]
            matching = [i for i in dataset.items if set(facets) <= set(item_facets(dataset.items[i].attributes))]
            kinds.add("facet")
        else:
            words = re.search(r"(?:described by: |about )(.*?)(?:\.$| do users)", prompt).group(1)
            clusters = [k for k, w in [*context.token_keywords.items(), *context.prefix_keywords.items()]
                        if ", ".join(w) == words and (k.count("<") > 1 or k.startswith("<a_"))]
            assert len(clusters) == 1
            matching = [i for i in dataset.items if context.index.sid(i).startswith(clusters[0])]
            kinds.add("keywords")
        assert answer == context.index.sid(most_popular(matching))
    assert kinds == {"facet", "keywords"}


def test_item_facets_and_queries():
    facets = item_facets({"genres": ["Comedy", "Drama", ""], "year": 1995, "brand": None, "other": "x"})
    assert facets == [("genre", "Comedy"), ("genre", "Drama"), ("year", "1995")]
    queries = item_queries(facets)
    assert (("genre", "Comedy"), ("year", "1995")) in queries
    assert (("genre", "Comedy"), ("genre", "Drama")) not in queries  # pairs span two fields
    assert item_facets({"categories": ["Books"], "main_category": "Books"}) == [("category", "Books")]


def test_two_level_index_has_no_prefix_task(dataset):
    context = TaskContext.build(dataset, make_index(list(dataset.items), sizes=(8, 16)))
    assert TASKS["ts_align_prefix"].size(context) == 0
    assert TASKS["ts_align_token"].size(context) > 0
    with pytest.raises(ConfigError, match="tasks: task 'ts_align_prefix' has no examples"):
        build_mixture(context, {"next_item": 1.0, "ts_align_prefix": 0.5})


# -- mixtures ---------------------------------------------------------------------------------------------------


def rows_of(ds) -> list[tuple]:
    return [(r["task"], r["prompt"][0]["content"], r["completion"][0]["content"]) for r in ds]


def test_mixture_proportions_of_num_examples(context):
    ds = build_mixture(context, {"next_item": 0.6, "ts_align_token": 0.3, "title_to_sid": 0.1}, num_examples=200)
    assert mixture_summary(ds) == {"next_item": 120, "title_to_sid": 20, "ts_align_token": 60}
    assert ds.column_names == ["prompt", "completion", "task"]
    assert [r["task"] for r in ds][:20] != sorted(r["task"] for r in ds)[:20]  # shuffled


def test_mixture_base_is_next_item_size_and_integers_are_counts(context):
    base = TASKS["next_item"].size(context)
    counts = plan_counts(context, {"next_item": 2.0, "pick_positive": 1.0, "sid_to_title": 7})
    assert counts["sid_to_title"] == 7
    assert counts["next_item"] + counts["pick_positive"] == base
    assert abs(counts["next_item"] - 2 * base / 3) <= 1
    ds = build_mixture(context, {"query_to_sid": 11, "sid_to_title": 5})
    assert mixture_summary(ds) == {"sid_to_title": 5, "query_to_sid": 11}


def test_mixture_zero_weight_task_is_left_out(context):
    ds = build_mixture(context, {"next_item": 1.0, "sid_to_title": 0.0}, num_examples=10)
    assert mixture_summary(ds) == {"next_item": 10}


def test_mixture_is_deterministic_per_seed(context):
    recipe = {"next_item": 0.5, "negative_yes_no": 0.3, "ts_align_prefix": 0.2}
    a = rows_of(build_mixture(context, recipe, num_examples=100, seed=3))
    assert a == rows_of(build_mixture(context, recipe, num_examples=100, seed=3))
    assert a != rows_of(build_mixture(context, recipe, num_examples=100, seed=4))


def test_adding_a_task_keeps_the_other_tasks_examples(context):
    alone = build_mixture(context, {"next_item": 30}, seed=1)
    mixed = build_mixture(context, {"next_item": 30, "sid_to_title": 10}, seed=1)
    assert sorted(rows_of(alone)) == sorted(r for r in rows_of(mixed) if r[0] == "next_item")


def test_mixture_repeats_small_tasks(context, caplog):
    size = TASKS["sid_to_title"].size(context)
    with caplog.at_level(logging.INFO, logger="rlrec.tasks.mixture"):
        ds = build_mixture(context, {"sid_to_title": 2 * size + 3})
    assert "sampling with replacement" in caplog.text
    counts: dict[str, int] = {}
    for _task, prompt, _ in rows_of(ds):
        sid = SID.search(prompt).group(0)
        counts[sid] = counts.get(sid, 0) + 1
    assert len(counts) == size and set(counts.values()) <= {2, 3}  # every item twice, three of them thrice


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        ({"next_itm": 1.0}, r"tasks: unknown task 'next_itm'; known tasks: next_item, .*query_to_sid"),
        ({"next_item": -1.0}, r"tasks: weight of 'next_item' is -1.0; expected a number >= 0"),
        ({"next_item": 0.0, "sid_to_title": 0}, r"tasks: the weights sum to zero"),
        ({"next_item": True}, r"tasks: weight of 'next_item' is True"),
        ({"next_item": "1"}, r"tasks: weight of 'next_item' is '1'"),
        ({"next_item": float("nan")}, r"tasks: weight of 'next_item' is nan"),
        ({}, r"tasks: expected a non-empty mapping"),
    ],
)
def test_mixture_rejects_bad_recipes(context, tasks, message):
    with pytest.raises(ConfigError, match=message):
        build_mixture(context, tasks)


def test_mixture_rejects_bad_num_examples(context):
    with pytest.raises(ConfigError, match="num_examples is -5"):
        build_mixture(context, {"next_item": 1.0}, num_examples=-5)
