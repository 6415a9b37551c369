"""Ego odometry from rendered pose videos of the real WOMD logs (mad_sim.model.parse.odometry)."""

from __future__ import annotations

import numpy as np
import pytest

from mad_sim.data import load_scenario
from mad_sim.errors import ShapeError
from mad_sim.model.parse.odometry import (
    MotionLimits,
    compose,
    estimate_ego_motion,
    inverse,
    track_ego_motion,
    trajectory_in_first_frame,
)
from mad_sim.render.pose import PoseRenderer


def _run(path, t0: int, frames: int, width: int = 128):
    sc = load_scenario(path)
    r = PoseRenderer(width, width)
    e = sc.sdc_index
    video = r.render_scenario(sc, e, t0, t0 + frames)
    est = estimate_ego_motion(video, r.camera)
    gt = trajectory_in_first_frame(sc.tracks.xy[e, t0 : t0 + frames], sc.tracks.heading[e, t0 : t0 + frames])
    return est, gt


@pytest.mark.parametrize("t0, ade_max", [(10, 0.5), (40, 1.2)])
def test_moving_sdc_ade(womd_path, t0, ade_max):
    """The SDC drives ~9 m in 33 frames; the recovered trajectory stays close to the log."""
    est, gt = _run(womd_path, t0, 33)
    err = np.hypot(*(est[:, :2] - gt[:, :2]).T)
    travelled = np.hypot(*gt[-1, :2])
    assert travelled > 7.0
    assert err.mean() < ade_max
    assert est[-1, 0] > 0.6 * gt[-1, 0]
    # Zero motion would be off by the whole distance: the estimate must be far better than standing still.
    assert err.mean() < 0.25 * np.hypot(*gt[:, :2].T).mean()


def test_standing_ego_stays_put(womd_still_path):
    est, gt = _run(womd_still_path, 10, 17)
    assert np.abs(gt[:, :2]).max() < 0.2
    assert np.hypot(*est[:, :2].T).max() < 0.5
    assert np.abs(est[:, 2]).max() < np.radians(2.0)


def test_se2_round_trip():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(10, 3))
    b = rng.normal(size=(10, 3))
    np.testing.assert_allclose(compose(inverse(a), compose(a, b)), b, atol=1e-9)
    np.testing.assert_allclose(compose(a, inverse(a)), np.zeros((10, 3)), atol=1e-9)


def test_bad_video_shape():
    cam = PoseRenderer(64, 64).camera
    with pytest.raises(ShapeError, match="frames"):
        estimate_ego_motion(np.zeros((3, 64, 64), np.uint8), cam)
    with pytest.raises(ShapeError, match="camera"):
        estimate_ego_motion(np.zeros((3, 32, 32, 3), np.uint8), cam)
    assert estimate_ego_motion(np.zeros((1, 64, 64, 3), np.uint8), cam).shape == (1, 3)


def _degraded(path, t0: int, frames: int, seed: int):
    from mad_sim.model.evaluation.parse import degrade

    sc = load_scenario(path)
    r = PoseRenderer(128, 128)
    e = sc.sdc_index
    rng = np.random.default_rng(seed)
    video = np.stack([degrade(f, rng) for f in r.render_scenario(sc, e, t0, t0 + frames)])
    gt = trajectory_in_first_frame(sc.tracks.xy[e, t0 : t0 + frames], sc.tracks.heading[e, t0 : t0 + frames])
    return video, gt, r.camera


def test_degraded_clips_do_not_diverge(womd_path):
    """Generated-looking frames (noise, blur, 1 px jitter, dropped pixels): every 33-frame clip stays on the road.

    Before the motion limits the t0=25 clip ended 39 m off (ADE 12.9 m) after one bad registration fed the
    constant-velocity guess.  The SDC drives 8-10 m in these clips; standing still would be ~4-5 m ADE off.
    """
    for t0 in (10, 25, 40, 55):
        video, gt, cam = _degraded(womd_path, t0, 33, seed=t0)
        track = track_ego_motion(video, cam)
        err = np.hypot(*(track.poses[:, :2] - gt[:, :2]).T)
        still = np.hypot(*gt[:, :2].T).mean()
        assert err.mean() < 2.0 and err.mean() < 0.5 * still, (t0, err.mean(), still)
        assert err[-1] < 3.5, (t0, err[-1])
        # No frame jumps: a step is the filtered velocity (<= 0.3-0.4 m here) plus a bounded correction
        # (<= 1 m, 3 deg); the diverging run had -4 m steps.
        steps = compose(inverse(track.poses[:-1]), track.poses[1:])
        assert np.hypot(*steps[:, :2].T).max() < 1.5
        assert np.abs(steps[:, 2]).max() < np.radians(5.0)


def test_blank_frame_is_rejected(womd_path):
    """A frame with no map at all is unreadable: flagged invalid, it takes the constant-velocity step."""
    sc = load_scenario(womd_path)
    r = PoseRenderer(128, 128)
    e = sc.sdc_index
    video = r.render_scenario(sc, e, 10, 27)
    video[12] = 0
    track = track_ego_motion(video, r.camera)
    gt = trajectory_in_first_frame(sc.tracks.xy[e, 10:27], sc.tracks.heading[e, 10:27])
    assert not track.valid[12] and not track.readable[12] and track.ground_points[12] == 0
    assert (~track.valid).sum() <= 2
    err = np.hypot(*(track.poses[:, :2] - gt[:, :2]).T)
    assert err.mean() < 0.6


