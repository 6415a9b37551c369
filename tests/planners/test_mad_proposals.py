"""MADPlanner with invalid odometry: unreadable samples are dropped, resampled within a budget, then
replaced by marked constant-velocity fallbacks (planners/mad.py).

The model is replaced by a scripted service: a "good" sample is the logged future seen from the ego
(readable, the odometry recovers the log), a "bad" one colour noise (no map pixel at all).
"""

from __future__ import annotations

from typing import List, Sequence

import numpy as np
import pytest
from mad_sim.planners.base import context_from_scenario
from mad_sim.planners.constant_velocity import ConstantVelocityPlanner
from mad_sim.planners.mad import MADPlanner, MADPlannerSettings

from mad_sim.data import load_scenario


class ScriptedService:
    """Returns, request by request, the logged future pose frames ("good") or noise ("bad") as scripted."""

    def __init__(self, scenario, script: str, size: int = 128, preset: str = "tiny") -> None:
        from mad_sim.model.presets import pose_camera
        from mad_sim.render.pose import PoseRenderer

        self.scenario, self.script = scenario, list(script)
        # the model's pose camera, which the planner's odometry reads the frames with
        self.renderer = PoseRenderer(camera=pose_camera(preset, size, size))
        self.rng = np.random.default_rng(0)
        self.batches: List[int] = []

    def forecast(self, requests: Sequence) -> List[np.ndarray]:
        self.batches.append(len(requests))
        out = []
        for r in requests:
            t0 = self.scenario.current_index + 1
            frames = self.renderer.render_scenario(self.scenario, self.scenario.sdc_index, t0, t0 + r.num_frames)
            if self.script.pop(0) == "b":
                frames = self.rng.integers(0, 256, frames.shape, dtype=np.uint8)
            out.append(frames)
        return out


def _plan(path, script: str, k: int, resamples: int):
    sc = load_scenario(path)
    ctx = context_from_scenario(sc, horizon=16)
    settings = MADPlannerSettings(size=128, future_frames=17, max_chunks=1, max_resamples=resamples)
    svc = ScriptedService(sc, script, settings.size, settings.preset)
    planner = MADPlanner(settings, service=svc)
    return ctx, svc, planner.plan(ctx, k, 16)


def test_all_valid_samples_are_returned(womd_path):
    ctx, svc, plan = _plan(womd_path, "ggg", 3, 4)
    assert plan.info["valid_proposals"] == 3 and plan.info["samples_drawn"] == 3 and svc.batches == [3]
    assert plan.info["fallback"] == [False] * 3 and min(plan.info["valid_fraction"]) >= 0.8
    np.testing.assert_allclose(plan.probabilities, 1 / 3)
    travelled = np.hypot(*ctx.future_xy[-1])
    assert np.hypot(*(plan.xy[0] - ctx.future_xy).T).mean() < 0.35 * travelled


def test_invalid_samples_are_resampled(womd_path):
    """Two of three samples unreadable: two replacements drawn in one batch; one of them fails again, one more."""
    ctx, svc, plan = _plan(womd_path, "gbb" + "gb" + "g", 3, 4)
    assert svc.batches == [3, 2, 1]
    assert plan.info["valid_proposals"] == 3 and plan.info["samples_drawn"] == 6
    assert not any(plan.info["fallback"])
    # Every returned proposal is a readable (log-like) sample: close to the logged future, not noise's prediction.
    err = np.hypot(*(plan.xy - ctx.future_xy[None]).transpose(2, 0, 1)).mean(1)
    assert err.max() < 0.35 * np.hypot(*ctx.future_xy[-1]), err


def test_budget_spent_then_marked_fallbacks(womd_path):
    """One valid sample, budget of one extra sample spent on another unreadable one: two CV fallbacks."""
    ctx, svc, plan = _plan(womd_path, "gbb" + "b", 3, 1)
    assert svc.batches == [3, 1] and plan.info["samples_drawn"] == 4
    assert plan.info["valid_proposals"] == 1 and plan.info["fallback"] == [False, True, True]
    np.testing.assert_allclose(plan.probabilities, [1.0, 0.0, 0.0])
    cv = ConstantVelocityPlanner().plan(ctx, 2, 16)
    np.testing.assert_allclose(plan.xy[1:], cv.xy)
    np.testing.assert_allclose(plan.heading[1:], cv.heading)
    assert plan.info["valid_fraction"][1:] == [0.0, 0.0]


def test_nothing_readable_gives_only_fallbacks(womd_path):
    ctx, svc, plan = _plan(womd_path, "b" * 5, 3, 2)
    assert plan.info["valid_proposals"] == 0 and all(plan.info["fallback"]) and plan.info["samples_drawn"] == 5
    np.testing.assert_allclose(plan.probabilities, 1 / 3)
    np.testing.assert_allclose(plan.xy, ConstantVelocityPlanner().plan(ctx, 3, 16).xy)


def test_settings_are_checked():
    from mad_sim.errors import ConfigError

    with pytest.raises(ConfigError, match="min_valid_fraction"):
        MADPlannerSettings(min_valid_fraction=0.0)
    with pytest.raises(ConfigError, match="max_resamples"):
        MADPlannerSettings(max_resamples=-1)
    with pytest.raises(ConfigError, match="future_frames"):
        MADPlannerSettings(future_frames=16)
    with pytest.raises(ConfigError, match="history_frames"):
        MADPlannerSettings(history_frames=8)
