"""Field-by-field comparison of two :class:`Scenario` objects (for round-trip tests)."""

from __future__ import annotations

import numpy as np

from mad_sim.data.scenario import Scenario


def assert_same_scenario(a: Scenario, b: Scenario, atol: float = 1e-3, rtol: float = 1e-6) -> None:
    """Equal ids, types, steps, SDC, map and lights; states equal where valid, to float32 precision.

    WOMD stores heading, velocity and box sizes as 32-bit floats, so values
    that came from 64-bit sources agree to ``rtol`` (plus ``atol`` metres).
    Source class labels are not compared: WOMD cannot hold them.
    """
    assert a.scenario_id == b.scenario_id
    assert (a.num_tracks, a.num_steps, a.current_index, a.sdc_index) == (b.num_tracks, b.num_steps, b.current_index, b.sdc_index)
    np.testing.assert_array_equal(a.track_ids, b.track_ids)
    np.testing.assert_array_equal(a.object_types, b.object_types)
    np.testing.assert_allclose(a.timestamps, b.timestamps, atol=1e-6)
    np.testing.assert_array_equal(a.tracks.valid, b.tracks.valid)
    v = a.tracks.valid
    for name in ("xyz", "heading", "velocity", "size"):
        np.testing.assert_allclose(getattr(a.tracks, name)[v], getattr(b.tracks, name)[v], rtol=rtol, atol=atol, err_msg=name)
    np.testing.assert_array_equal(a.tracks_to_predict, b.tracks_to_predict)
    np.testing.assert_array_equal(a.objects_of_interest, b.objects_of_interest)
    ra, rb = a.roadmap, b.roadmap
    np.testing.assert_array_equal(ra.ids, rb.ids)
    np.testing.assert_array_equal(ra.kinds, rb.kinds)
    np.testing.assert_array_equal(ra.subtypes, rb.subtypes)
    np.testing.assert_array_equal(ra.offsets, rb.offsets)
    np.testing.assert_allclose(ra.points, rb.points, rtol=rtol, atol=atol)
    # A reader without a lane graph has no LaneInfo; WOMD writes (and reads back) the default one.
    from mad_sim.data.scenario import LaneInfo

    assert set(ra.lanes) <= set(rb.lanes)
    assert all(ra.lanes.get(k, LaneInfo()) == rb.lanes[k] for k in rb.lanes)
    assert {k: v for k, v in ra.stop_sign_lanes.items() if v} == {k: v for k, v in rb.stop_sign_lanes.items() if v}
    ta, tb = a.traffic_lights, b.traffic_lights
    np.testing.assert_array_equal(ta.valid.any(0).sum(), tb.valid.any(0).sum())
    # WOMD writes only the valid lane states of each step: compare them as sets per step.
    for step in range(a.num_steps):
        sa = sorted(zip(ta.lane_ids[step][ta.valid[step]].tolist(), ta.states[step][ta.valid[step]].tolist()))
        sb = sorted(zip(tb.lane_ids[step][tb.valid[step]].tolist(), tb.states[step][tb.valid[step]].tolist()))
        assert sa == sb, f"traffic lights differ at step {step}"
