"""``mad-sim demo --rgb``: the closed loop with a camera panel from the appearance synthesizer."""

import json

import imageio.v3 as iio
import numpy as np
import pytest

from mad_sim.cli import main


@pytest.mark.slow
def test_demo_rgb_adds_a_camera_panel(tmp_path, capsys):
    out = tmp_path / "demo.gif"
    rc = main(
        [
            "demo",
            "--agents",
            "idm",
            "--seed",
            "1",
            "--kind",
            "straight",
            "--steps",
            "20",
            "--size",
            "64",
            "--rgb",
            "--prompt",
            "rainy night",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 20 and summary["frames"] == 21
    # 21 camera frames in chunks of 17 (16 new frames per later chunk): 2 syntheses, plus any resync
    assert 2 <= summary["rgb_syntheses"] <= 6
    assert summary["rgb_weights"] in ("shipped", "random")
    frames = iio.imread(out)
    assert frames.shape == (21, 64, 192, 3)  # pose | bev | camera (128 px camera frames resized to the panel)
    camera = frames[:, :, 128:].astype(np.int16)
    assert camera.std() > 1.0 and np.abs(np.diff(camera, axis=0)).mean() > 0  # drawn, and it changes over time


def test_demo_prompt_without_rgb_is_an_error(tmp_path, capsys):
    rc = main(["demo", "--agents", "idm", "--steps", "2", "--prompt", "rainy night", "--out", str(tmp_path / "d.gif")])
    assert rc == 2
    assert "--prompt" in capsys.readouterr().err
