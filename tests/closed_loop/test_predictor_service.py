"""The batched predictor service and MADVectorEnv: one sampler call per chunk for all envs."""

from __future__ import annotations

import numpy as np

import mad_sim  # noqa: F401
from mad_sim.model.agents.predictor_service import ForecastRequest, shared_service
from mad_sim.render.pose import PoseRenderer


def test_batch_equals_single_requests(fast_mad, womd_path):
    from mad_sim.data import load_scenario

    sc = load_scenario(womd_path)
    hist = PoseRenderer(64, 64).render_scenario(sc, sc.sdc_index, 2, 11)
    # float32 asked for: "auto" is bfloat16 on a CPU with native bf16, whose rounding these tolerances do not cover
    svc = shared_service("tiny", "random", None, None, fast_mad["sampler_steps"], 1, precision="float32")
    reqs = [ForecastRequest(hist, None, 9, seed) for seed in (5, 6, 7)]
    alone = [svc.forecast([r])[0] for r in reqs]
    calls = svc.stats.calls
    together = svc.forecast(reqs)
    assert svc.stats.calls == calls + 1 and svc.stats.batch_sizes[-1] == 3
    for a, b in zip(alone, together):
        assert a.shape == (9, 64, 64, 3) and a.dtype == np.uint8
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 2  # float rounding of batched matmuls only
    assert np.abs(alone[0].astype(int) - alone[1].astype(int)).mean() > 1.0  # different seeds, different futures


def test_vector_env_batches_predictions(fast_mad, womd_path):
    import gymnasium as gym
    from mad_sim.envs import MADVectorEnv

    venv = gym.make_vec(
        "MADDrive-v0",
        num_envs=2,
        vectorization_mode="vector_entry_point",
        agents="mad",
        agent_options=fast_mad,
        scenario=str(womd_path),
        terminate_on_collision=False,
        terminate_on_offroad=False,
    )
    assert isinstance(venv, MADVectorEnv)
    venv.reset(seed=[1, 2])
    svc = venv.envs[0].unwrapped.agent_policy.service
    assert svc is venv.envs[1].unwrapped.agent_policy.service
    calls, reqs = svc.stats.calls, svc.stats.requests
    actions = np.zeros((2, 2), np.float32)
    for _ in range(9):
        _, _, term, trunc, infos = venv.step(actions)
    assert svc.stats.requests - reqs == 4  # 2 envs x 2 chunks (8 steps each)
    assert svc.stats.calls - calls == 2  # ... in one sampler call per chunk
    assert list(svc.stats.batch_sizes[-2:]) == [2, 2]
    assert "learned_agents" in infos
    venv.close()


def test_merged_lora_equals_the_adapter(womd_path):
    """Merging the motion LoRA into the base weights (the shared service's inference path) keeps the frames."""
    import torch

    from mad_sim.data import load_scenario
    from mad_sim.model.agents.predictor_service import PredictorService, load_predictor

    torch.set_num_threads(1)
    sc = load_scenario(womd_path)
    hist = PoseRenderer(64, 64).render_scenario(sc, sc.sdc_index, 2, 11)
    frames = []
    for merge in (False, True):
        predictor, _ = load_predictor("tiny", "random", seed=3)
        g = torch.Generator().manual_seed(0)
        with torch.no_grad():  # a non-trivial adapter, the same in both runs (a fresh LoRA has B = 0, a no-op)
            for name, p in predictor.model.denoiser.named_parameters():
                if "lora_" in name:
                    p.copy_(torch.randn(p.shape, generator=g) * 0.05)
        svc = PredictorService(predictor, steps=2, threads=1, merge_lora=merge, precision="float32")  # not auto: bf16 here
        assert (svc.merged > 0) == merge
        frames.append(svc.forecast([ForecastRequest(hist, None, 9, 11)])[0])
    base, _ = load_predictor("tiny", "random", seed=3)
    plain = PredictorService(base, steps=2, threads=1, precision="float32").forecast([ForecastRequest(hist, None, 9, 11)])[0]
    assert np.abs(frames[0].astype(int) - plain.astype(int)).mean() > 0.5  # the adapter changes the output ...
    assert np.abs(frames[0].astype(int) - frames[1].astype(int)).max() <= 1  # ... and merging it does not


def test_bfloat16_sampler_is_close_and_checked(womd_path):
    """The opt-in bfloat16 autocast gives nearly the float32 frames; an unknown precision is refused."""
    import pytest
    import torch

    from mad_sim.data import load_scenario
    from mad_sim.errors import ConfigError
    from mad_sim.model.agents.predictor_service import PredictorService, load_predictor

    torch.set_num_threads(1)
    sc = load_scenario(womd_path)
    hist = PoseRenderer(64, 64).render_scenario(sc, sc.sdc_index, 2, 11)
    predictor, _ = load_predictor("tiny", "random", seed=3)
    req = ForecastRequest(hist, None, 9, 11)
    # float32 asked for: "auto" already resolves to bfloat16 on a CPU with native bf16
    f32 = PredictorService(predictor, steps=2, threads=1, precision="float32").forecast([req])[0]
    bf16 = PredictorService(predictor, steps=2, threads=1, precision="bfloat16").forecast([req])[0]
    diff = np.abs(f32.astype(int) - bf16.astype(int))
    assert bf16.shape == f32.shape and bf16.dtype == np.uint8
    assert 0 < diff.mean() < 2.0  # not bit-identical (so it is opt-in), but close
    with pytest.raises(ConfigError, match="precision"):
        PredictorService(predictor, precision="float8")
    with pytest.raises(ConfigError, match="precision"):
        from mad_sim.model.agents.learned import LearnedAgentSettings

        LearnedAgentSettings(precision="half")
