"""Paired appearance clips from the real dashcam video / stills / Waymo frame, and the image metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mad_sim.errors import ConfigError, DataNotFoundError, ShapeError
from mad_sim.model.evaluation.appearance import comparison_image, evaluate_appearance, perturb_pose, psnr, ssim
from mad_sim.model.training.appearance_clips import (
    AppearanceClips,
    AppearanceClipSpec,
    build_appearance_clips,
    plan_windows,
    resample_indices,
)
from tests.conftest import data_file

SPEC = AppearanceClipSpec(frames=9, width=64, height=64, phases=1, mirror=False, stride=6, eval_stride=4)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("appearance")
    folder = build_appearance_clips(
        videos=[data_file("video/solidWhiteRight.mp4")],
        stills=[data_file("video/solidYellowLeft.jpg")],
        waymo_frames=[data_file("womd/pvps_data_one_frame.tfrecord")],
        spec=SPEC,
        cache_root=root,
        progress=False,
    )
    return AppearanceClips(folder), root


def test_clip_cache_contents(clips):
    c, root = clips
    train, held = c.indices("train"), c.indices("eval")
    # 221 frames at 25 fps -> 89 frames at 10 Hz; first 75% (66) train windows of 9 every 6, rest held out every 4
    assert len(train) == 10 and len(held) == 4
    train_src = {i for k in train for i in c.clips[k]["source_frames"]}
    held_src = {i for k in held for i in c.clips[k]["source_frames"]}
    assert not train_src & held_src and max(train_src) < min(held_src)
    assert c.rgb.shape == c.pose.shape == (14, 9, 64, 64, 3)
    # every pose frame shows the lanes; RGB frames are the real video (sky on top, asphalt below)
    assert (c.pose.max(-1) > 0).mean(axis=(2, 3)).min() > 0.005
    assert c.rgb[:, :, :16].mean() > c.rgb[:, :, 48:].mean()
    assert c.still_rgb.shape == (2, 64, 64, 3) and [s["kind"] for s in c.stills] == ["still", "waymo"]
    assert (c.still_pose[1].max(-1) > 0).any()  # the Waymo frame's labels are drawn
    # same spec and sources: the cache is reused, not rebuilt
    again = build_appearance_clips(
        videos=[data_file("video/solidWhiteRight.mp4")],
        stills=[data_file("video/solidYellowLeft.jpg")],
        waymo_frames=[data_file("womd/pvps_data_one_frame.tfrecord")],
        spec=SPEC,
        cache_root=root,
        progress=False,
    )
    assert again == c.folder


def test_resampling_and_windows():
    idx = resample_indices(221, 25.0, 10.0, 0.0)
    assert len(idx) == 89 and idx[1] == 2 and idx[2] == 5 and idx[-1] == 220
    assert resample_indices(221, 25.0, 10.0, 1.25)[0] == 1
    train, held = plan_windows(89, SPEC)
    assert train[-1] + SPEC.frames <= held[0]


def test_spec_and_source_errors(tmp_path):
    with pytest.raises(ConfigError, match="8k\\+1"):
        AppearanceClipSpec(frames=10)
    with pytest.raises(ConfigError, match="multiple of 32"):
        AppearanceClipSpec(width=100)
    with pytest.raises(DataNotFoundError):
        build_appearance_clips(videos=[tmp_path / "nope.mp4"], cache_root=tmp_path)
    with pytest.raises(ConfigError, match="at least one"):
        build_appearance_clips(cache_root=tmp_path)
    with pytest.raises(DataNotFoundError, match="manifest"):
        AppearanceClips(tmp_path)


def test_metrics_known_values():
    a = np.zeros((4, 16, 16, 3), np.uint8)
    assert psnr(a, a) == float("inf")
    assert psnr(a, a + 1) == pytest.approx(10 * np.log10(255.0**2))
    assert ssim(a, a) == pytest.approx(1.0)
    # constant images: SSIM = (2 x y + C1) / (x^2 + y^2 + C1)
    x, y, c1 = 100.0, 140.0, (0.01 * 255) ** 2
    assert ssim(np.full((8, 8, 3), 100, np.uint8), np.full((8, 8, 3), 140, np.uint8)) == pytest.approx(
        (2 * x * y + c1) / (x * x + y * y + c1), rel=1e-6
    )
    noisy = np.random.default_rng(0).integers(0, 255, a.shape).astype(np.uint8)
    assert ssim(a, noisy) < 0.1
    with pytest.raises(ShapeError):
        psnr(a, a[:, :8])


def test_perturb_pose(clips):
    c, _ = clips
    pose = np.asarray(c.pose[0])
    p1 = perturb_pose(pose, np.random.default_rng(1))
    p2 = perturb_pose(pose, np.random.default_rng(1))
    assert np.array_equal(p1, p2) and p1.shape == pose.shape and p1.dtype == np.uint8
    assert not np.array_equal(p1, pose)
    assert p1.astype(float).sum() < pose.astype(float).sum()  # dimmed and partly dropped
    with pytest.raises(ShapeError):
        perturb_pose(pose.astype(np.float32), np.random.default_rng(0))


def test_evaluate_and_comparison_image(clips, tmp_path):
    from mad_sim.model.appearance.synthesizer import AppearanceSynthesizer
    from mad_sim.model.backbone_loading import load_backbone
    from mad_sim.model.mad import MADModel

    c, _ = clips
    model = MADModel(load_backbone("tiny", weights="random", device="cpu", seed=0))
    model.add_adapter("appearance", rank=4, alpha=4)
    synth = AppearanceSynthesizer(model, size=(64, 64))
    res = evaluate_appearance(synth, c, "eval", steps=2, max_clips=1, progress=False)
    assert res["clips"] == 1 and res["frames"] == 8 and np.isfinite(res["psnr"]) and -1 <= res["ssim"] <= 1
    rgb, pose = c.batch(np.array([c.indices("eval")[0]]))
    out = synth.synthesize(pose[0], first_frame=rgb[0, 0], steps=2, generator=torch.Generator().manual_seed(0))
    grid = comparison_image(rgb[0], pose[0], out, tmp_path / "cmp.png")
    assert (tmp_path / "cmp.png").is_file() and grid.shape[1] == 2 * (3 * 64 + 4)


def test_appearance_stage_trains_through_the_trainer(clips, tmp_path):
    from mad_sim.model.appearance.synthesizer import AppearanceSynthesizer
    from mad_sim.model.backbone_loading import load_backbone
    from mad_sim.model.mad import MADModel
    from mad_sim.model.training.loop import LoraConfig, TrainConfig, train

    c, _ = clips
    cfg = TrainConfig(
        stage="appearance",
        preset="tiny",
        output_dir=str(tmp_path / "run"),
        steps=4,
        batch_size=2,
        log_every=2,
        checkpoint_every=4,
        eval_clips=2,
        lora=LoraConfig(rank=4, alpha=4.0),
    )
    res = train(cfg, cache=c, progress=False)
    assert res.steps == 4 and np.isfinite(res.final_loss)
    lora = res.exported["appearance"]
    import json

    records = json.loads((tmp_path / "run" / "losses.json").read_text())["records"]
    assert {"eval_loss", "eval_loss_perturbed_pose"} <= set(records[-1])
    model = MADModel(load_backbone("tiny", weights="random", device="cpu", seed=0))
    model.load_adapter("appearance", lora)
    assert AppearanceSynthesizer(model, size=(64, 64)).adapter == "appearance"
