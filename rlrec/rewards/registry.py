"""`REWARDS` by name, user rewards by `package.module:function`, and `load_rewards` that builds a recipe's list.

A recipe names its rewards with weights and params:

    rewards:
      - exact_match
      - {name: ranking, weight: 1.0}
      - {name: token_semantic, weight: 0.5, level_weights: [0.5, 0.3, 0.2], invalid_penalty: -0.1}
      - {name: my_pkg.rewards:length_penalty, weight: 0.1}

`parse_reward_recipe` splits that into specs, weights (GRPOConfig's `reward_weights`) and params;
`load_rewards(specs, context, params)` builds one checked reward per spec. Every registered entry is a factory
`factory(context, **params) -> reward_fn`; a dotted path may name a plain reward (used as-is) or a factory marked
with `@reward_factory` (called with the context and the params). `invalid_penalty` is accepted by every reward:
it is the score `checked` gives a completion the reward cannot score, instead of the context's default.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rlrec.data.feedback import FeedbackRule
from rlrec.rewards.checked import checked
from rlrec.rewards.context import RewardContext, RewardFunc, is_reward_factory
from rlrec.rewards.exact import exact_match
from rlrec.rewards.feedback import rating
from rlrec.rewards.format import valid_format
from rlrec.rewards.ranking import ndcg_lambda, ranking
from rlrec.rewards.semantic import semantic_cosine, token_semantic
from rlrec.rewards.steering import diversity, long_tail, novelty
from rlrec.utils.errors import ConfigError

RewardFactory = Callable[..., RewardFunc]

REWARDS: dict[str, RewardFactory] = {
    "exact_match": exact_match,
    "ranking": ranking,
    "ndcg_lambda": ndcg_lambda,
    "token_semantic": token_semantic,
    "semantic_cosine": semantic_cosine,
    "valid_format": valid_format,
    "novelty": novelty,
    "long_tail": long_tail,
    "diversity": diversity,
    "rating": rating,
}

# What a registered reward needs beyond the SID index, so a stage builds only that (`recipe_context`).
NEEDS_EMBEDDINGS = frozenset({"semantic_cosine", "diversity"})
NEEDS_POPULARITY = frozenset({"novelty", "long_tail"})
NEEDS_RATINGS = frozenset({"rating"})


def resolve_reward(spec: str) -> Callable[..., Any]:
    """The factory or reward function `spec` names: a registered name, or `package.module:attribute`."""
    if not isinstance(spec, str) or not spec.strip():
        raise ConfigError(f"reward {spec!r}: expected a reward name or 'package.module:function'")
    spec = spec.strip()
    if ":" not in spec:
        if spec in REWARDS:
            return REWARDS[spec]
        raise ConfigError(
            f"unknown reward {spec!r}; known rewards: {', '.join(sorted(REWARDS))} "
            "(or name your own as 'package.module:function')"
        )
    module_name, _, attr_path = spec.partition(":")
    if not module_name or not attr_path:
        raise ConfigError(f"reward {spec!r}: expected 'package.module:function'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(f"reward {spec!r}: cannot import module {module_name!r}: {err}") from err
    except Exception as err:  # user code that fails while importing
        raise ConfigError(f"reward {spec!r}: importing {module_name!r} failed: {type(err).__name__}: {err}") from err
    for attr in attr_path.split("."):
        if not hasattr(obj, attr):
            raise ConfigError(f"reward {spec!r}: module {module_name!r} has no attribute {attr_path!r}")
        obj = getattr(obj, attr)
    if not callable(obj):
        raise ConfigError(f"reward {spec!r}: {attr_path!r} is a {type(obj).__name__}, not a function")
    return obj


def _accepted_params(factory: Callable[..., Any]) -> set[str] | None:
    """The keyword params a factory takes after `context` (None: it takes any, through `**kwargs`)."""
    try:
        parameters = list(inspect.signature(factory).parameters.values())[1:]
    except (TypeError, ValueError):
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {p.name for p in parameters if p.kind in kinds}


def build_reward(spec: str, context: RewardContext, params: Mapping[str, Any] | None = None) -> RewardFunc:
    """One reward, built and wrapped by `checked`; unknown params raise a ConfigError naming the accepted ones."""
    target = resolve_reward(spec)
    params = dict(params or {})
    penalty = params.pop("invalid_penalty", context.invalid_penalty)
    if not isinstance(penalty, (int, float)) or isinstance(penalty, bool) or not math.isfinite(penalty):
        raise ConfigError(f"reward {spec!r}: invalid_penalty must be a finite number, got {penalty!r}")
    if is_reward_factory(target):
        accepted = _accepted_params(target)
        unknown = sorted(set(params) - accepted) if accepted is not None else []
        if unknown:
            known = ", ".join(sorted(accepted | {"invalid_penalty"})) if accepted is not None else ""
            raise ConfigError(f"reward {spec!r}: unknown params {unknown}; it accepts: {known}")
        try:
            fn = target(context, **params)
        except ConfigError:
            raise
        except TypeError as err:
            raise ConfigError(f"reward {spec!r}: bad params {params}: {err}") from err
        if not callable(fn):
            raise ConfigError(f"reward {spec!r}: its factory returned a {type(fn).__name__}, not a function")
    else:
        if params:
            raise ConfigError(
                f"reward {spec!r} is a plain reward function and takes no params (got {sorted(params)}); "
                "mark a factory with @rlrec.rewards.reward_factory to configure it"
            )
        fn = target
    return checked(fn, penalty=float(penalty), source=spec.strip())


def load_rewards(
    specs: Sequence[str],
    context: RewardContext | None = None,
    params: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[RewardFunc]:
    """The rewards `specs` name, in order, each wrapped by `checked`; `params` maps a spec to its params."""
    if isinstance(specs, str):
        specs = [specs]
    if not specs:
        raise ConfigError("rewards: the list is empty; name at least one reward")
    context = context or RewardContext()
    params = dict(params or {})
    stray = sorted(set(params) - set(specs))
    if stray:
        raise ConfigError(f"rewards: params given for {stray}, which are not in the reward list {list(specs)}")
    rewards: list[RewardFunc] = []
    for spec in specs:
        rewards.append(build_reward(spec, context, params.get(spec)))
    names = [fn.__name__ for fn in rewards]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"rewards: {duplicates} named twice (each reward is logged under its own name)")
    return rewards


@dataclass
class RewardRecipe:
    """A recipe's `rewards:` list split for `load_rewards` (specs, params) and GRPOConfig (`reward_weights`)."""

    specs: list[str] = field(default_factory=list)
    weights: list[float] = field(default_factory=list)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)


