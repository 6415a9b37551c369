"""Property: mutated real records only ever raise mad_sim.errors classes."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mad_sim.data import load_scenarios
from mad_sim.errors import MadSimError

_FIXTURE_OK = [HealthCheck.function_scoped_fixture]  # the path fixtures are constant across examples


def _read_all(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"mutated{suffix}"
        path.write_bytes(data)
        try:
            for scenario in load_scenarios(path):
                scenario.validate()
        except MadSimError:
            pass  # the only allowed failure


mutation = st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8)


def _mutate(data: bytes, edits, cut) -> bytes:
    buf = bytearray(data)
    for pos, value in edits:
        buf[int(pos * len(buf))] = value
    return bytes(buf[: max(1, int(cut * len(buf)))]) if cut is not None else bytes(buf)


@settings(max_examples=60, deadline=None, suppress_health_check=_FIXTURE_OK)
@given(edits=mutation, cut=st.one_of(st.none(), st.floats(0, 1)))
def test_mutated_tfrecord_raises_only_our_errors(womd_still_path, edits, cut):
    _read_all(_mutate(womd_still_path.read_bytes(), edits, cut), ".tfrecord")


@settings(max_examples=60, deadline=None, suppress_health_check=_FIXTURE_OK)
@given(edits=mutation, cut=st.one_of(st.none(), st.floats(0, 1)))
def test_mutated_payload_with_valid_crc_raises_only_our_errors(womd_still_path, edits, cut):
    """Mutate the Scenario bytes themselves and re-frame them, so the CRCs pass and the proto/schema layer is hit."""
    from mad_sim.data.tfrecord import frame_record, iter_records

    payload = next(iter_records(womd_still_path))
    _read_all(frame_record(_mutate(payload, edits, cut)), ".tfrecord")


@settings(max_examples=60, deadline=None, suppress_health_check=_FIXTURE_OK)
@given(edits=mutation, cut=st.one_of(st.none(), st.floats(0, 1)))
def test_mutated_pickle_raises_only_our_errors(scenarionet_path, edits, cut):
    _read_all(_mutate(scenarionet_path.read_bytes(), edits, cut), ".pkl")
