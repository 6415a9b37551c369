"""`mad-sim generate pose` end to end on the real WOMD log, and its bad-input errors."""

from __future__ import annotations

import json

import imageio.v3 as iio
import pytest

from mad_sim.cli import main


def test_generate_pose_writes_a_forecast(womd_path, tmp_path, capsys):
    out = tmp_path / "forecast.gif"
    rc = main(
        [
            "generate",
            "pose",
            "--scenario",
            str(womd_path),
            "--viewpoint",
            "sdc",
            "--frames",
            "9",
            "--size",
            "64",
            "64",
            "--steps",
            "2",
            "--weights",
            "random",
            "--no-lora",
            "--out",
            str(out),
            "--compare",
        ]
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["scenario"] == "ee519cf571686d19" and summary["present_step"] == 10
    assert summary["frames"] == 9 and summary["ego_motion"] == "log" and summary["forecast_s"] > 0
    frames = iio.imread(out, index=None)
    assert frames.shape[0] == 9 and frames.shape[1] == 64 and frames.shape[2] == 3 * 64  # log | forecast | ego


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--frames", "16"], "4k\\+1 frames \\(e.g. 13 or 17\\)"),  # the tiny VAE's 4x time compression
        (["--preset", "ltx-2b"], "--backbone PATH"),
        (["--viewpoint", "9999"], "track index outside"),
        (["--lora", "/nonexistent/motion.safetensors"], "LoRA file not found"),
        (["--history", "17", "--frames", "9"], "do not fit the log"),
    ],
)
def test_generate_pose_errors(womd_path, tmp_path, capsys, extra, message):
    args = [
        "generate",
        "pose",
        "--scenario",
        str(womd_path),
        "--out",
        str(tmp_path / "x.gif"),
        "--weights",
        "random",
        "--size",
        "64",
        "64",
        "--steps",
        "2",
    ]
    if "--lora" not in extra:
        args.append("--no-lora")
    rc = main(args + extra)
    err = capsys.readouterr().err
    assert rc == 2, err
    assert err.startswith("mad-sim generate: error:") and len(err.strip().splitlines()) == 1
    import re

    assert re.search(message, err), err
    assert not (tmp_path / "x.gif").exists()


def test_one_step_is_refused_by_name(tiny_backbone):
    from mad_sim.errors import ShapeError
    from mad_sim.model import MADModel

    with pytest.raises(ShapeError, match="steps must be >= 2"):
        MADModel(tiny_backbone).sample([], num_frames=9, height=64, width=64, steps=1)


def test_generate_pose_with_actions_and_bad_actions(womd_path, tmp_path, capsys):
    import numpy as np

    good = tmp_path / "brake.npy"
    np.save(good, np.stack([np.full(9, -2.0), np.zeros(9)], axis=1))  # brake 2 m/s^2, straight
    out = tmp_path / "a.gif"
    base = [
        "generate",
        "pose",
        "--scenario",
        str(womd_path),
        "--frames",
        "9",
        "--size",
        "64",
        "64",
        "--steps",
        "2",
        "--weights",
        "random",
        "--no-lora",
    ]
    assert main(base + ["--ego-motion", str(good), "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["ego_motion"] == str(good)
    assert iio.imread(out, index=None).shape[:3] == (9, 64, 64)
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((5, 2)))
    assert main(base + ["--ego-motion", str(bad), "--out", str(tmp_path / "b.gif")]) == 2
    assert "actions must be finite [9, 2]" in capsys.readouterr().err


def test_generate_pose_with_box_control(womd_path, tmp_path, capsys):
    """--boxes-agents: the forecast is conditioned on (shifted) logged boxes; the summary scores it."""
    base = [
        "generate",
        "pose",
        "--scenario",
        str(womd_path),
        "--frames",
        "9",
        "--size",
        "64",
        "64",
        "--steps",
        "2",
        "--weights",
        "random",
    ]
    from mad_sim.model import MADModel, load_backbone

    lora = tmp_path / "motion.safetensors"
    model = MADModel(load_backbone("tiny", weights="random", device="cpu"))
    model.add_adapter("motion", rank=4, alpha=4)
    from mad_sim.model.lora import save_lora

    save_lora(model.backbone.transformer, "motion", lora, prefix="transformer")
    out = tmp_path / "boxes.gif"
    at128 = ["--size", "128", "128"]  # the preset's size: cars fill their boxes' 8 pixels with room to spare
    assert (
        main(
            base
            + at128
            + ["--lora", str(lora), "--boxes-agents", "auto", "--boxes-shift", "0,3.5", "--compare", "--out", str(out)]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert 1 <= len(summary["boxes_agents"]) <= 3 and summary["boxes_shift_m"] == [0.0, 3.5]
    assert 0.0 <= summary["follow_iou"] <= 1.0
    assert iio.imread(out, index=None).shape[:3] == (9, 128, 4 * 128)  # log | forecast | boxes | ego
    for extra, message in (
        (["--boxes-shift", "1,2"], "needs --boxes-agents"),
        (["--boxes-agents", "3,x"], "expected track indices"),
        (["--boxes-agents", str(summary["viewpoint"])], "other than the viewpoint"),
        (["--boxes-agents", "auto", "--boxes-shift", "1"], "two finite numbers"),
        # at 32x32 no car fills 8 pixels of its box over the SDC's whole forecast (from the preset's camera)
        (["--size", "32", "32", "--boxes-agents", "auto"], "no vehicle is visible"),
    ):
        assert main(base + ["--no-lora", "--out", str(tmp_path / "e.gif")] + extra) == 2
        assert message in capsys.readouterr().err
