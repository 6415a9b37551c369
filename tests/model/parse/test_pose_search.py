"""The parser's fast search (mad_sim.model.parse.search) against the exact scorer, on frames of the real WOMD log."""

from __future__ import annotations

import functools

import cv2
import numpy as np
import pytest

from mad_sim.data import load_scenario
from mad_sim.errors import ConfigError
from mad_sim.model.evaluation.parse import degrade, evaluate_parse
from mad_sim.model.parse.config import ParseConfig
from mad_sim.model.parse.parser import PoseParser
from mad_sim.model.parse.pixels import colour_pixels, pixel_maps, truncated_distances
from mad_sim.model.parse.results import ego_pose_of
from mad_sim.model.parse.search import CostMaps, Occlusion, PoseSearch, grid_level
from mad_sim.model.parse.skeleton_fit import body_samples, grid, score, template
from mad_sim.render.pose import PoseRenderer
from mad_sim.render.skeleton import class_of
from mad_sim.world.state import WorldState


@functools.lru_cache(maxsize=1)
def _scene(path: str):
    sc = load_scenario(path)
    parser = PoseParser(renderer=PoseRenderer(128, 128))
    state = WorldState.from_scenario(sc, timestep=50)
    frame = parser.renderer.render_state(state)
    w2v = ego_pose_of(state)
    a = state.at()
    xyz = a.xyz @ w2v[:, :3].T + w2v[:, 3]
    yaw = a.heading - np.arctan2(w2v[0, 1], w2v[0, 0])
    ok = a.valid.copy()
    ok[state.ego_index] = False
    uv, d = parser.camera.project(xyz)
    ok &= parser.camera.in_image(uv) & (d < 60)
    return sc, parser, frame, xyz, yaw, a.size, a.types, ok


@pytest.fixture
def scene(womd_path):
    return _scene(str(womd_path))


