"""What a reward is built from (`RewardContext`), and how it reads one batch of completions.

GRPOTrainer calls every reward as `f(prompts=, completions=, completion_ids=, **kw)`: `kw` holds each dataset
column repeated per generation (`target`, `target_sid`), the rollout's extra fields (`item_id`, `beam_rank`) and
the trainer's hooks (`trainer_state`, `log_metric`, `log_extra`). Rewards that need more than that - the SID
index to read codes, item text embeddings for cosine similarity - are made by a factory from a `RewardContext`,
built once per run, so the reward itself stays a plain function of the batch.

The helpers below are the one place that decides what a completion names: the rollout's `item_id` when it is
there (constrained beam search already knows which item each beam is), else the first SID in the completion's
text, parsed by `SIDIndex.parse`. A completion that names no item is `None` for every reward, which `checked`
turns into the configured penalty and counts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from rlrec.data.feedback import UserRatings
from rlrec.sid.embeddings import l2_normalize
from rlrec.sid.index import SIDIndex
from rlrec.tasks.reward_batch import ITEM_ID, TARGET, TARGET_SID
from rlrec.utils.errors import ConfigError

RewardFunc = Callable[..., list[float | None]]
F = TypeVar("F", bound=Callable[..., RewardFunc])

FACTORY_MARK = "__rlrec_reward_factory__"


def reward_factory(factory: F) -> F:
    """Mark `factory(context, **params) -> reward_fn` as a factory, so `load_rewards` calls it with the context.

    A recipe may name user code by `package.module:function`; a plain reward is used as-is, a marked factory is
    called with the run's `RewardContext` and the recipe's params. An explicit mark (not a guess from the
    signature) keeps a reward whose first argument happens to be called `context` from being mistaken for one.
    """
    setattr(factory, FACTORY_MARK, True)
    return factory


def is_reward_factory(obj: object) -> bool:
    return bool(getattr(obj, FACTORY_MARK, False))


@dataclass
class RewardContext:
    """Run-wide inputs of the reward factories; every field is optional, a reward that needs one says so.

    - `index`: the SID index (item ↔ codes ↔ tokens), to parse completions and compare codes.
    - `item_embeddings`: item text embeddings, either `{item_id: vector}` or an `(n, d)` array whose rows follow
      `item_embedding_ids` (default: `index.item_ids`, the order `rlrec sid` writes its embeddings in).
    - `invalid_penalty`: the score of a completion a reward cannot score (no item, malformed, an exception);
      a reward's `invalid_penalty` param overrides it.
    - `num_generations`: completions per prompt (GRPOConfig's), for rewards that score a group together.
    - `item_popularity`: train interactions per item (`rlrec.data.popularity.item_popularity`), for the rewards
      that steer away from the head (`novelty`, `long_tail`).
    - `user_ratings`: each user's rated train events in time order (`rlrec.data.feedback.UserRatings`), for
      the `rating` reward.
    """

    index: SIDIndex | None = None
    item_embeddings: Mapping[str, np.ndarray] | np.ndarray | None = None
    item_embedding_ids: Sequence[str] | None = None
    invalid_penalty: float = 0.0
    num_generations: int | None = None
    item_popularity: Mapping[str, int] | None = None
    user_ratings: UserRatings | None = None

    def require_user_ratings(self, reward: str) -> UserRatings:
        if self.user_ratings is None:
            raise ConfigError(f"reward {reward!r} needs the users' ratings: build its RewardContext with "
                              "user_ratings= (rlrec grpo and rlrec rewards read them from a dataset_dir prepared "
                              "from rated data)")
        return self.user_ratings

    def require_popularity(self, reward: str) -> Mapping[str, int]:
        if not self.item_popularity:
            raise ConfigError(f"reward {reward!r} needs the train popularity of the items: build its RewardContext "
                              "with item_popularity= (rlrec grpo and rlrec rewards read it from dataset_dir)")
        return self.item_popularity

    def require_index(self, reward: str) -> SIDIndex:
        if self.index is None:
            raise ConfigError(f"reward {reward!r} needs the SID index: build its RewardContext with index=")
        return self.index

    def embedding_table(self, reward: str) -> tuple[dict[str, int], np.ndarray]:
        """`({item_id: row}, unit-norm float32 matrix)` from `item_embeddings`, checked once when a reward is built."""
        emb = self.item_embeddings
        if emb is None:
            raise ConfigError(
                f"reward {reward!r} needs item text embeddings: build its RewardContext with item_embeddings="
            )
        if isinstance(emb, Mapping):
            ids = [str(k) for k in emb]
            matrix = np.stack([np.asarray(v, dtype=np.float32).reshape(-1) for v in emb.values()]) if ids else None
        else:
            matrix = np.asarray(emb, dtype=np.float32)
            if self.item_embedding_ids is not None:
                ids = [str(i) for i in self.item_embedding_ids]
            elif self.index is not None:
                ids = self.index.item_ids
            else:
                raise ConfigError(
                    f"reward {reward!r}: item_embeddings is an array; give item_embedding_ids (or the index) "
                    "to say which item each row is"
                )
        if matrix is None or matrix.ndim != 2 or matrix.shape[0] != len(ids) or matrix.shape[1] == 0:
            shape = None if matrix is None else matrix.shape
            raise ConfigError(
                f"reward {reward!r}: item_embeddings of shape {shape}, expected ({len(ids)} items, dim > 0)"
            )
        if not np.isfinite(matrix).all():
            raise ConfigError(f"reward {reward!r}: item_embeddings hold NaN or infinite values")
        # A zero vector has no direction: it stays zero and scores cosine 0 against anything.
        return {item: row for row, item in enumerate(ids)}, l2_normalize(matrix)


# -- reading one batch -------------------------------------------------------------------------------------------


def completion_text(completion: Any) -> str | None:
    """The text of one completion: a string, or TRL's conversational `[{"role": "assistant", "content": ...}]`.

    Content given as parts (`[{"type": "text", "text": ...}]`) is joined. Anything else is None (malformed).
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        completion = [completion]
    if not isinstance(completion, Sequence) or isinstance(completion, (bytes, bytearray)) or not completion:
        return None
    messages = [m for m in completion if isinstance(m, Mapping)]
    if len(messages) != len(completion):
        return None
    assistant = [m for m in messages if m.get("role", "assistant") == "assistant"] or messages
    content = assistant[-1].get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence) and not isinstance(content, (bytes, bytearray)):
        parts = [p.get("text") for p in content if isinstance(p, Mapping)]
        if parts and all(isinstance(p, str) for p in parts):
            return "".join(parts)
    return None


