"""`RankingSpec`: saved with every model folder, read by everything that asks the model."""

import json

import pytest

from rlrec.ranking import SPEC_FILE, RankingSpec
from rlrec.utils.errors import DataError


def test_round_trip_keeps_fields_and_details(tmp_path):
    RankingSpec(max_history=7, num_beams=30, details={"num_levels": 3}).save(tmp_path)
    written = json.loads((tmp_path / SPEC_FILE).read_text())
    assert written == {"decoding": "constrained_beam_search", "max_history": 7, "num_beams": 30,
                       "num_levels": 3}
    spec = RankingSpec.load(tmp_path)
    assert (spec.max_history, spec.num_beams, spec.details) == (7, 30, {"num_levels": 3})


def test_folders_without_a_spec_read_their_manifest(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"stage": "sft", "prompt_max_history": 5}))
    assert RankingSpec.load(tmp_path) == RankingSpec(max_history=5)
    (tmp_path / "manifest.json").write_text(json.dumps({"stage": "setrec"}))
    assert RankingSpec.load(tmp_path).decoding == "setrec_grounding"
    assert RankingSpec.load(tmp_path / "nothing") == RankingSpec()


@pytest.mark.parametrize("values, message", [
    ({"decoding": "greedy"}, "decoding='greedy'"),
    ({"max_history": 0}, "max_history=0"),
    ({"num_beams": "ten"}, "num_beams='ten'"),
])
def test_a_bad_spec_names_the_file_and_the_field(tmp_path, values, message):
    (tmp_path / SPEC_FILE).write_text(json.dumps(values))
    with pytest.raises(DataError, match=f"{SPEC_FILE}: {message}"):
        RankingSpec.load(tmp_path)
