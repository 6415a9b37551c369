"""Training clips: which (scenario, viewpoint, time window) to render, and rendering one.

A *clip* is ``total_frames = context_frames + future_frames`` consecutive log
steps at 10 Hz seen from one vehicle (the *viewpoint*, any valid vehicle of
the log, not only the SDC):

- steps ``t0 .. t0 + context_frames - 1`` are the **context** (pose history,
  the last one is the *present* step ``t0 + context_frames - 1``);
- steps ``present + 1 .. present + future_frames`` are the **future** the
  motion adapter forecasts.

Defaults: 9 context + 17 future frames (0.9 s of history, 1.7 s forecast),
both ``8k + 1``, which every LTX causal VAE takes (it encodes the first frame
alone, then ``t`` frames per latent frame; tiny's ``t = 4``: 9 -> 3, 17 -> 5
latent frames; LTX-Video's ``t = 8``: 9 -> 2, 17 -> 3). Frames are 128x128
uint8 RGB, so one latent frame of the tiny VAE is a 16x16 grid (8x spatial
compression) of 4x4 transformer tokens.

Two videos are stored per clip, both ``[F, H, W, 3]`` uint8:

- ``pose``: the pose video (black background, wireframe vehicles, stick-figure
  pedestrians, white lanes) rendered by :class:`mad_sim.render.pose.PoseRenderer`
  from the viewpoint vehicle's camera;
- ``ego``: the viewpoint vehicle's own motion as a video
  (:class:`mad_sim.render.ego_motion.EgoMotionRenderer`: textured sphere +
  dust), computed from its world-frame poses ``(x, y, yaw)`` over the clip.

Optionally (object control, :mod:`mad_sim.model.object_control`) a third
video per clip, ``boxes`` ``[future_frames, H, W, 3]`` uint8: the box video of
1..``max_agents`` controlled vehicles over the future steps, chosen by
:func:`~mad_sim.model.object_control.choose_controlled_agents` from the
viewpoint's camera (:meth:`ClipRenderer.render_boxes`).

This module picks windows (numpy only) and renders; caching and the torch
dataset are in :mod:`mad_sim.model.training.datasets`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np

from mad_sim.data.scenario import ObjectType, Scenario
from mad_sim.errors import ConfigError, ShapeError
from mad_sim.render.camera_mount import CameraMount

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipSpec:
    """Geometry of every clip in a dataset.

    Attributes:
      context_frames: frames of pose history incl. the present (8k + 1).
      future_frames: frames to forecast after the present (8k + 1).
      width, height: pixels, multiples of 32 (a token's side: tiny's 8x VAE x 4x4 patches, LTX-Video's 32x VAE).
      stride: steps between the start of two windows of one viewpoint.
      max_viewpoints: at most this many viewpoint vehicles per window.
      min_travel_m: a viewpoint is "moving" if it travels at least this far
        (metres, straight-line, first to last clip step).
      static_fraction: fraction of each window's viewpoint slots that may go
        to vehicles that do not move (parked cars make static videos; a few
        are useful, many would dominate).
      camera_height, camera_pitch_deg, camera_hfov_deg: the pose camera's
        :class:`~mad_sim.render.camera_mount.CameraMount` (metres, degrees
        down, degrees); the ego-motion video keeps its dashcam camera.
    """

    context_frames: int = 9
    future_frames: int = 17
    width: int = 128
    height: int = 128
    stride: int = 6
    max_viewpoints: int = 8
    min_travel_m: float = 2.0
    static_fraction: float = 0.25
    camera_height: float = 1.6
    camera_pitch_deg: float = 0.0
    camera_hfov_deg: float = 90.0

    @property
    def mount(self) -> CameraMount:
        """The pose camera's mount."""
        return CameraMount(hfov_deg=self.camera_hfov_deg, mount_height=self.camera_height, pitch_deg=self.camera_pitch_deg)

    def __post_init__(self) -> None:
        for name in ("context_frames", "future_frames"):
            n = getattr(self, name)
            if n < 1 or (n - 1) % 8:
                raise ConfigError(f"clip spec: {name}={n} must be 8k+1 (1, 9, 17, 25...) for the LTX VAE")
        for name in ("width", "height"):
            n = getattr(self, name)
            if n < 32 or n % 32:
                raise ConfigError(f"clip spec: {name}={n} must be a positive multiple of 32 (one token's side in pixels)")
        if self.stride < 1 or self.max_viewpoints < 1:
            raise ConfigError("clip spec: stride and max_viewpoints must be >= 1")
        if not 0.0 <= self.static_fraction <= 1.0:
            raise ConfigError(f"clip spec: static_fraction={self.static_fraction} must lie in [0, 1]")

    @property
    def total_frames(self) -> int:
        return self.context_frames + self.future_frames

    @property
    def present(self) -> int:
        """Index of the present frame inside the clip."""
        return self.context_frames - 1

    @property
    def context_slice(self) -> slice:
        return slice(0, self.context_frames)

    @property
    def future_slice(self) -> slice:
        return slice(self.context_frames, self.total_frames)


@dataclass(frozen=True)
class ClipRef:
    """One clip to render: steps ``t0 .. t0 + total_frames - 1`` of track ``viewpoint``."""

    viewpoint: int
    t0: int
    moving: bool


def viewpoint_candidates(scenario: Scenario, spec: ClipSpec, t0: int) -> Tuple[np.ndarray, np.ndarray]:
    """Vehicles usable as a viewpoint for the window starting at ``t0``.

    Returns:
      (indices [K] int64, travel [K] float64 metres): vehicles valid on every
      step of the window, and their straight-line displacement over it.
    """
    tr = scenario.tracks
    window = slice(t0, t0 + spec.total_frames)
    valid = tr.valid[:, window].all(axis=1) & (scenario.object_types == ObjectType.VEHICLE)
    idx = np.flatnonzero(valid)
    xy = tr.xy[idx]
    travel = np.hypot(*(xy[:, window.stop - 1] - xy[:, t0]).T) if idx.size else np.zeros(0)
    return idx.astype(np.int64), travel


def plan_clips(
    scenario: Scenario, spec: ClipSpec, rng: np.random.Generator, t_range: Optional[Tuple[int, int]] = None
) -> List[ClipRef]:
    """Choose the clips of one scenario.

    Windows start every ``spec.stride`` steps; in each, up to
    ``max_viewpoints`` viewpoints are drawn (without replacement, by ``rng``)
    from the moving vehicles, plus at most ``ceil(static_fraction *
    max_viewpoints)`` from the still ones (and only as many as there are
    moving ones, or one if none moves).

    Args:
      t_range: optional ``[first, last)`` steps the whole window must lie in
        (to hold a time span of a log out for evaluation).
    """
    lo, hi = (0, scenario.num_steps) if t_range is None else t_range
    refs: List[ClipRef] = []
    n_static_max = int(np.ceil(spec.static_fraction * spec.max_viewpoints))
    for t0 in range(max(lo, 0), min(hi, scenario.num_steps) - spec.total_frames + 1, spec.stride):
        idx, travel = viewpoint_candidates(scenario, spec, t0)
        moving = idx[travel >= spec.min_travel_m]
        still = idx[travel < spec.min_travel_m]
        take_moving = rng.permutation(moving)[: spec.max_viewpoints]
        n_static = min(n_static_max, max(len(take_moving), 1))
        take_still = rng.permutation(still)[:n_static]
        refs += [ClipRef(int(v), t0, True) for v in np.sort(take_moving)]
        refs += [ClipRef(int(v), t0, False) for v in np.sort(take_still)]
    return refs


def viewpoint_poses(scenario: Scenario, ref: ClipRef, spec: ClipSpec) -> np.ndarray:
    """[F, 3] float64 world-frame ``(x, y, yaw)`` of the viewpoint over the clip."""
    tr = scenario.tracks
    s = slice(ref.t0, ref.t0 + spec.total_frames)
    return np.concatenate([tr.xy[ref.viewpoint, s], tr.heading[ref.viewpoint, s, None]], axis=-1)


class ClipRenderer:
    """Renders the pose and ego-motion videos of clips (one renderer pair, reused).

    Args:
      spec: clip geometry.
    """

    def __init__(self, spec: ClipSpec) -> None:
        from mad_sim.render.ego_motion import EgoMotionRenderer
        from mad_sim.render.pose import PoseRenderer

        self.spec = spec
        self.pose = PoseRenderer(camera=spec.mount.camera(spec.width, spec.height))
        self._ego_cls = EgoMotionRenderer

    def render(self, scenario: Scenario, ref: ClipRef, seed: int) -> Tuple[np.ndarray, np.ndarray]:
        """Return ``(pose, ego)``, each ``[total_frames, height, width, 3]`` uint8.

        ``seed`` is passed to the ego-motion renderer (its sphere colours and
        dust particles), so every clip gets its own texture: the model must
        read motion from how the texture moves, not memorise one texture.
        """
        spec = self.spec
        f = spec.total_frames
        pose = np.asarray(self.pose.render_scenario(scenario, ref.viewpoint, ref.t0, ref.t0 + f))
        ego_r = self._ego_cls(spec.width, spec.height, seed=int(seed))
        ego = np.asarray(ego_r.render(viewpoint_poses(scenario, ref, spec)))
        want = (f, spec.height, spec.width, 3)
        for name, video in (("pose", pose), ("ego", ego)):
            if video.shape != want or video.dtype != np.uint8:
                raise ShapeError(
                    f"{scenario.source or scenario.scenario_id}: {name} video of viewpoint {ref.viewpoint} "
                    f"at step {ref.t0}: got {video.shape} {video.dtype}, expected {want} uint8"
                )
        return pose, ego

    def render_boxes(
        self, scenario: Scenario, ref: ClipRef, rng: np.random.Generator, max_agents: int = 3, min_pixels: int = 8
    ) -> Tuple[np.ndarray, np.ndarray]:
        """Box video of the clip's future and its controlled agents: ``([future_frames, H, W, 3] uint8, [n] int64)``.

        ``n`` is drawn uniformly in ``1..max_agents`` by ``rng``, then that many
        vehicles are drawn among those visible in every future frame
        (:func:`~mad_sim.model.object_control.choose_controlled_agents`, same
        ``rng``); fewer if fewer qualify. With none, the video is black and
        the agent array empty (such a clip never gets the box task).
        Slot ``k`` of the video is agent ``agents[k]``.
        """
        from mad_sim.model.object_control import box_video_from_trajectory, choose_controlled_agents

        spec = self.spec
        present = ref.t0 + spec.present
        steps = np.arange(present + 1, present + 1 + spec.future_frames)
        n = int(rng.integers(1, max_agents + 1))
        agents = choose_controlled_agents(
            scenario.tracks,
            scenario.object_types,
            ref.viewpoint,
            steps,
            self.pose.camera,
            rng,
            max_agents=n,
            min_pixels=min_pixels,
        )
        if agents.size == 0:
            return np.zeros((spec.future_frames, spec.height, spec.width, 3), np.uint8), agents
        return box_video_from_trajectory(scenario.tracks, ref.viewpoint, agents, steps, self.pose.camera), agents
