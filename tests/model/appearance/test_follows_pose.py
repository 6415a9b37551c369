"""The shipped appearance adapter follows the pose video, on held-out dashcam clips.

The dashcam scene is asymmetric (a bright dirt shoulder and the solid white
line on the right, trees on the left). Synthesizing with no first frame, from
the held-out pose video and from its mirror image (same noise), the frames
made from the pose must look more like the real clip than like its mirror,
and the frames made from the mirrored pose more like the mirrored clip: the
layout comes from the pose, not from a memorised average scene. The adapter
was trained on mirrored copies too, so both layouts are in its data.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mad_sim.model.appearance.synthesizer import AppearanceSynthesizer, appearance_lora_path
from mad_sim.model.evaluation.vae_metrics import psnr
from mad_sim.model.training.appearance_clips import AppearanceClips, build_appearance_clips
from mad_sim.model.training.appearance_train import load_appearance_config
from tests.conftest import data_file
from tests.model.training.test_appearance_train import CONFIG


@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    _, task = load_appearance_config(CONFIG)
    folder = build_appearance_clips(
        videos=[data_file("video/solidWhiteRight.mp4")],
        spec=task.spec(),
        cache_root=tmp_path_factory.mktemp("appearance"),
        progress=False,
    )
    clips = AppearanceClips(folder)
    idx = clips.indices("eval")[:2]
    return np.asarray(clips.rgb[idx]), np.asarray(clips.pose[idx])


def test_synthesized_layout_follows_the_pose_video(held_out) -> None:
    if not appearance_lora_path("tiny").is_file():
        pytest.skip("no shipped tiny appearance adapter")
    synth = AppearanceSynthesizer.from_pretrained("tiny", device="cpu")
    rgb, pose = held_out
    for real, p in zip(rgb, pose):
        s = synth.synthesize(p, steps=8, generator=torch.Generator().manual_seed(0))
        s_mirror = synth.synthesize(p[:, :, ::-1].copy(), steps=8, generator=torch.Generator().manual_seed(0))
        real_mirror = real[:, :, ::-1]
        assert psnr(real, s) > 16.0  # a dashcam-like frame, not noise (noise scores about 8 dB)
        assert psnr(real, s) > psnr(real_mirror, s) + 0.2
        assert psnr(real_mirror, s_mirror) > psnr(real, s_mirror) + 0.2
