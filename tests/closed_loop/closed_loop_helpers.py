"""Shared helpers of the closed-loop tests (imported by the test modules)."""

from __future__ import annotations

from typing import List, Sequence

import numpy as np
import pytest
import torch

from mad_sim.model.agents.predictor_service import ForecastRequest, ServiceStats

FAST = dict(weights="random", size=64, history_frames=9, future_frames=9, chunk=8, threads=1, sampler_steps=2)


@pytest.fixture()
def fast_mad():
    """``agent_options`` of ``agents="mad"``: a random-weight tiny model at 64x64, 9 frames, chunks of 8 steps."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield dict(FAST)
    torch.set_num_threads(threads)


class LogOracleService:
    """A stand-in predictor that returns the LOGGED future pose frames seen from the ego.

    A perfect world model: if the loop (history, frame alignment t+1.., camera
    placement, parsing) is right, learned agents then follow the log.
    """

    def __init__(self, scenario, ego: int, size: int, preset: str = "tiny") -> None:
        from mad_sim.model.presets import pose_camera
        from mad_sim.render.pose import PoseRenderer

        self.scenario, self.ego = scenario, ego
        # The learned agents' own camera (the preset's pose camera), or the frames would not match their parser.
        self.renderer = PoseRenderer(camera=pose_camera(preset, size, size))
        self.stats = ServiceStats()
        self.t = 0  # set by the test: the step the request was made at

    def forecast(self, requests: Sequence[ForecastRequest]) -> List[np.ndarray]:
        out = []
        for r in requests:
            t0, t1 = self.t + 1, self.t + 1 + r.num_frames
            frames = self.renderer.render_scenario(self.scenario, self.ego, t0, min(t1, self.scenario.num_steps))
            if len(frames) < r.num_frames:
                frames = np.concatenate([frames, np.repeat(frames[-1:], r.num_frames - len(frames), 0)])
            out.append(frames)
            self.stats.calls += 1
        return out