def test_motion_limits():
    lim = MotionLimits()
    steps = np.array(
        [
            [0.3, 0.0, 0.0],  # 3 m/s straight
            [5.0, 0.0, 0.0],  # 50 m/s: too fast
            [-1.0, 0.0, 0.0],  # 10 m/s reverse: too fast
            [0.0, 0.0, 0.05],  # turning on the spot beyond the slack
            [1.0, 0.05, 0.1],  # 10 m/s, 1 rad/s: on the arc's chord, at the yaw-rate bound
            [1.0, 0.5, 0.0],  # 0.5 m sideways in 0.1 s
        ]
    )
    np.testing.assert_array_equal(lim.feasible(steps), [True, False, False, False, True, False])
    clamped = np.stack([lim.clamp(s) for s in steps])
    assert lim.feasible(clamped).all()
    np.testing.assert_allclose(clamped[0], steps[0])
    assert clamped[1, 0] == pytest.approx(4.0)
    # One frame's velocity change is bounded by the acceleration (10 m/s^2 -> 0.1 m per frame per frame).
    np.testing.assert_allclose(lim.limit_change(np.array([1.0, -1.0, 0.0]))[:2], [0.1, -0.1])
    corr = lim.limit_correction(np.array([3.0, 4.0, 0.2]))
    assert np.hypot(*corr[:2]) == pytest.approx(lim.max_correction_m)
    assert abs(corr[2]) == pytest.approx(np.radians(lim.max_correction_deg))
    assert not MotionLimits(enabled=False).clamp(steps[1])[0] < 5.0


def test_clean_log_video_is_valid_and_nan_free(womd_path):
    """Rendered log frames: every frame's pose is a measurement, with a sub-pixel residual."""
    sc = load_scenario(womd_path)
    r = PoseRenderer(128, 128)
    video = r.render_scenario(sc, sc.sdc_index, 10, 43)
    track = track_ego_motion(video, r.camera)
    assert track.valid.all() and track.readable.all() and not track.rejected.any()
    assert track.residual_px[1:].max() < 1.0, track.residual_px.max()
    assert (track.inliers[1:] / track.overlap[1:]).min() > 0.6
    for name in ("poses", "cost", "residual_px"):
        assert np.isfinite(getattr(track, name)).all(), name


@pytest.mark.parametrize("kind", ["colour", "grey", "black"])
def test_unreadable_videos_are_all_invalid(kind):
    """Random noise (colour or grey) and all-black frames measure nothing: every step is flagged, no NaN."""
    cam = PoseRenderer(128, 128).camera
    rng = np.random.default_rng(3)
    if kind == "colour":
        video = rng.integers(0, 256, (9, 128, 128, 3), dtype=np.uint8)
    elif kind == "grey":
        video = np.repeat(rng.integers(0, 256, (9, 128, 128, 1), dtype=np.uint8), 3, -1)
    else:
        video = np.zeros((9, 128, 128, 3), np.uint8)
    track = track_ego_motion(video, cam, initial_velocity=np.array([0.5, 0.0, 0.0]))
    assert not track.valid.any() and not track.readable.any()
    assert np.isfinite(track.poses).all() and np.isfinite(track.cost).all() and np.isfinite(track.residual_px).all()
    # The poses are the constant-velocity prediction from the given velocity, not a measurement.
    np.testing.assert_allclose(np.diff(track.poses[:, 0]), 0.5, atol=1e-9)


def test_corrupted_frames_flag_exactly_those_steps(womd_path, womd_still_path):
    """Four frames of a clean clip replaced (noise, black, grey noise, a frame of another scene): exactly
    those four are invalid, the others still register (against valid frames only) and the track stays on the log."""
    sc = load_scenario(womd_path)
    r = PoseRenderer(128, 128)
    e = sc.sdc_index
    video = r.render_scenario(sc, e, 25, 58)
    other = load_scenario(womd_still_path)
    rng = np.random.default_rng(0)
    bad = [6, 15, 16, 27]
    video[6] = rng.integers(0, 256, video[6].shape, dtype=np.uint8)
    video[15] = 0
    video[16] = np.repeat(rng.integers(0, 256, video[16].shape[:2] + (1,), dtype=np.uint8), 3, -1)
    video[27] = r.render_scenario(other, other.sdc_index, 20, 21)[0]
    track = track_ego_motion(video, r.camera)
    np.testing.assert_array_equal(np.flatnonzero(~track.valid), bad)
    assert track.rejected[27] and not track.readable[[6, 15, 16]].any()  # the other scene reads, but does not fit
    assert track.residual_px[27] > 1.75 and track.inliers[27] < 0.4 * track.overlap[27]
    gt = trajectory_in_first_frame(sc.tracks.xy[e, 25:58], sc.tracks.heading[e, 25:58])
    assert np.hypot(*(track.poses[:, :2] - gt[:, :2]).T).mean() < 1.2