def column(kwargs: Mapping[str, Any], name: str, n: int) -> list[Any] | None:
    """Column `name` of the batch as a list of `n` values, or None when absent.

    A scalar (a rollout may return one value for the whole batch) is repeated; a list of another length is a
    wiring bug upstream, so it raises instead of silently pairing values with the wrong completions.
    """
    if name not in kwargs or kwargs[name] is None:
        return None
    values = kwargs[name]
    if hasattr(values, "tolist") and getattr(values, "ndim", 0) > 0:  # a numpy array or torch tensor
        values = values.tolist()
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        return [values] * n
    values = list(values)
    if len(values) != n:
        raise ConfigError(f"reward input column {name!r} has {len(values)} values for {n} completions")
    return values


def _item_or_none(value: Any) -> str | None:
    if value is None or isinstance(value, float) and np.isnan(value):
        return None
    return str(value)


def candidate_items(completions: Sequence[Any], kwargs: Mapping[str, Any], index: SIDIndex | None) -> list[str | None]:
    """The item each completion names, or None: the rollout's `item_id`, else the first SID parsed from the text.

    Without `item_id` and without an index nothing can be read, and every completion is None.
    """
    n = len(completions)
    ids = column(kwargs, ITEM_ID, n)
    if ids is not None:
        return [_item_or_none(i) for i in ids]
    if index is None:
        return [None] * n
    return [index.parse(completion_text(c)) for c in completions]


def target_items(n: int, kwargs: Mapping[str, Any], index: SIDIndex | None) -> list[str | None]:
    """Each completion's target item: the `target` column, else `target_sid` parsed with the index."""
    targets = column(kwargs, TARGET, n)
    if targets is not None:
        return [_item_or_none(t) for t in targets]
    sids = column(kwargs, TARGET_SID, n)
    if sids is None or index is None:
        return [None] * n
    return [index.parse(s) for s in sids]


def normalize_sid(text: Any) -> str | None:
    """SID text without whitespace (tokenizers may decode `<a_1> <b_2>`), for comparisons without an index."""
    if not isinstance(text, str):
        return None
    text = "".join(text.split()).strip("\"'")
    return text or None
