"""``mad-sim render``: writes the video and prints its JSON summary; bad input exits 2 with one line."""

import json

import imageio.v2 as imageio
import numpy as np

from mad_sim.cli import main


def test_render_cli_writes_video_and_summary(womd_path, tmp_path, capsys):
    out = tmp_path / "sdc.mp4"
    rc = main(
        [
            "render",
            str(womd_path),
            "--viewpoint",
            "sdc",
            "--out",
            str(out),
            "--size",
            "96x64",
            "--panels",
            "pose,ego,bev",
            "--t0",
            "5",
            "--t1",
            "25",
        ]
    )
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] == 20 and summary["height"] == 64
    assert summary["width"] == 96 + 96 + 64  # pose, ego, square BEV
    assert summary["seconds"] == 2.0
    frames = imageio.mimread(out)
    assert len(frames) == 20 and frames[0].shape == (64, 256, 3)
    assert np.asarray(frames[10]).max() > 100


def test_render_cli_gif_from_another_track(womd_path, tmp_path, capsys):
    out = tmp_path / "track.gif"
    assert (
        main(["render", str(womd_path), "--viewpoint", "3", "--out", str(out), "--size", "64x48", "--t0", "10", "--t1", "14"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["frames"] == 4
    assert len(imageio.mimread(out)) == 4


def test_render_cli_bad_input(womd_path, tmp_path, capsys):
    assert main(["render", str(womd_path), "--viewpoint", "9999", "--out", str(tmp_path / "x.mp4")]) == 2
    assert "viewpoint track 9999" in capsys.readouterr().err
    assert main(["render", str(womd_path), "--size", "big", "--out", str(tmp_path / "x.mp4")]) == 2
    assert main(["render", str(womd_path), "--panels", "pose,rgb", "--out", str(tmp_path / "x.mp4")]) == 2
    assert main(["render", str(womd_path), "--out", str(tmp_path / "x.avi"), "--t0", "0", "--t1", "2"]) == 2
    assert not list(tmp_path.iterdir())
