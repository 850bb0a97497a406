"""Collision resolution strategies and the quality figures."""

import math

import numpy as np
import pytest

from rlrec.sid.collisions import colliding_groups, rank_within_groups, resolve_collisions
from rlrec.sid.config import SIDConfig
from rlrec.sid.metrics import format_quality, level_usage, sid_quality
from rlrec.sid.quantizers import get_quantizer
from rlrec.utils.errors import ConfigError

# Items 0, 2, 3 share (0, 1, 2); items 4 and 5 share (1, 0, 0); item 1 is alone.
CODES = np.array([[0, 1, 2], [0, 1, 3], [0, 1, 2], [0, 1, 2], [1, 0, 0], [1, 0, 0]])
SIZES = [2, 2, 4]


def unique_rows(codes: np.ndarray) -> bool:
    return len({tuple(r) for r in codes.tolist()}) == len(codes)


def distances_from(table: np.ndarray):
    return lambda rows: table[rows]


def test_groups_and_ranks():
    groups = colliding_groups(CODES)
    assert [g.tolist() for g in groups] == [[0, 2, 3], [4, 5]]
    assert rank_within_groups(CODES).tolist() == [0, 0, 1, 2, 0, 1]


def test_append_level_numbers_the_colliding_items():
    result = resolve_collisions(CODES, SIZES, "append_level")
    assert result.codes[:, -1].tolist() == [0, 0, 1, 2, 0, 1]
    assert result.codebook_sizes == [2, 2, 4, 3] and result.extra_level_size == 3
    assert unique_rows(result.codes)


def test_append_level_adds_nothing_when_codes_are_unique():
    codes = np.array([[0, 1], [1, 0]])
    result = resolve_collisions(codes, [2, 2], "append_level")
    assert result.codes.shape == (2, 2) and result.extra_level_size is None


def test_reassign_moves_all_but_the_closest_item_to_the_nearest_free_code():
    table = np.array(
        [
            [0.0, 0.0, 0.5, 9.0],  # item 0 on code 2
            [0.0, 0.0, 0.0, 0.0],
            [0.1, 3.0, 0.2, 9.0],  # item 2: closest to code 2, keeps it
            [5.0, 0.3, 0.9, 9.0],  # item 3: code 3 is taken by item 1 -> nearest free is 1
            [0.4, 0.7, 9.0, 9.0],  # item 4 on code 0 (prefix (1, 0))
            [0.1, 0.2, 9.0, 9.0],  # item 5: closer to code 0, keeps it
        ]
    )
    result = resolve_collisions(CODES, SIZES, "reassign", distances_from(table))
    assert result.codes.shape == (6, 3) and result.extra_level_size is None and result.moved == 3
    last = result.codes[:, -1].tolist()
    assert last[2] == 2 and last[5] == 0  # the closest items keep their codes
    assert last[4] == 1  # item 4: the nearest code other than its own
    assert {last[0], last[3]} == {0, 1} and last[1] == 3  # items 0 and 3 take the free codes 0 and 1
    assert (result.codes[:, :2] == CODES[:, :2]).all()  # prefixes never change
    assert unique_rows(result.codes)


def test_reassign_falls_back_to_an_extra_level_when_the_prefix_is_full():
    codes = np.array([[0, 0], [0, 0], [0, 0], [1, 0]])
    table = np.array([[0.0, 1.0], [0.5, 0.1], [0.2, 0.3], [0.0, 0.0]])
    result = resolve_collisions(codes, [2, 2], "reassign", distances_from(table))
    assert result.moved == 1 and result.extra_level_size == 2
    assert result.codebook_sizes == [2, 2, 2] and unique_rows(result.codes)


def test_none_accepts_unique_codes_and_refuses_collisions():
    assert resolve_collisions(CODES[[0, 1, 4]], SIZES, "none").codes.shape == (3, 3)
    with pytest.raises(ConfigError, match="5 items share.*2 groups"):
        resolve_collisions(CODES, SIZES, "none")
    with pytest.raises(ConfigError, match="collision='bogus'"):
        resolve_collisions(CODES, SIZES, "bogus")


@pytest.mark.parametrize("strategy", ["append_level", "reassign"])
@pytest.mark.parametrize("name", ["rkmeans", "rkmeans_balanced"])
def test_quantized_codes_are_unique_after_each_strategy(name, strategy):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 16)).astype(np.float32)
    x[100:150] = x[:50]  # exact duplicates always collide
    config = SIDConfig(num_levels=2, codebook_size=8, device="cpu", seed=0)
    quantizer = get_quantizer(name, config)
    codes = quantizer.fit_encode(x)
    result = resolve_collisions(codes, quantizer.codebook_sizes, strategy, quantizer.last_level_distances)
    assert unique_rows(result.codes) and result.codes.shape[0] == 200
    assert (result.codes < np.array(result.codebook_sizes)).all()


def test_quality_figures():
    quality = sid_quality(CODES, SIZES, resolve_collisions(CODES, SIZES, "append_level"))
    assert quality["collision_rate"] == round(5 / 6, 4) and quality["colliding_groups"] == 2
    assert quality["items_per_leaf"] == {"leaves": 3, "min": 1, "mean": 2.0, "max": 3}
    assert quality["levels"][0]["used"] == 2 and quality["levels"][2]["utilisation"] == 0.75
    assert quality["resolution"]["extra_level_size"] == 3 and quality["resolution"]["sid_tokens"] == 11
    table = format_quality(quality)
    assert "collision rate 83.33%" in table and "extra level of 3 codes" in table


def test_perplexity_is_codebook_size_when_uniform_and_one_when_degenerate():
    assert level_usage(np.arange(16), 16)["perplexity"] == 16.0
    assert level_usage(np.zeros(10, dtype=int), 16) == {
        "size": 16,
        "used": 1,
        "utilisation": 0.0625,
        "perplexity": 1.0,
    }
    half = level_usage(np.array([0, 1, 1, 1]), 4)["perplexity"]
    assert math.isclose(half, round(math.exp(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75))), 2))
