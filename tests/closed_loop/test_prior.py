"""The constant-velocity prior of a forecast and sampling from it (SDEdit): geometry, parse-back, sampler, service."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from closed_loop_helpers import FAST

from mad_sim.data import load_scenario
from mad_sim.data.scenario import DT
from mad_sim.errors import ConfigError, ShapeError
from mad_sim.model.agents.learned import LearnedAgents, LearnedAgentSettings
from mad_sim.model.agents.predictor_service import ForecastRequest, PredictorService, load_predictor
from mad_sim.model.agents.prior import constant_velocity_future, render_prior
from mad_sim.world.state import WorldState


def _logged_plan(sc, state, frames):
    e, t = state.ego_index, state.timestep
    span = np.minimum(np.arange(t + 1, t + 1 + frames), sc.num_steps - 1)
    return np.concatenate([sc.tracks.xy[e, span], sc.tracks.heading[e, span, None]], 1)


def test_constant_velocity_future_moves_agents_and_ego(womd_path):
    sc = load_scenario(womd_path)
    state = WorldState.from_scenario(sc)
    t, e = state.timestep, state.ego_index
    plan = _logged_plan(sc, state, 9)
    fut = constant_velocity_future(state, plan)
    assert fut.xyz.shape == (state.num_agents, t + 1 + 9, 3)
    np.testing.assert_array_equal(fut.xyz[:, : t + 1], state.sim.xyz[:, : t + 1])
    others = np.flatnonzero(state.sim.valid[:, t] & (np.arange(state.num_agents) != e))
    k = 5
    want = state.sim.xy[others, t] + k * DT * state.sim.velocity[others, t]
    np.testing.assert_allclose(fut.xy[others, t + k], want)
    np.testing.assert_array_equal(fut.heading[others, t + k], state.sim.heading[others, t])
    np.testing.assert_allclose(fut.xy[e, t + 1 :], plan[:, :2])
    np.testing.assert_allclose(fut.heading[e, t + 1 :], plan[:, 2])
    with pytest.raises(ShapeError, match="plan"):
        constant_velocity_future(state, plan[:, :2])
    with pytest.raises(ShapeError, match="plan"):
        constant_velocity_future(state, np.full((9, 3), np.nan))


def test_prior_frames_parse_back_to_constant_velocity(womd_still_path):
    """Handed the prior as the forecast, the learned agents' parser returns the constant-velocity states:
    the prior is drawn at steps t+1.. from the camera path the parser assumes (a scene with 18 agents in view)."""
    sc = load_scenario(womd_still_path)
    settings = LearnedAgentSettings(**{**FAST, "size": 128, "future_frames": 9, "chunk": 8, "prior_strength": 0.5})
    pol = LearnedAgents(settings, service=object(), rng=np.random.default_rng(0))  # type: ignore[arg-type]
    state = WorldState.from_scenario(sc)
    pol.reset(state)
    plan = _logged_plan(sc, state, settings.future_frames)
    frames = render_prior(pol.renderer, state, plan)
    assert frames.shape == (9, 128, 128, 3) and frames.dtype == np.uint8
    controlled = np.ones(state.num_agents, bool)
    controlled[state.ego_index] = False
    chunk = pol._parse(state, controlled, frames, plan)
    t = state.timestep
    rows, cols = np.nonzero(chunk.learned)
    assert rows.size >= 10
    want = state.sim.xy[rows, t] + (cols + 1)[:, None] * DT * state.sim.velocity[rows, t]
    err = np.hypot(*(chunk.xyz[rows, cols, :2] - want).T)
    dist = np.hypot(*(want - plan[cols, :2]).T)
    # The parser on clean 128-px frames measured 0.2-0.7 m median on logged frames; 1 m catches misalignment.
    assert np.median(err[dist < 30]) < 1.0, (np.median(err[dist < 30]), rows.size, (dist < 30).sum())


def test_requests_carry_the_prior_only_when_it_is_used(womd_path):
    sc = load_scenario(womd_path)
    state = WorldState.from_scenario(sc)
    for strength, has_prior in ((1.0, False), (0.5, True)):
        pol = LearnedAgents(
            LearnedAgentSettings(**{**FAST, "prior_strength": strength}),
            service=object(),
            rng=np.random.default_rng(0),  # type: ignore[arg-type]
        )
        pol.reset(state)
        req = pol.prepare(state)
        assert req is not None
        assert (req.prior is not None) is has_prior
        if has_prior:
            assert req.prior.shape == (FAST["future_frames"], FAST["size"], FAST["size"], 3)
            assert req.prior_strength == 0.5


def test_prior_strength_is_checked():
    for bad in (0.0, -0.5, 1.5):
        with pytest.raises(ConfigError, match="prior_strength"):
            LearnedAgentSettings(prior_strength=bad)


def test_sampling_from_a_prior():
    """strength 1 ignores the prior; a small strength keeps the prior's latents; bad values are errors."""
    from mad_sim.model import MADModel, load_backbone

    tiny_model = MADModel(load_backbone("tiny", weights="random", device="cpu", seed=0))
    bb = tiny_model.backbone
    torch.manual_seed(0)
    prior = (torch.rand(1, 3, 9, 64, 64) * 2 - 1).clamp(-1, 1)
    z_prior = bb.encode_video(prior).float()
    noise = torch.randn((1,) + tuple(bb.latent_shape(9, 64, 64)), generator=torch.Generator().manual_seed(1))
    kw = dict(num_frames=9, height=64, width=64, steps=4, latents=noise, return_latents=True)
    plain = tiny_model.sample(**kw)
    same = tiny_model.sample(init_video=prior, strength=1.0, **kw)
    torch.testing.assert_close(plain, same)
    near = tiny_model.sample(init_video=prior, strength=0.25, **kw)
    far = (plain - z_prior).abs().mean()
    close = (near - z_prior).abs().mean()
    assert close < 0.5 * far, (float(close), float(far))
    with pytest.raises(ShapeError, match="strength"):
        tiny_model.sample(init_video=prior, strength=0.0, **kw)
    with pytest.raises(ShapeError, match="init_video"):
        tiny_model.sample(init_video=prior[:, :, :5], strength=0.5, **kw)


def test_service_batches_requests_by_prior_strength():
    predictor, _ = load_predictor("tiny", weights="random")
    svc = PredictorService(predictor, steps=2, threads=1)
    rng = np.random.default_rng(0)
    hist = rng.integers(0, 255, (9, 64, 64, 3), dtype=np.uint8)
    prior = rng.integers(0, 255, (9, 64, 64, 3), dtype=np.uint8)
    reqs = [
        ForecastRequest(hist, None, 9, 3),
        ForecastRequest(hist, None, 9, 3, prior, 1.0),  # strength 1: the prior is not used
        ForecastRequest(hist, None, 9, 3, prior, 0.5),
        ForecastRequest(hist, None, 9, 3, prior, 0.5),
    ]
    out = svc.forecast(reqs)
    assert svc.stats.batch_sizes == [2, 2]
    np.testing.assert_array_equal(out[0], out[1])
    assert np.abs(out[2].astype(int) - out[0]).mean() > 1.0
    assert np.abs(out[2].astype(int) - out[3]).max() <= 1
    with pytest.raises(ShapeError, match="prior"):
        svc.forecast([ForecastRequest(hist, None, 9, 3, prior[:5], 0.5)])
