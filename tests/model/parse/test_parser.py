"""PoseParser on frames rendered from the real WOMD log (mad_sim.model.parse.parser)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from mad_sim.data import load_scenario
from mad_sim.errors import ShapeError
from mad_sim.model.evaluation.parse import degrade, evaluate_parse, visible_agents
from mad_sim.model.parse.parser import PoseParser
from mad_sim.model.parse.results import background_mask, ego_pose_of
from mad_sim.render.pose import PoseRenderer
from mad_sim.world.state import AgentStates, WorldState


@functools.lru_cache(maxsize=2)
def _load(path: str):
    return load_scenario(path)


@pytest.fixture
def scenario(womd_path):
    return _load(str(womd_path))


@pytest.fixture(scope="module")
def parser():
    return PoseParser(renderer=PoseRenderer(128, 128))


def _prior(state: WorldState, hide=(), noise_m: float = 0.0, noise_yaw: float = 0.0, seed: int = 0) -> AgentStates:
    rng = np.random.default_rng(seed)
    prev = state.at(state.timestep - 1)
    valid = prev.valid & state.at().valid
    valid[state.ego_index] = False
    valid[list(hide)] = False
    xyz = prev.xyz.copy()
    xyz[:, :2] += rng.uniform(-noise_m, noise_m, (len(valid), 2))
    return AgentStates(
        xyz,
        prev.heading + rng.uniform(-noise_yaw, noise_yaw, len(valid)),
        prev.velocity.copy(),
        prev.size.copy(),
        valid,
        prev.types,
    )


def test_perturbed_prior_accuracy_by_band(scenario, parser):
    """Log frames, prior moved +-1 m / +-10 deg: the fit must beat the prediction where the image resolves it."""
    ev = evaluate_parse(scenario, range(20, 91, 10), parser, np.random.default_rng(0), hide_frac=0.0)
    bands = ev.band_stats()
    prior = ev.band_stats(which="prior_errors")
    lateral = ev.band_stats(which="lateral")
    near, mid = bands["0-20 m"], bands["20-40 m"]
    assert near["n"] >= 5 and mid["n"] >= 20
    # At 128 px one pixel is ~0.25 m across the ray at 15 m but ~2 m along it (ground contact): across the
    # ray the fit is sharp at every range, along it the image only helps near by.
    assert lateral["0-20 m"]["median"] < 0.15
    assert lateral["20-40 m"]["median"] < 0.3
    assert near["median"] < 0.6 and near["median"] < 0.75 * prior["0-20 m"]["median"]
    assert mid["median"] < prior["20-40 m"]["median"]
    assert ev.found_rate > 0.6
    assert ev.left_false <= 3
    assert np.nanmedian(ev.yaw_errors) < np.radians(6.0)


def test_degraded_frames_still_parse(scenario, parser):
    ev = evaluate_parse(scenario, [50, 90], parser, np.random.default_rng(1), hide_frac=0.0, degrade_frames=True)
    lat = ev.band_stats(which="lateral")
    assert ev.found_rate > 0.5
    # A whole-frame shift of one pixel is ~0.25 m across the ray at 15 m: near agents stay within a few of those.
    assert lat["0-20 m"]["median"] < 0.5
    assert ev.band_stats()["0-20 m"]["median"] < 1.0


def test_exact_prior_keeps_agents_in_place(scenario, parser):
    state = WorldState.from_scenario(scenario, timestep=70)
    frame = parser.renderer.render_state(state)
    prior = _prior(state)
    res = parser.parse(frame, prior, ego_pose_of(state))
    vis, px = visible_agents(parser.renderer, state, 30)
    vis = vis[prior.valid[vis]]
    assert vis.size >= 5
    err = np.hypot(*(res.xyz[vis, :2] - state.at().xyz[vis, :2]).T)
    assert res.visible[vis].all()
    assert np.median(err) < 0.3
    # Rows the parser did not touch come back exactly as given.
    untouched = ~prior.valid
    np.testing.assert_array_equal(res.xyz[untouched], prior.xyz[untouched])


def test_hidden_near_agent_enters(scenario, parser):
    """The nearest car is left out of the prior: it must come back as an entering vehicle near its true place."""
    state = WorldState.from_scenario(scenario, timestep=70)
    frame = parser.renderer.render_state(state)
    vis, px = visible_agents(parser.renderer, state, 6)
    target = int(vis[np.argmax(px)])
    w2v = ego_pose_of(state)
    bg = background_mask(parser.renderer, w2v, scenario.roadmap)
    res = parser.parse(frame, _prior(state, hide=[target]), w2v, background=bg)
    assert len(res.entered) >= 1
    d = np.hypot(*(res.entered.xyz[:, :2] - state.at().xyz[target, :2]).T)
    k = int(np.argmin(d))
    assert d[k] < 2.5
    assert res.entered.types[k] == scenario.object_types[target]
    assert res.entered.confidence[k] >= 0.5


def test_agent_missing_from_frame_is_left(scenario, parser):
    """An agent drawn in the prior's place but absent from the frame is reported as left."""
    state = WorldState.from_scenario(scenario, timestep=70)
    vis, px = visible_agents(parser.renderer, state, 6)
    gone = int(vis[np.argmax(px)])
    edited = state.copy()
    edited.sim.valid[gone, 70] = False
    frame = parser.renderer.render_state(edited)
    res = parser.parse(frame, _prior(state), ego_pose_of(state))
    assert gone in res.left
    assert res.in_view[gone] and not res.visible[gone]
    others = vis[vis != gone]
    assert res.visible[others].mean() > 0.7


