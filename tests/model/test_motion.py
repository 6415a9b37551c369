"""MotionPredictor on real pose/ego-motion videos; a LoRA step lowers the loss on a real clip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mad_sim.errors import ConfigError, ShapeError
from mad_sim.model import Condition, MotionPredictor, uint8_to_video


@pytest.fixture
def womd_clip(womd_path):
    """Real SDC pose frames at 64x64: history (steps 2..10) and future (11..19), and the future's ego motion."""
    from mad_sim.data import load_scenario
    from mad_sim.render.ego_motion import EgoMotionRenderer
    from mad_sim.render.pose import PoseRenderer

    sc = load_scenario(womd_path)
    frames = PoseRenderer(64, 64).render_scenario(sc, sc.sdc_index, 2, 20)
    poses = np.concatenate([sc.tracks.xy[sc.sdc_index, 11:20], sc.tracks.heading[sc.sdc_index, 11:20, None]], axis=1)
    ego = EgoMotionRenderer(64, 64, seed=0).render(poses)
    return frames[:9], frames[9:], ego


def test_forecast_shapes_determinism_and_errors(tiny_model, womd_clip, make_gen):
    hist, _, ego = womd_clip
    with pytest.raises(ConfigError, match="no adapter 'motion'"):
        MotionPredictor(tiny_model)
    tiny_model.add_adapter("motion", rank=4)
    mp = MotionPredictor(tiny_model)
    a = mp.forecast(hist, num_frames=9, steps=2, generator=make_gen(0))
    b = mp.forecast(hist, num_frames=9, steps=2, generator=make_gen(0))
    c = mp.forecast(hist, ego_motion=ego, num_frames=9, steps=2, generator=make_gen(0))
    assert a.shape == (9, 64, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)  # the ego-motion video is read
    batched = mp.forecast(np.stack([hist, hist]), ego_motion=np.stack([ego, ego]), num_frames=9, steps=2, generator=make_gen(0))
    assert batched.shape == (2, 9, 64, 64, 3)
    with pytest.raises(ShapeError, match=f"{tiny_model.backbone.temporal_ratio}k\\+1"):
        mp.forecast(hist[:8], num_frames=9)
    with pytest.raises(ShapeError, match="ego_motion"):
        mp.forecast(hist, ego_motion=ego[:5], num_frames=9)
    with pytest.raises(ShapeError, match="uint8"):
        mp.forecast(hist.astype(np.float32), num_frames=9)


def test_forecast_reads_the_box_video(tiny_model, womd_clip, make_gen):
    """A box video (object control) is a condition of the forecast: other boxes, other forecast."""
    from mad_sim.data import load_scenario
    from mad_sim.model.object_control import box_video_from_trajectory, choose_controlled_agents
    from mad_sim.render.pose import PoseRenderer
    from tests.conftest import data_file

    hist, _, ego = womd_clip
    sc = load_scenario(data_file("womd/womd_scenario_input.tfrecord"))
    cam = PoseRenderer(64, 64).camera
    steps = np.arange(11, 20)
    agents = choose_controlled_agents(
        sc.tracks, sc.object_types, sc.sdc_index, steps, cam, np.random.default_rng(0), min_pixels=2
    )  # small cars at 64x64
    assert agents.size
    boxes = box_video_from_trajectory(sc.tracks, sc.sdc_index, agents, steps, cam)
    tiny_model.add_adapter("motion", rank=4)
    mp = MotionPredictor(tiny_model)
    plain = mp.forecast(hist, ego_motion=ego, num_frames=9, steps=2, generator=make_gen(0))
    boxed = mp.forecast(hist, ego_motion=ego, boxes=boxes, num_frames=9, steps=2, generator=make_gen(0))
    moved = mp.forecast(hist, ego_motion=ego, boxes=np.roll(boxes, 16, axis=2), num_frames=9, steps=2, generator=make_gen(0))
    assert boxed.shape == plain.shape == (9, 64, 64, 3)
    assert not np.array_equal(plain, boxed) and not np.array_equal(boxed, moved)
    with pytest.raises(ShapeError, match="boxes"):
        mp.forecast(hist, boxes=boxes[:5], num_frames=9)
    with pytest.raises(ShapeError, match="boxes: batch"):
        mp.forecast(hist, boxes=np.stack([boxes, boxes]), num_frames=9)


@pytest.mark.slow
def test_lora_steps_lower_the_loss_on_a_real_clip(tiny_model, womd_clip, make_gen):
    """A few AdamW steps of the motion adapter on one real clip lower its fixed-draw denoising loss."""
    hist, fut, ego = womd_clip
    model = tiny_model
    model.add_adapter("motion", rank=16, alpha=16)
    model.set_adapter("motion")
    target = uint8_to_video(torch.from_numpy(fut)).unsqueeze(0)
    conds = model.encode_conditions(
        [
            Condition(uint8_to_video(torch.from_numpy(hist)).unsqueeze(0), "pose_history"),
            Condition(uint8_to_video(torch.from_numpy(ego)).unsqueeze(0), "ego_motion"),
        ]
    )
    with torch.no_grad():
        x0 = model.backbone.encode_video(target)
    sig = torch.tensor([0.5])
    eps = torch.randn(x0.shape, generator=make_gen(1))

    def fixed_loss() -> float:
        with torch.no_grad():
            return float(model.training_loss(None, target_latents=x0, condition_latents=conds, sigmas=sig, noise=eps))

    before = fixed_loss()
    opt = torch.optim.AdamW(model.adapter_parameters("motion"), lr=5e-3)
    for i in range(6):  # half the steps on the fixed draw, half on fresh ones
        draw = dict(sigmas=sig, noise=eps) if i % 2 == 0 else dict(generator=make_gen(10 + i))
        loss = model.training_loss(None, target_latents=x0, condition_latents=conds, **draw)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = fixed_loss()
    assert after < 0.8 * before, (before, after)
