"""``mad-sim demo`` and ``mad-sim replay`` write videos and print JSON summaries."""

import json

import imageio.v3 as iio

from mad_sim.cli import main


def test_demo_procedural(tmp_path, capsys):
    out = tmp_path / "demo.mp4"
    rc = main(["demo", "--seed", "1", "--kind", "curve", "--size", "96", "--out", str(out)])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["steps"] == 80 and summary["collisions"] == 0 and summary["progress_m"] > 20.0
    frames = iio.imread(out)
    assert frames.shape == (81, 96, 192, 3)
    assert frames[:, :, 96:].mean() > frames[:, :, 96:].min()  # the BEV panel is drawn


def test_replay_log(tmp_path, capsys, womd_path):
    out = tmp_path / "replay.gif"
    rc = main(["replay", str(womd_path), "--size", "64", "--out", str(out)])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["scenario_id"] == "ee519cf571686d19" and summary["steps"] == 80
    assert summary["collisions"] == 0 and summary["progress_m"] > 15.0
    assert iio.imread(out).shape[0] == 81


def test_replay_bad_file(tmp_path, capsys):
    rc = main(["replay", str(tmp_path / "missing.tfrecord"), "--out", str(tmp_path / "x.mp4")])
    assert rc == 2 and "missing.tfrecord" in capsys.readouterr().err
    assert not (tmp_path / "x.mp4").exists()
