"""Users' training sequences rebuilt from the train split (one example per position, see `rlrec.data.split`).

Learning from each train example separately would feed a user's prefix through a model once per
position (≈ max_history times the work); learning from whole sequences, with a loss at every
position, sees each train target exactly once. Both SASRec and the co-occurrence embedding use this.
"""

from __future__ import annotations

from collections.abc import Iterable

from rlrec.data.schema import Example


def train_sequences(examples: Iterable[Example]) -> list[list[str]]:
    """Chain each user's examples, in the order given, into sequences `history + [target, target, ...]`.

    An example continues its user's open sequence when its history is a suffix of that sequence
    (histories are cut to `max_history`, so a long user's history is the last items only). Any other
    example (a user's first, or examples out of chronological order) starts a new sequence of its
    own `history + [target]`: each target is still predicted from its own history, only the
    history's inner positions get seen once more. Examples with an empty history are kept only as
    sequence starts (nothing precedes their target). Sequences come back in order of first appearance.
    """
    return [items for items, _ in rated_train_sequences(examples)]


def rated_train_sequences(examples: Iterable[Example]) -> list[tuple[list[str], list[float | None]]]:
    """`train_sequences` with each item's rating beside it (None where unrated), for SASRec on liked targets."""
    open_seqs: dict[str, tuple[list[str], list[float | None]]] = {}
    order: list[tuple[list[str], list[float | None]]] = []
    for ex in examples:
        seq = open_seqs.get(ex.user_id)
        history = ex.history
        if seq and history and len(history) <= len(seq[0]) and seq[0][len(seq[0]) - len(history):] == history:
            seq[0].append(ex.target)
            seq[1].append(ex.rating)
            continue
        ratings = list(ex.history_ratings) if ex.history_ratings is not None else [None] * len(history)
        seq = ([*history, ex.target], [*ratings, ex.rating])
        open_seqs[ex.user_id] = seq
        order.append(seq)
    return order