def test_truncated_distances_match_opencv(scene):
    _, parser, frame, *_ = scene
    rng = np.random.default_rng(0)
    for img in (frame, degrade(frame, rng)):
        pixels, agent = colour_pixels(img)
        maps = truncated_distances(pixels + [np.flatnonzero(agent)], agent.shape, parser.tau)
        for k, p in enumerate(pixels + [np.flatnonzero(agent)]):
            mask = np.ones(agent.size, np.uint8) * 255
            mask[p] = 0
            ref = cv2.distanceTransform(mask.reshape(agent.shape), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
            np.testing.assert_allclose(maps[k], np.minimum(ref, parser.tau), atol=1e-5)


def test_cost_maps_from_pixels_equal_dense_build(scene):
    _, parser, frame, *_ = scene
    pixels, agent = colour_pixels(frame)
    a = CostMaps.from_pixels(pixels, agent, parser.tau, parser.config.score)
    b = CostMaps.build(pixel_maps(frame, parser.tau), parser.config.score)
    np.testing.assert_allclose(a.comb[a.slot], b.comb[b.slot], atol=1e-5)
    np.testing.assert_allclose(a.gen, b.gen, atol=1e-6)
    assert (a.comb[a.unobserved_slot] == np.float32(a.unobserved)).all()


def _vehicles(scene, per_edge=4, occluded=False, seed=0):
    _, parser, frame, xyz, yaw, size, types, ok = scene
    rows = np.flatnonzero(ok & (class_of(types) == 0))
    cam = parser.camera
    body = body_samples(0, size[rows], per_edge)
    tpl = template(0, per_edge)
    pred = np.concatenate([xyz[rows, :2], yaw[rows, None]], 1)
    centre = pred + np.random.default_rng(seed).uniform(-1, 1, pred.shape) * [1.0, 1.0, 0.2]
    depth = cam.to_camera(xyz[rows])[:, 2]
    occ = parser.occluder_depth(xyz[ok], yaw[ok], size[ok], types[ok]) if occluded else None
    pixels, agent = colour_pixels(frame)
    cm = CostMaps.from_pixels(pixels, agent, parser.tau, parser.config.score)
    ps = PoseSearch(
        cam,
        cm,
        tpl.colour,
        body,
        xyz[rows, 2] - 0.5 * size[rows, 2],
        depth,
        pred,
        parser.config.score,
        parser.tau,
        Occlusion.build(occ) if occ is not None else None,
    )
    exact = functools.partial(
        score,
        cam,
        pixel_maps(frame, parser.tau),
        0,
        body,
        tpl.colour,
        z_centre=xyz[rows, 2],
        height=size[rows, 2],
        own_depth=depth,
        occluder_depth=occ,
        prediction=pred,
        params=parser.config.score,
    )
    return rows, ps, exact, centre


@pytest.mark.parametrize("occluded", [False, True])
def test_evaluate_equals_exact_score(scene, occluded):
    """PoseSearch.evaluate gives skeleton_fit.score's numbers (cost, residual, observed, inliers)."""
    rows, ps, exact, centre = _vehicles(scene, occluded=occluded)
    assert rows.size >= 10
    fast = ps.evaluate(centre)
    ref = exact(pose=centre[:, None])
    np.testing.assert_allclose(fast.cost, ref.cost, atol=1e-4)
    np.testing.assert_allclose(fast.residual, ref.residual, atol=1e-4)
    np.testing.assert_array_equal(fast.observed, ref.observed)
    np.testing.assert_array_equal(fast.inliers, ref.inliers)


def test_grid_costs_equal_exact_score_inside_the_image(scene):
    """Without occlusion, a bilinear level's costs are score's costs (they differ only for candidates with
    samples within a pixel of the image edge, where the padded border blends in)."""
    rows, ps, exact, centre = _vehicles(scene)
    lv = grid_level(0.5, 7, 5.0, 7)
    fast = ps.costs(centre, lv)  # [B, yaw, xy]
    cand = centre[:, None] + grid(0.5, 7, np.radians(5.0), 7)[None]  # xy-major, yaw-minor
    ref = exact(pose=cand).cost.reshape(rows.size, 49, 7).transpose(0, 2, 1)
    diff = np.abs(fast - ref)
    assert np.median(diff) < 1e-5
    assert (diff < 1e-3).mean() > 0.8
    assert diff.max() < 0.1
    # Nearest-pixel lookups (coarse levels) stay within a fraction of a pixel of the exact costs.
    near = ps.costs(centre, grid_level(0.5, 7, 5.0, 7, bilinear=False))
    assert np.abs(near - ref).mean() < 0.05


def test_narrow_search_on_a_close_prior(womd_path):
    """A closed loop's prior (+-0.3 m / +-3 deg): the narrow search runs no coarse level and sharpens the prior."""
    sc = _scene(str(womd_path))[0]
    parser = PoseParser(renderer=PoseRenderer(128, 128), config=ParseConfig.narrow(detect=False))
    assert parser.config.coarse_levels() == ()
    ev = evaluate_parse(
        sc, range(20, 91, 10), parser, np.random.default_rng(0), pos_noise=0.3, yaw_noise=np.radians(3.0), hide_frac=0.0
    )
    fit, prior = ev.band_stats(), ev.band_stats(which="prior_errors")
    assert fit["0-20 m"]["n"] >= 5 and fit["20-40 m"]["n"] >= 20
    assert fit["0-20 m"]["median"] < 0.2 and fit["0-20 m"]["median"] < 0.7 * prior["0-20 m"]["median"]
    assert fit["20-40 m"]["median"] < prior["20-40 m"]["median"]
    assert fit["20-40 m"]["p90"] < 0.6
    assert ev.found_rate > 0.75
    assert ev.left_false <= 1


def test_early_exit_when_the_prediction_fits(scene):
    """The exact prior explains the frame: most agents skip the coarse search and stay in place.

    At 128 px even the true pose leaves ~0.7-1.3 px of residual (small skeletons overdraw their own edge
    colours), so the default threshold (0.5 px) rarely fires there; 1.5 px does.
    """
    sc = scene[0]
    parser = PoseParser(renderer=PoseRenderer(128, 128), config=ParseConfig(early_exit_px=1.5))
    state = WorldState.from_scenario(sc, timestep=70)
    frame = parser.renderer.render_state(state)
    prev, now = state.at(69), state.at()
    from mad_sim.world.state import AgentStates

    valid = prev.valid & now.valid
    valid[state.ego_index] = False
    prior = AgentStates(prev.xyz.copy(), prev.heading.copy(), prev.velocity.copy(), prev.size.copy(), valid, prev.types)
    res = parser.parse(frame, prior, ego_pose_of(state))
    seen = res.visible
    assert seen.sum() >= 10
    assert res.coarse[seen].mean() < 0.5
    err = np.hypot(*(res.xyz[seen, :2] - now.xyz[seen, :2]).T)
    assert np.median(err) < 0.3


def test_config_is_validated():
    with pytest.raises(ConfigError, match="search_radius_m"):
        ParseConfig(search_radius_m=-1.0)
    with pytest.raises(ConfigError, match="coarse_step_m"):
        ParseConfig(coarse_step_m=0.0)
    with pytest.raises(ConfigError, match="per_edge"):
        ParseConfig(small_per_edge=0)
    wide = ParseConfig()
    assert [lv.size for lv in wide.coarse_levels()] == [49, 63]
