"""Parse-back through the VAE: bands, scoring on a hand-built frame, ceilings vs destroyed reconstructions, report keys."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from mad_sim.data import load_scenario
from mad_sim.data.procedural import generate_scenario
from mad_sim.data.scenario import ObjectType, Trajectory
from mad_sim.errors import ConfigError
from mad_sim.model.parse.results import EnteredAgents, ParseResult
from mad_sim.model.parse.vae_parseback import (
    ParsebackResult,
    Protocol,
    Representation,
    measure,
    select_clips,
)
from mad_sim.model.parse.vae_parseback_report import (
    REPORT_KEYS,
    band_stats,
    build_report,
    format_report,
    json_safe,
)
from mad_sim.model.parse.vae_parseback_scoring import (
    Samples,
    add_lanes,
    band_index,
    band_name,
    pixel_ground_range,
    score_frame,
)
from mad_sim.render.camera import Camera

ROOT = Path(__file__).resolve().parents[3]
NEAR = "0-30 m"


def _blur(frames: np.ndarray) -> np.ndarray:
    return np.stack([cv2.GaussianBlur(f, (0, 0), 2.5) for f in frames])


def _black(frames: np.ndarray) -> np.ndarray:
    return np.zeros_like(frames)


def _after(res: ParsebackResult) -> dict:
    assert res.vae is not None
    return band_stats(res.vae)


@pytest.fixture(scope="module")
def procedural():
    return generate_scenario(np.random.default_rng(3), kind="straight")


def test_band_index_and_names() -> None:
    r = np.array([0.0, 14.9, 15.0, 29.99, 30.0, 49.9, 50.0, 120.0, np.nan, -1.0])
    assert band_index(r).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, -1, -1]
    assert band_name(15.0, 30.0) == "15-30 m" and band_name(50.0, np.inf) == "50+ m"


def test_pixel_ground_range_matches_the_pinhole_by_hand() -> None:
    cam = Camera.default_front(128, 128, hfov_deg=90.0, mount_height=1.6)  # f = 64, cx = cy = 63.5
    g = pixel_ground_range(cam)
    assert g.shape == (128, 128)
    z = 1.6 * 64 / (127 - 63.5)  # bottom row, column 64: forward distance on the ground
    assert g[127, 64] == pytest.approx(np.hypot(z, 0.5 * z / 64), rel=1e-9)
    z = 1.6 * 64 / (70 - 63.5)
    assert g[70, 0] == pytest.approx(np.hypot(z, 63.5 * z / 64), rel=1e-9)
    assert np.isnan(g[:64]).all()  # at or above the horizon: no ground


def test_lane_counts_go_to_the_pixel_ground_band() -> None:
    kinds = np.full((1, 4, 4), -1, np.int8)
    kinds[0, :, 0] = 0  # a lane down column 0
    kinds[0, 3, 3] = 1  # a road-line pixel, owned by an agent below
    owned = np.zeros((1, 4, 4), bool)
    owned[0, 3, 3] = True
    band = np.array([[0] * 4, [1] * 4, [2] * 4, [-1] * 4])
    decoded = np.zeros((1, 4, 4, 3), np.uint8)
    decoded[0, 0, 1] = 200  # lit next to rows 0 and 1 of the lane
    s = Samples()
    add_lanes(s, kinds, owned, decoded, band)
    assert s.lane_total.tolist() == [1, 1, 1, 0, 4]  # bands 0-15, 15-30, 30-50, 50+, all (row 3: no ground)
    assert s.lane_kept.tolist() == [1, 1, 0, 0, 2]
    assert s.lit_total.tolist() == [1, 0, 0, 0, 1] and s.lit_on_line.tolist() == [1, 0, 0, 0, 1]


def _hand_scene(procedural):
    """Seat at the origin looking along +x; vehicles at 10, 20 and 40 m ahead and a fourth one barely visible."""
    n, t = 5, procedural.num_steps
    tr = Trajectory.zeros(n, t)
    xy = np.array([[0.0, 0.0], [10.0, 0.0], [20.0, 3.5], [40.0, -3.5], [25.0, -3.5]])
    tr.xyz[:, :, :2] = xy[:, None]
    tr.xyz[:, :, 2] = 0.8
    tr.size[:] = np.array([4.5, 2.0, 1.6], np.float32)
    tr.valid[:] = True
    sc = dataclasses.replace(
        procedural,
        tracks=tr,
        object_types=np.full(n, ObjectType.VEHICLE, np.int8),
        track_ids=np.arange(n, dtype=np.int64),
        sdc_index=0,
        tracks_to_predict=np.zeros(0, np.int64),
        tracks_to_predict_difficulty=np.zeros(0, np.int8),
    )
    return sc, xy


def _result(xyz: np.ndarray, entered: EnteredAgents) -> ParseResult:
    k = len(xyz)
    return ParseResult(
        xyz=xyz,
        heading=np.zeros(k),
        velocity=np.zeros((k, 2)),
        predicted_xyz=xyz,
        predicted_heading=np.zeros(k),
        in_view=np.ones(k, bool),
        visible=np.ones(k, bool),
        confidence=np.ones(k),
        residual=np.zeros(k),
        left=np.zeros(0, np.int64),
        entered=entered,
        explained=np.zeros((4, 4), bool),
    )


def _entered(xy) -> EnteredAgents:
    m = len(xy)
    return EnteredAgents(
        np.concatenate([np.asarray(xy, float).reshape(m, 2), np.full((m, 1), 0.8)], 1),
        np.zeros(m),
        np.tile([4.5, 2.0, 1.6], (m, 1)),
        np.full(m, ObjectType.VEHICLE, np.int8),
        np.ones(m),
        np.zeros(m),
        np.full(m, 30, np.int64),
    )


@pytest.mark.parametrize("with_entering", [False, True])
def test_score_frame_assigns_bands_gates_and_detections(procedural, with_entering: bool) -> None:
    sc, xy = _hand_scene(procedural)
    rows = np.array([1, 2, 3, 4])
    fit = np.concatenate([xy[rows], np.full((4, 1), 0.8)], 1)
    fit[1, 0] += 1.0  # 20 m: 1 m off, inside the 2 m + 10 % gate
    fit[2, 1] += 8.0  # 40 m: 8 m off, outside its 6 m gate: a false detection and a miss
    pixels = np.array([0, 100, 100, 100, 3])  # row 4 too small to be visible: its exact fit is ignored
    ent = _entered([xy[3] + [0.5, 0.0]] if with_entering else np.zeros((0, 2)))
    s = Samples()
    score_frame(s, sc, 0, 20, np.zeros(2), pixels, rows, _result(fit, ent), np.ones(4, bool))
    b = band_stats(s)["bands"]
    assert [b[k]["visible"] for k in ("0-15 m", "15-30 m", "30-50 m", "50+ m")] == [1, 1, 1, 0]
    assert b["0-15 m"]["recall"] == 1.0 and b["0-15 m"]["pos_median"] == pytest.approx(0.0)
    assert b["15-30 m"]["recall"] == 1.0 and b["15-30 m"]["pos_median"] == pytest.approx(1.0)
    assert b["15-30 m"]["precision"] == 1.0
    far = b["30-50 m"]
    if with_entering:  # the entering detection finds the far vehicle: one true, one false detection
        assert far["recall"] == 1.0 and far["pos_median"] == pytest.approx(0.5) and far["precision"] == 0.5
    else:
        assert far["recall"] == 0.0 and far["detections"] == 1 and far["precision"] == 0.0
    assert b["all"]["tracked_share"] == 1.0 and b["all"]["detections"] == (4 if with_entering else 3)


def test_select_clips_windows_are_valid(procedural) -> None:
    p = Protocol(seats=2, clips_per_seat=2)
    clips = select_clips(procedural, p, np.random.default_rng(0))
    assert clips[0][0] == procedural.sdc_index and len(clips) >= 2
    for seat, t0 in clips:
        assert procedural.object_types[seat] == ObjectType.VEHICLE
        assert procedural.tracks.valid[seat, t0 - 1 : t0 + p.frames].all()
    with pytest.raises(ConfigError):
        Protocol(prior="oracle")


def test_procedural_ceiling_and_destroyed_reconstructions(procedural) -> None:
    p = Protocol(seats=1, clips_per_seat=1, max_clips=2)
    rep = Representation()
    same = measure([procedural], rep, p, roundtrip=lambda f: f.copy())
    clean, after = band_stats(same.clean), _after(same)
    assert json_safe(clean) == json_safe(after)  # an exact reconstruction scores the ceiling (NaN as None)
    near = clean["bands"][NEAR]
    assert near["visible"] > 10 and near["recall"] >= 0.9 and near["pos_median"] <= 0.5
    assert near["lane_recall"] == 1.0 and near["lane_pixels"] > 100
    black = _after(measure([procedural], rep, p, roundtrip=_black))["bands"][NEAR]
    assert black["recall"] <= 0.1 and black["lane_recall"] == 0.0
    blur = _after(measure([procedural], rep, p, roundtrip=_blur))["bands"][NEAR]
    assert blur["recall"] < near["recall"] and blur["lane_recall"] < 0.7


def test_real_scene_ceiling_and_black_decode(womd_path) -> None:
    sc = load_scenario(womd_path)
    p = Protocol(seats=1, clips_per_seat=1, max_clips=2)
    res = measure([sc], Representation(), p, roundtrip=_black)
    clean, black = band_stats(res.clean)["bands"], _after(res)["bands"]
    assert clean[NEAR]["visible"] > 50
    assert clean[NEAR]["recall_tracked"] >= 0.9  # the parser finds the vehicles it tracks on clean frames
    assert clean[NEAR]["lane_recall"] == 1.0
    assert black[NEAR]["recall"] <= 0.05 and black[NEAR]["lane_recall"] == 0.0


def test_report_and_bench_json_keys(tmp_path, womd_path, procedural) -> None:
    p = Protocol(seats=0, clips_per_seat=1, max_clips=1)
    rep = Representation()
    report = build_report(measure([procedural], rep, p), rep, p, None, data="procedural")
    assert tuple(report) == REPORT_KEYS and report["after_vae"] is None and report["vae"] is None
    text = json.dumps(json_safe(report), allow_nan=False)
    back = json.loads(text)
    assert set(back["clean"]["bands"]) == {"0-15 m", "15-30 m", "30-50 m", "50+ m", NEAR, "all"}
    assert {"recall", "precision", "pos_median", "pos_p90", "yaw_median_deg", "lane_recall", "line_precision"} <= set(
        back["clean"]["bands"][NEAR]
    )
    assert [t["metric"] for t in back["targets"]] == ["recall", "pos_median", "lane_recall"]
    assert all(t["value"] is None and isinstance(t["ceiling_met"], bool) for t in back["targets"])
    assert "clean (ceiling)" in format_report(report)
    spec = importlib.util.spec_from_file_location("bench_vae_parseback", ROOT / "bench" / "bench_vae_parseback.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "pb.json"
    assert (
        bench.main(
            ["--data", str(womd_path), "--no-vae", "--seats", "0", "--max-clips", "1", "--style", "line_px=1", "--json", str(out)]
        )
        == 0
    )
    got = json.loads(out.read_text())
    assert set(REPORT_KEYS) | {"name"} == set(got) and got["representation"]["style"]["line_px"] == 1


def test_vae_roundtrip_random_tiny_vae(tmp_path) -> None:
    pytest.importorskip("diffusers")
    from mad_sim.model.parse.vae_roundtrip import VaeRoundTrip, VaeSpec
    from mad_sim.model.presets import TINY_VAE

    rt = VaeRoundTrip(VaeSpec(weights="random"))
    frames = np.zeros((17, 64, 64, 3), np.uint8)
    frames[:, 40:42, :] = 255
    out = rt(frames)
    assert out.shape == frames.shape and out.dtype == np.uint8
    d = rt.describe(17, 128, 128)
    # 8x space / 4x time, 16 channels: a 16x16 grid per latent frame, 4x4 tokens with the transformer's patch 4
    assert d["latent_shape"] == [16, 5, 16, 16] and d["tokens"] == 80 and rt.timing()["clips"] == 1
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in TINY_VAE.items()}))
    rt2 = VaeRoundTrip(VaeSpec(vae_config=str(cfg), vae_weights="random", patch_size=2))
    assert rt2.tokens(17, 128, 128) == 5 * 8 * 8
    with pytest.raises(ConfigError, match="goes with a vae_config"):  # not silently the preset's shipped VAE
        VaeRoundTrip(VaeSpec(weights="random", vae_weights=str(cfg)))
