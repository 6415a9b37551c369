"""One source of truth for the model's defaults (the preset) and one sampling path (MADModel.sample)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mad_sim.planners.mad import MADPlannerSettings

from mad_sim.errors import CheckpointError
from mad_sim.model.agents.predictor_service import ForecastRequest, PredictorService, load_predictor
from mad_sim.model.agents.settings import LearnedAgentSettings
from mad_sim.model.presets import PRESETS


def test_presets_carry_the_sampler_defaults():
    assert (PRESETS["tiny"].sampler_steps, PRESETS["tiny"].guidance_scale, PRESETS["tiny"].adapter_rank) == (4, 1.0, 32)
    for name in ("ltx-2b", "ltx-13b"):  # the MAD paper's inference, applied at run time now
        assert (PRESETS[name].sampler_steps, PRESETS[name].guidance_scale, PRESETS[name].adapter_rank) == (50, 3.5, 512)
    assert LearnedAgentSettings().sampler_steps is None and MADPlannerSettings().sampler_steps is None


def test_service_uses_the_preset_steps_and_model_sample(monkeypatch):
    torch.set_num_threads(1)
    predictor, info = load_predictor("tiny", "random")
    assert info == "random"
    svc = PredictorService(predictor, precision="float32")
    assert svc.steps == PRESETS["tiny"].sampler_steps and svc.precision_why == "asked for"
    seen = {}
    real = type(predictor.model).sample

    def spy(self, *args, **kwargs):
        seen.update(kwargs)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(type(predictor.model), "sample", spy)
    hist = np.zeros((9, 64, 64, 3), np.uint8)
    hist[:, 20:40, 20:40] = 200
    svc.steps = 2
    frames = svc.forecast([ForecastRequest(hist, None, 9, seed=7)])[0]
    assert seen["steps"] == 2 and tuple(seen["latents"].shape[1:]) == tuple(predictor.model.backbone.latent_shape(9, 64, 64))
    # the same initial noise through MADModel.sample directly gives the same frames
    from mad_sim.model.conditioning import Condition, uint8_to_video, video_to_uint8

    noise = torch.randn(tuple(predictor.model.backbone.latent_shape(9, 64, 64)), generator=torch.Generator().manual_seed(7))[None]
    video = real(
        predictor.model,
        [Condition(uint8_to_video(torch.from_numpy(hist[None])), "pose_history")],
        num_frames=9,
        height=64,
        width=64,
        steps=2,
        latents=noise,
    )
    np.testing.assert_array_equal(video_to_uint8(video)[0].numpy(), frames)


def test_named_files_that_are_missing_or_unreadable_are_checkpoint_errors(tmp_path, monkeypatch):
    """Defect 1: a lora= path that does not exist used to run a random model with a warning."""
    with pytest.raises(CheckpointError, match="nope.safetensors.*not found"):
        load_predictor("tiny", "auto", lora=str(tmp_path / "nope.safetensors"))
    with pytest.raises(CheckpointError, match="nope.safetensors"):
        load_predictor("tiny", "random", lora=str(tmp_path / "nope.safetensors"))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        load_predictor("tiny", "random", lora=str(bad))
    with pytest.raises(CheckpointError, match="base.safetensors"):
        load_predictor("tiny", str(tmp_path / "base.safetensors"))
    import mad_sim.model.backbone as backbone

    monkeypatch.setattr(backbone, "WEIGHTS_DIR", tmp_path)  # no shipped weights: auto never falls back to random
    monkeypatch.setattr(backbone, "shipped_weights", lambda preset: tmp_path / f"{preset}.safetensors")
    with pytest.raises(CheckpointError, match="weights='random'"):
        load_predictor("tiny", "auto")
