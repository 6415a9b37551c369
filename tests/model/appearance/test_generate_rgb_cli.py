"""`generate rgb` end to end on a random-init tiny backbone with a saved appearance LoRA."""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from mad_sim.cli import generate_rgb
from mad_sim.errors import ConfigError, DataError, PresetError, ShapeError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers()
    generate_rgb.add_rgb_parser(sub)
    return p


@pytest.fixture(scope="module")
def lora(tmp_path_factory):
    from mad_sim.model.backbone_loading import load_backbone
    from mad_sim.model.mad import MADModel

    model = MADModel(load_backbone("tiny", weights="random", device="cpu", seed=0))
    model.add_adapter("appearance", rank=4, alpha=4)
    return model.save_adapter("appearance", tmp_path_factory.mktemp("lora") / "appearance.safetensors")


def test_generate_rgb_writes_video(tmp_path, lora, capsys):
    import cv2

    from mad_sim.data.camera_files import read_video
    from mad_sim.render.video import write_video

    pose = np.zeros((9, 128, 128, 3), np.uint8)
    pose[:, 100:, 40:90] = 255
    write_video(tmp_path / "pose.mp4", pose)
    cv2.imwrite(str(tmp_path / "first.png"), np.full((128, 128, 3), 90, np.uint8))
    args = _parser().parse_args(
        [
            "rgb",
            "--pose",
            str(tmp_path / "pose.mp4"),
            "--first-frame",
            str(tmp_path / "first.png"),
            "--prompt",
            "rainy night",
            "--out",
            str(tmp_path / "out.mp4"),
            "--weights",
            "random",
            "--lora",
            str(lora),
            "--steps",
            "2",
            "--side-by-side",
        ]
    )
    assert args.func(args) == 0
    out, _ = read_video(tmp_path / "out.mp4")
    assert out.shape == (9, 128, 256, 3)
    assert '"frames": 9' in capsys.readouterr().out


def test_generate_rgb_errors(tmp_path, lora):
    from mad_sim.render.video import write_video

    write_video(tmp_path / "short.mp4", np.zeros((6, 128, 128, 3), np.uint8))
    write_video(tmp_path / "small.mp4", np.zeros((9, 64, 64, 3), np.uint8))
    common = ["--out", str(tmp_path / "o.mp4"), "--weights", "random", "--lora", str(lora), "--steps", "2"]
    p = _parser()
    with pytest.raises(ShapeError, match="short.mp4: pose video has 6 frames; the tiny VAE takes 4k\\+1"):
        a = p.parse_args(["rgb", "--pose", str(tmp_path / "short.mp4")] + common)
        a.func(a)
    from mad_sim.cli.generate_rgb import check_inputs

    check_inputs(np.zeros((13, 128, 128, 3), np.uint8), "p.mp4", None, None, "tiny")  # 4k+1: the tiny VAE's time grid
    with pytest.raises(ShapeError, match="small.mp4: pose video is 64x64 pixels"):
        a = p.parse_args(["rgb", "--pose", str(tmp_path / "small.mp4")] + common)
        a.func(a)
    with pytest.raises(ConfigError, match="prompt is empty"):
        a = p.parse_args(["rgb", "--pose", str(tmp_path / "small.mp4"), "--prompt", ""] + common)
        a.func(a)
    import cv2

    write_video(tmp_path / "pose.mp4", np.zeros((9, 128, 128, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "first.png"), np.zeros((96, 128, 3), np.uint8))
    (tmp_path / "notimage.png").write_text("not an image")
    with pytest.raises(ShapeError, match="first.png: first frame is 96x128 pixels, expected 128x128"):
        a = p.parse_args(["rgb", "--pose", str(tmp_path / "pose.mp4"), "--first-frame", str(tmp_path / "first.png")] + common)
        a.func(a)
    with pytest.raises(DataError, match="notimage.png"):
        a = p.parse_args(["rgb", "--pose", str(tmp_path / "pose.mp4"), "--first-frame", str(tmp_path / "notimage.png")] + common)
        a.func(a)
    with pytest.raises(PresetError, match="no appearance adapter"):
        a = p.parse_args(
            [
                "rgb",
                "--pose",
                str(tmp_path / "pose.mp4"),
                "--out",
                str(tmp_path / "o.mp4"),
                "--lora",
                str(tmp_path / "missing.safetensors"),
            ]
        )
        a.func(a)
