"""Vehicles where the skeletons are: the metrics on constructed frames, the boxes on the real clips, the VAE weight map."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mad_sim.errors import ShapeError
from mad_sim.model.appearance.vehicle_masks import box_mask, clip_vehicle_masks, vehicle_clips
from mad_sim.model.evaluation.appearance_vehicles import inpaint_vehicles, masked_mae, response_locality, vehicle_gain
from mad_sim.model.training.vae_stage import VaeStage
from tests.conftest import data_file
from tests.model.training.test_resume import _cfg, clip_cache  # noqa: F401  (fixture)
from tests.model.training.test_vae_stage import RGB_CLIPS

H = W = 64


def _road(rng: np.random.Generator) -> np.ndarray:
    """A 64x64 road-like frame: sky over a grey gradient, a little noise."""
    img = np.zeros((H, W, 3), np.float64)
    img[:24] = (120, 160, 210)
    img[24:] = np.linspace(90, 130, H - 24)[:, None, None]
    return np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def scene():
    rng = np.random.default_rng(0)
    road = np.stack([_road(rng) for _ in range(3)])
    box = np.array([[20.0, 30.0, 30.0, 38.0]], np.float32)  # a 10 x 8 px car
    mask = np.stack([box_mask(box, W, H, pad=0)] * 3)
    car = road.copy()
    car[mask] = (35, 30, 30)  # a dark car body
    return road, car, mask


def test_box_mask_covers_the_box_pixels_and_its_pad() -> None:
    m = box_mask(np.array([[2.0, 3.0, 5.0, 4.0]]), 8, 8, pad=0)
    assert m.sum() == 3 and m[3, 2:5].all()
    assert box_mask(np.array([[2.0, 3.0, 5.0, 4.0]]), 8, 8, pad=1).sum() == 5 * 3
    assert box_mask(np.array([[-4.0, -4.0, 100.0, 1.0]]), 8, 8, pad=0).sum() == 8  # clipped to the frame
    assert not box_mask(np.zeros((0, 4)), 8, 8).any()


def test_inpainting_removes_the_car(scene) -> None:
    road, car, mask = scene
    removed = inpaint_vehicles(car, mask)
    assert masked_mae(car, road, mask) > 60.0
    assert masked_mae(removed, road, mask) < 12.0  # filled from the road around it
    assert np.array_equal(removed[~mask], car[~mask])


def test_a_drawn_car_scores_as_a_vehicle_response_and_an_unchanged_frame_does_not(scene) -> None:
    road, car, mask = scene
    removed = inpaint_vehicles(car, mask)
    # an output that draws the car where the skeleton is, vs the same output without it
    assert vehicle_gain(car, road, car, removed, mask) > 0.8
    loc = response_locality(car, road, mask)
    assert loc["inside"] > 60.0 and loc["ratio"] > 100.0
    # an output that does not change with the skeleton
    assert vehicle_gain(road, road, car, removed, mask) == 0.0
    assert response_locality(road, road, mask)["inside"] == 0.0
    # a response of the wrong kind (brighter, not a dark car) or in the wrong place
    bright = road.copy()
    bright[mask] = 250
    assert vehicle_gain(bright, road, car, removed, mask) < 0.0
    elsewhere = road.copy()
    elsewhere[:, 44:52, 40:50] = (35, 30, 30)
    assert abs(vehicle_gain(elsewhere, road, car, removed, mask)) < 0.05
    assert response_locality(elsewhere, road, mask)["ratio"] < 0.1


def test_metrics_refuse_mismatched_inputs(scene) -> None:
    road, car, mask = scene
    with pytest.raises(ShapeError, match="masked_mae"):
        masked_mae(road, car, mask[:, :32])
    with pytest.raises(ShapeError, match="inpaint_vehicles"):
        inpaint_vehicles(road.astype(np.float32), mask)


@pytest.fixture(scope="module")
def held_out():
    from mad_sim.model.training.appearance_clips import AppearanceClips, AppearanceClipSpec, build_appearance_clips

    spec = AppearanceClipSpec(**RGB_CLIPS)
    folder = build_appearance_clips(videos=[data_file("video/solidWhiteRight.mp4")], spec=spec, progress=False)
    return AppearanceClips(folder)


def test_held_out_clips_carry_the_skeletons_boxes(held_out) -> None:
    vc = vehicle_clips(held_out, "eval", max_clips=2)  # also checks the re-drawn pose frames equal the cached ones
    assert len(vc) == 2
    for c in vc:
        has = c.masks.any(axis=(1, 2))
        assert has.mean() > 0.5  # cars are on the road in most held-out frames
        changed = (c.pose != c.pose_without).any(-1)
        assert changed[has].any() and not changed[~has].any()  # erasing only removes vehicle skeletons
        # the boxes hold something the inpainting removes (a car), more than the rest of the frame would
        removed = inpaint_vehicles(c.rgb, c.masks)
        assert masked_mae(removed, c.rgb, c.masks) > 10.0


def test_vae_stage_weights_the_vehicle_boxes(clip_cache, tmp_path) -> None:  # noqa: F811
    data_file("video/solidWhiteRight.mp4")
    vae_loss = {"rgb_fraction": 1.0, "ego_fraction": 0.0, "rgb_clips": RGB_CLIPS, "vehicle_weight": 50.0}
    stage = VaeStage(_cfg(tmp_path, "vae", vae_loss=vae_loss), clip_cache, "cpu")
    batch = clip_cache.indices("train")[:2]
    windows, masks = stage.sample_windows(batch, np.random.default_rng(3), vehicles=True)
    clips = stage._rgb()
    all_masks = clip_vehicle_masks(clips)
    f = stage.cfg.frames
    for w, m in zip(windows, masks):  # each window's mask is the one of the clip window it came from
        hits = [
            (k, s)
            for k in clips.indices("train")
            for s in range(clips.spec.frames - f + 1)
            if np.array_equal(np.asarray(clips.rgb[k, s : s + f]), w)
        ]
        assert hits and any(np.array_equal(all_masks[k, s : s + f], m) for k, s in hits)
    assert all_masks[clips.indices("train")].any()
    # the weight map changes the loss exactly when a window holds a box
    plain = VaeStage(_cfg(tmp_path, "vae", vae_loss={**vae_loss, "vehicle_weight": 0.0}), clip_cache, "cpu")
    plain.module.load_state_dict(stage.module.state_dict())
    a, _ = stage.loss(batch, np.random.default_rng(3), torch.Generator().manual_seed(0))
    b, _ = plain.loss(batch, np.random.default_rng(3), torch.Generator().manual_seed(0))
    assert masks.any() and abs(float(a.detach()) - float(b.detach())) > 1e-4
    pose_only = VaeStage(_cfg(tmp_path, "vae", vae_loss={**vae_loss, "rgb_fraction": 0.0}), clip_cache, "cpu")
    _, m0 = pose_only.sample_windows(batch, np.random.default_rng(3), vehicles=True)
    assert not m0.any() and pose_only._rgb_clips is None


def test_shipped_synthesizer_responds_to_vehicle_skeletons_where_they_are() -> None:
    """Held-out clips, no first frame, same noise with and without the vehicle skeletons: the output changes
    inside the boxes about 3x more than outside (measured at shipping: 26.6 vs 8.0 grey levels on the 4 held-out
    clips) and the in-box frames get closer to the real ones (25.3 vs 40.5). The response is local but barely
    car-like: its gain against the real car signal is 0.15 (1 = the real car; the VAE alone keeps 0.58), and with
    the first frame given the skeletons change almost nothing (2.9 grey levels); see
    mad_sim/model/evaluation/appearance_vehicles.py."""
    from mad_sim.model.appearance.synthesizer import AppearanceSynthesizer, appearance_lora_path
    from mad_sim.model.evaluation.appearance_vehicles import measure_synthesizer
    from mad_sim.model.training.appearance_clips import AppearanceClips, AppearanceClipSpec, build_appearance_clips

    if not appearance_lora_path("tiny").is_file():
        pytest.skip("no shipped tiny appearance adapter")
    folder = build_appearance_clips(videos=[data_file("video/solidWhiteRight.mp4")], spec=AppearanceClipSpec(), progress=False)
    vc = vehicle_clips(AppearanceClips(folder), "eval", max_clips=2)
    synth = AppearanceSynthesizer.from_pretrained("tiny", device="cpu")
    scores, _ = measure_synthesizer(synth, vc, first_frame=False, steps=8, seed=0)
    assert scores["response_ratio"] > 2.0
    assert scores["mae_in_with"] < scores["mae_in_without"] - 1.0
    assert scores["gain"] > 0.0


def test_a_vae_state_dict_is_measured_alone(tmp_path) -> None:
    """``--vae FILE``: a VAE no backbone has been trained on yet (a ``vae`` stage export) gets the VAE figures only."""
    import json

    from safetensors.torch import save_file

    from mad_sim.model.backbone_loading import load_backbone
    from mad_sim.model.evaluation.appearance_vehicles import main

    data_file("video/solidWhiteRight.mp4")  # skip (or fail under CI) without the dashcam video
    vae = load_backbone("tiny", weights="random", device="cpu", seed=1).vae
    save_file({k: v.contiguous() for k, v in vae.state_dict().items()}, str(tmp_path / "vae.safetensors"))
    assert main(["--out", str(tmp_path / "out"), "--vae", str(tmp_path / "vae.safetensors")]) == 0
    res = json.loads((tmp_path / "out" / "vehicles.json").read_text())
    assert {"gain", "mae_in", "response_ratio"} <= set(res["vae"]) and res["box_frames"] > 0
    assert "synth_no_first_frame" not in res and not (tmp_path / "out" / "vehicles.png").exists()
