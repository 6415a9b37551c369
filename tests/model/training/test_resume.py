"""The training loop: N steps straight == N/2 steps + resume + N/2 steps (bit-identical), CLI errors.

Tiny random models on 64x64 clips (9 + 9 frames) rendered from a real WOMD log.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mad_sim.cli import main as cli_main
from mad_sim.config import from_dict
from mad_sim.errors import CheckpointError
from mad_sim.model.training.checkpoint import load_checkpoint
from mad_sim.model.training.clips import ClipSpec
from mad_sim.model.training.datasets import ClipCache, SourceConfig, build_clip_cache
from mad_sim.model.training.loop import TrainConfig, train

_BUILT: dict = {}


@pytest.fixture
def clip_cache(womd_path, tmp_path_factory) -> ClipCache:
    if "cache" not in _BUILT:
        spec = ClipSpec(context_frames=9, future_frames=9, width=64, height=64, stride=30, max_viewpoints=2)
        src = [
            SourceConfig(kind="file", path=str(womd_path), split="train", seed=0),
            SourceConfig(kind="file", path=str(womd_path), split="eval", seed=1, t_range=[60, 91], max_clips=2),
        ]
        _BUILT["cache"] = ClipCache(build_clip_cache(spec, src, tmp_path_factory.mktemp("clips"), progress=False))
    return _BUILT["cache"]


def _cfg(out, stage: str, steps: int = 4, **kw) -> TrainConfig:
    base = {
        "stage": stage,
        "steps": steps,
        "batch_size": 2,
        "frames": 9,
        "output_dir": str(out),
        "log_every": 1,
        "checkpoint_every": 0,
        "checkpoint_minutes": 0,
        "eval_clips": 2,
        "lora": {"rank": 4, "alpha": 4.0},
        "optim": {"lr": 1e-3, "warmup_steps": 1},
    }
    base.update(kw)
    return from_dict(base, TrainConfig)


@pytest.mark.parametrize("stage", ["vae", "motion"])
def test_resume_is_bit_exact(stage, clip_cache, tmp_path):
    assert train(_cfg(tmp_path / "a", stage), cache=clip_cache, progress=False).steps == 4
    half = train(_cfg(tmp_path / "b", stage), cache=clip_cache, progress=False, stop_after=2)
    assert half.steps == 2 and half.exported == {}
    resumed = train(_cfg(tmp_path / "b", stage), cache=clip_cache, progress=False, resume=True)
    assert resumed.steps == 4 and resumed.exported
    a = load_checkpoint(tmp_path / "a" / "checkpoints")
    b = load_checkpoint(tmp_path / "b" / "checkpoints")
    assert a.step == b.step == 4
    assert a.model.keys() == b.model.keys() and a.model
    for k in a.model:
        assert torch.equal(a.model[k], b.model[k]), k
    for pid, st in a.optimizer["state"].items():
        assert torch.equal(st["exp_avg_sq"], b.optimizer["state"][pid]["exp_avg_sq"])
    # the loss log continues across the resume and equals the straight run's
    la = json.loads((tmp_path / "a" / "losses.json").read_text())["records"]
    lb = json.loads((tmp_path / "b" / "losses.json").read_text())["records"]
    assert [r["step"] for r in lb] == [1, 2, 3, 4]
    assert [r["loss"] for r in la] == [r["loss"] for r in lb]
    assert (tmp_path / "b" / "loss.png").stat().st_size > 1000
    # the steps really trained something: the weights moved between step 2 and step 4
    mid = load_checkpoint(tmp_path / "b" / "checkpoints" / "step_0000002")
    assert any(not torch.equal(mid.model[k], b.model[k]) for k in b.model)


def test_motion_export_is_a_loadable_lora_that_changes_the_model(clip_cache, tmp_path):
    from mad_sim.model import MADModel, load_backbone

    res = train(_cfg(tmp_path / "m", "motion", steps=3), cache=clip_cache, progress=False)
    model = MADModel(load_backbone("tiny", weights="random", device="cpu", seed=0))
    model.load_adapter("motion", res.exported["motion"])
    from mad_sim.model.evaluation.motion import evaluate_motion

    ev = evaluate_motion(model, clip_cache, max_clips=2, sigmas=(0.5,))
    assert ev.num_clips == 2 and set(ev.base) == {"history", "history_ego"}
    assert all(np.isfinite(v) for v in list(ev.base.values()) + list(ev.adapted.values()))
    assert ev.base != ev.adapted  # the trained adapter moves the prediction
    # swapping in another clip's ego video changes what the model sees (it attends to the ego tokens)
    assert set(ev.ego_sensitivity) == {"base", "adapted"}
    assert all(np.isfinite(v) and v != 0.0 for v in ev.ego_sensitivity.values())
    again = evaluate_motion(model, clip_cache, max_clips=2, sigmas=(0.5,))
    assert again.base == ev.base and again.adapted == ev.adapted  # fixed noise: reproducible
    # the forecast comparison: context frames shared, futures from the base and the adapted model
    from mad_sim.model.evaluation.motion import forecast_comparison, write_forecast_video

    clip = int(clip_cache.indices("eval")[0])
    before = model.active_adapter
    vids = forecast_comparison(model, clip_cache, clip, steps=2, seed=1)
    spec = clip_cache.spec
    assert set(vids) == {"log", "base", "adapted"}
    for v in vids.values():
        assert v.shape == (spec.total_frames, 64, 64, 3) and v.dtype == np.uint8
        assert np.array_equal(v[: spec.context_frames], vids["log"][: spec.context_frames])
    assert not np.array_equal(vids["base"], vids["adapted"])
    assert model.active_adapter == before  # restored
    out = write_forecast_video(vids, tmp_path / "cmp.gif")
    assert out.stat().st_size > 1000


def test_resume_without_checkpoint_is_an_error(clip_cache, tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        train(_cfg(tmp_path / "empty", "vae"), cache=clip_cache, progress=False, resume=True)


def test_cli_reports_bad_config_in_one_line(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("stage: vae\nbatchsize: 2\n")
    assert cli_main(["train", "vae", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown config key 'batchsize'" in err and "bad.yaml" in err
