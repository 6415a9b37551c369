"""The appearance training entry point: YAML with its `appearance:` section, the trainer run, held-out scoring."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mad_sim.errors import ConfigError
from mad_sim.model.training.appearance_clips import AppearanceClips, AppearanceClipSpec, build_appearance_clips
from mad_sim.model.training.appearance_train import AppearanceTaskConfig, load_appearance_config, score_adapter, train_appearance
from tests.conftest import data_file

CONFIG = Path(__file__).resolve().parents[3] / "configs" / "train" / "tiny_appearance.yaml"


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    spec = AppearanceClipSpec(frames=9, width=64, height=64, phases=1, mirror=False, stride=6, eval_stride=4)
    folder = build_appearance_clips(
        videos=[data_file("video/solidWhiteRight.mp4")],
        spec=spec,
        cache_root=tmp_path_factory.mktemp("appearance"),
        progress=False,
    )
    return AppearanceClips(folder)


def test_shipped_config_loads(tmp_path):
    cfg, task = load_appearance_config(CONFIG)
    assert cfg.stage == "appearance" and cfg.threads == 2 and task.targeted_noise and task.targeted_noise_max == 0.3
    assert task.spec().frames == 17 and task.spec().width == 128
    _, off = load_appearance_config(CONFIG, task_overrides={"targeted_noise": False})
    assert off.targeted_noise is False
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG.read_text().replace("p_first: 0.5", "p_frist: 0.5"))
    with pytest.raises(ConfigError, match="p_frist"):
        load_appearance_config(bad)
    with pytest.raises(ConfigError, match="p_first"):
        AppearanceTaskConfig(p_first=1.5)


def test_mad_sim_train_appearance_routes_to_the_appearance_config(tmp_path, capsys):
    from mad_sim.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text(CONFIG.read_text().replace("p_first: 0.5", "p_frist: 0.5"))
    assert main(["train", "appearance", "--config", str(bad)]) == 2  # read as an appearance config: its own key names
    assert "p_frist" in capsys.readouterr().err


def test_trainer_builds_the_appearance_stage(clips):
    from mad_sim.model.training.appearance_stage import AppearanceStage
    from mad_sim.model.training.stages import build_stage

    cfg, task = load_appearance_config(CONFIG, {"init_backbone": "", "lora": {"rank": 4, "alpha": 4.0}})
    assert isinstance(build_stage(dataclass_replace(cfg, task=task), clips, "cpu"), AppearanceStage)


@pytest.mark.slow
def test_train_appearance_runs_the_stage_and_the_knob_reaches_it(clips, tmp_path):
    cfg, task = load_appearance_config(
        CONFIG,
        {
            "init_backbone": "",
            "steps": 2,
            "batch_size": 1,
            "log_every": 1,
            "checkpoint_every": 2,
            "eval_clips": 1,
            "lora": {"rank": 4, "alpha": 4.0},
        },
    )
    losses = {}
    for tn in (True, False):
        run = tmp_path / f"tn_{tn}"
        res = train_appearance(
            dataclass_replace(cfg, output_dir=str(run)),
            AppearanceTaskConfig(p_first=1.0, targeted_noise=tn),
            clips=clips,
            progress=False,
        )
        assert res.steps == 2 and Path(res.exported["appearance"]).is_file()
        records = json.loads((run / "losses.json").read_text())["records"]
        assert np.isfinite(records[-1]["eval_loss"]) and np.isfinite(records[-1]["eval_loss_perturbed_pose"])
        losses[tn] = [r["loss"] for r in records]
    assert losses[True] != losses[False]  # same seed, same data: only the targeted noise differs
    scores, synth = score_adapter(cfg, AppearanceTaskConfig(), clips, res.exported["appearance"], steps=2)
    assert synth.size == (64, 64) and scores["clips"] == len(clips.indices("eval"))
    for k in ("eval_loss", "eval_loss_perturbed_pose", "psnr", "ssim", "psnr_perturbed", "ssim_perturbed"):
        assert np.isfinite(scores[k])
    assert 5.0 < scores["psnr"] < 40.0 and -1.0 < scores["ssim"] < 1.0


def dataclass_replace(obj, **kw):
    import dataclasses

    return dataclasses.replace(obj, **kw)