def test_vehicle_frame_prior_matches_world_frame(scenario, parser):
    state = WorldState.from_scenario(scenario, timestep=50)
    frame = parser.renderer.render_state(state)
    prior = _prior(state, noise_m=0.5, seed=3)
    w2v = ego_pose_of(state)
    yaw = np.arctan2(w2v[0, 1], w2v[0, 0])
    local = AgentStates(
        prior.xyz @ w2v[:, :3].T + w2v[:, 3],
        prior.heading - yaw,
        prior.velocity @ w2v[:2, :2].T,
        prior.size,
        prior.valid,
        prior.types,
    )
    a = parser.parse(frame, prior, w2v)
    b = parser.parse(frame, local, None)
    v = a.visible
    assert v.sum() >= 5
    np.testing.assert_array_equal(v, b.visible)
    back = (b.xyz[v] - w2v[:, 3]) @ w2v[:, :3]
    np.testing.assert_allclose(back[:, :2], a.xyz[v, :2], atol=1e-6)


def test_bad_inputs_name_the_problem(scenario, parser):
    state = WorldState.from_scenario(scenario, timestep=50)
    prior = _prior(state)
    with pytest.raises(ShapeError, match="uint8"):
        parser.parse(np.zeros((128, 128, 3), np.float32), prior, ego_pose_of(state))
    with pytest.raises(ShapeError, match="64x64"):
        parser.parse(np.zeros((64, 64, 3), np.uint8), prior, ego_pose_of(state))
    with pytest.raises(ShapeError, match="ego_pose"):
        parser.parse(np.zeros((128, 128, 3), np.uint8), prior, np.eye(3))


def test_empty_frame_everything_in_view_has_left(scenario, parser):
    state = WorldState.from_scenario(scenario, timestep=50)
    res = parser.parse(np.zeros((128, 128, 3), np.uint8), _prior(state), ego_pose_of(state))
    assert res.in_view.sum() >= 5
    assert not res.visible.any()
    np.testing.assert_array_equal(np.sort(res.left), np.flatnonzero(res.in_view))
    assert len(res.entered) == 0


def test_degrade_is_seeded():
    f = np.zeros((32, 32, 3), np.uint8)
    f[10:12] = 255
    a = degrade(f, np.random.default_rng(5))
    b = degrade(f, np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert (a != f).any()
