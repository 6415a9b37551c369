"""The ``vae`` stage's data mix (pose / ego-motion / dashcam RGB windows) and its held-out scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mad_sim.errors import ConfigError
from mad_sim.model.training.loop import VaeLossConfig
from mad_sim.model.training.vae_stage import VaeStage
from tests.conftest import data_file
from tests.model.training.test_resume import _cfg, clip_cache  # noqa: F401  (fixture)

RGB_CLIPS = {"frames": 9, "width": 64, "height": 64, "phases": 1, "mirror": False, "stride": 6, "eval_stride": 4}


def _windows_of(video: np.ndarray, frames: int) -> list:
    return [video[s : s + frames] for s in range(video.shape[0] - frames + 1)]


def test_rgb_fraction_draws_dashcam_windows_and_scores_them(clip_cache, tmp_path) -> None:  # noqa: F811
    data_file("video/solidWhiteRight.mp4")
    cfg = _cfg(tmp_path, "vae", vae_loss={"rgb_fraction": 1.0, "ego_fraction": 0.0, "rgb_clips": RGB_CLIPS})
    stage = VaeStage(cfg, clip_cache, "cpu")
    rng = np.random.default_rng(0)
    batch = clip_cache.indices("train")[:2]
    windows = stage.sample_windows(batch, rng)
    clips = stage._rgb()
    train_windows = [w for k in clips.indices("train") for w in _windows_of(np.asarray(clips.rgb[k]), cfg.frames)]
    for w in windows:  # every sample is a window of a train-split dashcam clip
        assert any(np.array_equal(w, t) for t in train_windows)
    loss, parts = stage.loss(batch, rng, torch.Generator().manual_seed(0))
    assert torch.isfinite(loss) and set(parts) == {"l1", "l2", "kl"}
    scores = stage.eval_loss()
    assert {"eval_loss", "eval_psnr", "eval_recall", "eval_precision", "eval_ego_psnr", "eval_rgb_psnr"} <= set(scores)
    assert all(np.isfinite(v) for v in scores.values())


def test_pose_only_mix_never_opens_the_rgb_clips(clip_cache, tmp_path) -> None:  # noqa: F811
    cfg = _cfg(tmp_path, "vae", vae_loss={"rgb_fraction": 0.0, "ego_fraction": 0.0})
    stage = VaeStage(cfg, clip_cache, "cpu")
    batch = clip_cache.indices("train")[:2]
    windows = stage.sample_windows(batch, np.random.default_rng(0))
    pose, _ = clip_cache.batch(batch)
    for w, p in zip(windows, pose):
        assert any(np.array_equal(w, t) for t in _windows_of(p, cfg.frames))
    assert stage._rgb_clips is None and "eval_rgb_psnr" not in stage.eval_loss()


def test_fractions_are_checked() -> None:
    with pytest.raises(ConfigError, match="rgb_fraction"):
        VaeLossConfig(ego_fraction=0.6, rgb_fraction=0.6)


def test_agent_pixel_mask_marks_coloured_strokes_of_pose_windows_only() -> None:
    from mad_sim.model.training.vae_stage import agent_pixel_mask

    w = np.zeros((2, 3, 16, 16, 3), np.uint8)
    w[0, :, 5, 5] = (255, 0, 0)  # a vehicle edge pixel
    w[0, :, 10, 10] = 255  # a white lane pixel
    w[1] = 128  # a lit frame (ego-motion / camera RGB): never masked
    w[1, :, 5, 5] = (255, 0, 0)
    m = agent_pixel_mask(w)
    assert m[0, :, 4:7, 4:7].all() and m[0].sum() == 3 * 9  # the pixel and its 1-px ring, every frame
    assert not m[0, :, 10, 10].any() and not m[1].any()


def test_agent_weight_raises_the_loss_on_agent_pixels(clip_cache, tmp_path) -> None:  # noqa: F811
    """The same batch and weights: an agent weight re-weights the error towards the agents, so the loss changes."""
    batch = clip_cache.indices("train")[:2]
    losses = {}
    for aw in (0.0, 50.0):
        torch.manual_seed(0)
        stage = VaeStage(_cfg(tmp_path, "vae", vae_loss={"ego_fraction": 0.0, "agent_weight": aw}), clip_cache, "cpu")
        losses[aw] = float(stage.loss(batch, np.random.default_rng(0), torch.Generator().manual_seed(0))[0])
    assert losses[50.0] != losses[0.0]


def test_training_frames_follow_the_presets_time_compression() -> None:
    from mad_sim.model.training.loop import TrainConfig

    assert TrainConfig(stage="vae", preset="tiny", frames=5).frames == 5  # 4x in time: 4k + 1
    with pytest.raises(ConfigError, match="4k\\+1"):
        TrainConfig(stage="vae", preset="tiny", frames=7)
    with pytest.raises(ConfigError, match="8k\\+1"):
        TrainConfig(stage="vae", preset="ltx-2b", frames=5)


def test_training_clips_take_the_presets_pose_camera() -> None:
    """data.spec's camera defaults to the preset's; a different one is an error (the env renders with the preset's)."""
    from mad_sim.model.presets import PRESETS
    from mad_sim.model.training.datasets import DatasetConfig
    from mad_sim.model.training.loop import TrainConfig

    cfg = TrainConfig(stage="base", preset="tiny")
    assert cfg.data.clip_spec().mount == PRESETS["tiny"].camera
    same = TrainConfig(stage="base", preset="tiny", data=DatasetConfig(spec={"camera_height": 12.0}))
    assert same.data.spec["camera_height"] == 12.0
    with pytest.raises(ConfigError, match="camera_height=1.6 differs from preset 'tiny'"):
        TrainConfig(stage="base", preset="tiny", data=DatasetConfig(spec={"camera_height": 1.6}))