def parse_reward_recipe(entries: Sequence[str | Mapping[str, Any]]) -> RewardRecipe:
    """Read `[name | {name, weight=1.0, **params}, ...]`; errors name the entry and what was expected."""
    if isinstance(entries, (str, Mapping)) or not isinstance(entries, Sequence):
        raise ConfigError(
            f"rewards: expected a list of reward names or {{name, weight, ...}} entries, got {entries!r}"
        )
    recipe = RewardRecipe()
    for i, entry in enumerate(entries):
        if isinstance(entry, str):
            entry = {"name": entry}
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise ConfigError(f"rewards[{i}]: expected a reward name or a mapping with 'name', got {entry!r}")
        entry = dict(entry)
        name = entry.pop("name").strip()
        weight = entry.pop("weight", 1.0)
        if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not math.isfinite(weight):
            raise ConfigError(f"rewards[{i}] ({name}): weight must be a finite number, got {weight!r}")
        if name in recipe.specs:
            raise ConfigError(f"rewards[{i}]: {name!r} is listed twice")
        recipe.specs.append(name)
        recipe.weights.append(float(weight))
        if entry:
            recipe.params[name] = entry
    return recipe


def recipe_context(specs: Sequence[str], index: Any, *, train: Sequence[Any] | None, invalid_penalty: float,
                   num_generations: int | None, feedback: FeedbackRule | None = None) -> RewardContext:
    """The `RewardContext` of a recipe's rewards: the index always, the item embeddings, the train popularity and
    the users' ratings (`feedback`: the dataset's rule) only when a listed reward needs them (a user reward by
    dotted path gets all that is at hand)."""
    from rlrec.data.feedback import UserRatings
    from rlrec.data.popularity import item_popularity
    from rlrec.rewards.semantic import index_embeddings

    custom = any(":" in spec for spec in specs)
    embeddings = None
    if NEEDS_EMBEDDINGS & set(specs) or (custom and index.embeddings is not None):
        embeddings = index_embeddings(index)
    popularity = None
    if NEEDS_POPULARITY & set(specs) or custom:
        if train is None and NEEDS_POPULARITY & set(specs):
            raise ConfigError(f"rewards {sorted(NEEDS_POPULARITY & set(specs))} need the train split's item "
                              "popularity: give dataset_dir")
        popularity = item_popularity(train) if train is not None else None
    ratings = None
    if NEEDS_RATINGS & set(specs) or custom:
        if (train is None or feedback is None) and NEEDS_RATINGS & set(specs):
            raise ConfigError(f"rewards {sorted(NEEDS_RATINGS & set(specs))} need the users' ratings: give a "
                              "dataset_dir prepared from rated data (its manifest.json has no `ratings`)")
        ratings = UserRatings.from_train(train, feedback) if train is not None and feedback is not None else None
    return RewardContext(index=index, item_embeddings=embeddings, invalid_penalty=invalid_penalty,
                         num_generations=num_generations, item_popularity=popularity, user_ratings=ratings)


# MiniOneRec's rewards: what `rlrec grpo` trains with when a recipe names none.
DEFAULT_REWARDS: list[Any] = ["exact_match", "ranking"]


def parse_rewards_field(value: Any) -> list[Any] | None:
    """A recipe's `rewards`: a YAML list, or on the command line JSON or comma-separated names."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            value = [name.strip() for name in value.split(",") if name.strip()]
    return value
