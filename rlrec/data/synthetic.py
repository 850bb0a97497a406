"""A small synthetic catalog and interaction log, for tests and examples that must not depend on downloads.

Items get short readable titles and categories (so they embed like real ones); users draw items
with a popularity skew, one per time step, so k-core filtering and cold targets behave as on real
data. Everything is a pure function of the seed.
"""

from __future__ import annotations

import random

from rlrec.data.raw import Interaction, RawData, item_text
from rlrec.data.schema import Item, PreparedDataset

COLORS = ["red", "blue", "green", "black", "white", "yellow", "purple", "grey"]
KINDS = ["pen", "notebook", "stapler", "folder", "marker", "tape", "binder", "lamp", "chair", "desk"]
CATEGORIES = ["Office Products", "School Supplies", "Furniture", "Writing", "Paper", "Lighting"]
BRANDS = ["Acme", "Globex", "Initech", "Umbrella", "Hooli"]
START_TIME = 1_500_000_000


def synthetic_items(num_items: int, seed: int = 0) -> dict[str, Item]:
    """`num_items` items with ids `i0`, `i1`, ... and titles such as "Acme red stapler 17"."""
    rng = random.Random(seed)
    items = {}
    for i in range(num_items):
        brand, color, kind = rng.choice(BRANDS), rng.choice(COLORS), rng.choice(KINDS)
        title = f"{brand} {color} {kind} {i}"
        categories = [CATEGORIES[0], rng.choice(CATEGORIES[1:])]
        items[f"i{i}"] = Item(item_id=f"i{i}", title=title,
                              text=item_text(title, categories=categories, brand=brand),
                              attributes={"categories": categories, "brand": brand})
    return items


def synthetic_interactions(num_users: int, items: list[str], *, min_length: int = 5, max_length: int = 15,
                           seed: int = 0) -> list[Interaction]:
    """Each user `u<k>` meets `min_length..max_length` distinct items, popular ones more often, in time order."""
    rng = random.Random(seed)
    weights = [1.0 / (rank + 1) ** 0.8 for rank in range(len(items))]
    interactions = []
    for u in range(num_users):
        length = min(rng.randint(min_length, max_length), len(items))
        chosen: list[str] = []
        seen: set[str] = set()
        while len(chosen) < length:
            item = rng.choices(items, weights=weights)[0]
            if item not in seen:
                seen.add(item)
                chosen.append(item)
        t = START_TIME + rng.randint(0, 10**6)
        for item in chosen:
            t += rng.randint(60, 86_400)
            interactions.append(Interaction(f"u{u}", item, t, float(rng.randint(1, 5))))
    return interactions


def synthetic_raw(num_users: int = 200, num_items: int = 300, *, seed: int = 0) -> RawData:
    """Catalog plus interactions in the common raw form, ready for `rlrec.data.pipeline.process_raw`."""
    items = synthetic_items(num_items, seed)
    interactions = synthetic_interactions(num_users, list(items), seed=seed)
    raw_counts = {
        "users": num_users,
        "items": len({x.item_id for x in interactions}),
        "interactions": len(interactions),
        "catalog_items": len(items),
    }
    return RawData(items=items, interactions=interactions, raw_counts=raw_counts, files=["<synthetic>"])


def synthetic_dataset(num_users: int = 200, num_items: int = 300, *, seed: int = 0,
                      **config_fields) -> PreparedDataset:
    """A prepared dataset in memory (k-core, leave-one-out, cold flags), e.g. for another stage's tests.

    `config_fields` set `PrepareConfig` fields (`user_k_core`, `history_cut`, ...).
    """
    from rlrec.data.config import PrepareConfig
    from rlrec.data.pipeline import process_raw

    config = PrepareConfig(**{"output_dir": "<memory>", **config_fields})
    return process_raw(synthetic_raw(num_users, num_items, seed=seed), config)
