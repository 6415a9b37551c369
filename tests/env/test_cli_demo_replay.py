"""``mad-sim demo`` and ``mad-sim replay`` write videos and print JSON summaries."""

import json

import imageio.v3 as iio
import numpy as np
import pytest

from mad_sim.cli import main


@pytest.fixture()
def quick_learned_agents():
    """Learned agents on a small random-weight model (64 px, 9 frames, chunks of 8) so the demo test stays quick."""
    import torch

    threads = torch.get_num_threads()
    yield [f"--agent-option={kv}" for kv in ("size=64", "history_frames=9", "future_frames=9", "chunk=8", "sampler_steps=2")]
    torch.set_num_threads(threads)


def test_demo_learned_agents(tmp_path, capsys, quick_learned_agents):
    """The default demo is the closed loop with learned agents: they drive some agents; video and summary say so.

    The video has three labelled panels (log | imagined | parsed BEV), and the model card's headline figures
    are printed before the JSON summary, marked as measured on validation scenes, with their source."""
    out = tmp_path / "demo.gif"
    rc = main(["demo", "--seed", "0", "--weights", "random", "--size", "64", "--out", str(out), *quick_learned_agents])
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(lines[-1])
    head = "\n".join(lines[:-1])
    assert "Headline figures" in head and "mad_sim/weights/MODEL_CARD.md" in head and "validation scenes" in head
    assert "ego sensitivity" in head and "parse-back" in head and "denoising loss" in head
    assert "this run used a random model" in head  # the figures are the shipped weights', not this run's
    assert summary["panels"] == ["log", "imagined", "parsed (BEV, 60 m)"]
    assert 0 <= summary["measured_agent_steps"] <= summary["learned_agent_steps"]
    assert 1 <= summary["imagined_frames"] <= summary["steps"]  # frame 0 comes before any forecast
    assert summary["model_card"] == "mad_sim/weights/MODEL_CARD.md"
    assert summary["agents"] == "mad" and summary["planner"] == "idm"
    assert summary["weights"] == "random" and summary["weights_info"] == "random"
    # Default length: 3 whole prediction chunks (8 steps each under this fixture; 16 by default).
    assert summary["steps"] == 24 and summary["simulated_s"] == 2.4 and summary["frames"] == 25
    assert summary["learned_agents"] >= 1 and summary["learned_agent_steps"] >= summary["learned_agents"]
    assert summary["learned_max"] <= summary["learned_agents"]
    assert summary["predictions"] >= 3  # 24 steps in chunks of 8 (plus any early re-prediction)
    assert summary["progress_m"] > 5.0  # the IDM ego drives on
    for key in ("collisions", "offroad"):  # counted, not assumed zero: random-weight agents may hit the ego
        assert 0 <= summary[key] <= summary["steps"]
    assert summary["wall_time_s"] > 0 and summary["total_wall_time_s"] >= summary["wall_time_s"]
    assert "3 prediction chunks of 8 steps" in summary["note"]
    frames = iio.imread(out)
    assert frames.shape == (25, 64, 3 * 64, 3)  # log | imagined | parsed, 64 px each
    panels = [frames[:, :, 64 * i : 64 * (i + 1)].astype(np.int16) for i in range(3)]
    for i, p in enumerate(panels):
        assert (p[:, :8, :32].min(-1) > 200).sum(axis=(1, 2)).min() >= 3, f"panel {i}: no label in some frame"
    log, imagined, parsed = panels
    assert log[:, 12:].max() > 100  # the logged scene is drawn
    assert np.abs(np.diff(imagined[1:], axis=0)).mean() > 0  # the generated frames change over time
    assert parsed[:, 12:].max() > 100


def test_demo_procedural(tmp_path, capsys):
    out = tmp_path / "demo.mp4"
    rc = main(["demo", "--agents", "idm", "--seed", "1", "--kind", "curve", "--size", "96", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out.strip().splitlines()
    summary = json.loads(printed[-1])
    assert summary["agents"] == "idm" and "learned_agents" not in summary and "weights" not in summary
    assert summary["panels"] == ["log", "bev (agents: idm)"] and "measured_agent_steps" not in summary
    assert len(printed) == 1  # no model, no model card figures
    assert summary["steps"] == 80 and summary["collisions"] == 0 and summary["progress_m"] > 20.0
    frames = iio.imread(out)
    assert frames.shape == (81, 96, 192, 3)
    assert frames[:, :, 96:].mean() > frames[:, :, 96:].min()  # the BEV panel is drawn


def test_demo_without_model_card_fails_before_driving(tmp_path, capsys, monkeypatch):
    from mad_sim.model.evaluation import model_card_figures

    monkeypatch.setattr(model_card_figures, "CARD_PATH", tmp_path / "MODEL_CARD.md")
    out = tmp_path / "demo.gif"
    rc = main(["demo", "--weights", "random", "--steps", "2", "--size", "64", "--out", str(out)])
    assert rc == 2 and "model card not found" in capsys.readouterr().err
    assert not out.exists()


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
