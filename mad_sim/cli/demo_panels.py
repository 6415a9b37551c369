"""The panels of the ``mad-sim demo`` / ``mad-sim replay`` videos: one ``[H, W, 3]`` uint8 frame per panel per step.

A panel is a callable ``panel(env, info) -> frame`` with a ``label``, called
after the env's reset (with the reset's ``info``) and after every step (with
that step's ``info``); ``env`` is the unwrapped ``MADDrive-v0`` (its
``state`` is the world at the step drawn).

- :class:`PosePanel`: the simulated scene's pose frame from the ego (``mad-sim replay``).
- :class:`LogPanel`: the *logged* scene at the present step (``scenario.tracks``;
  for a procedural scene its generated tracks are the log), drawn from the
  simulated ego's pose with the learned agents' pose camera
  (:func:`mad_sim.model.presets.pose_camera`), so it lines up with what the
  model imagined: same camera, same map, the log's agents.
- :class:`ImaginedPanel`: the generated pose frame of the learned agents'
  current chunk for the present step
  (:meth:`~mad_sim.model.agents.learned.LearnedAgents.imagined_frame`), or a
  black frame that says why there is none.
- :class:`BevPanel`: the bird's-eye view of the simulated scene
  (:func:`mad_sim.render.bev.render_bev`, ego filled and centred, heading up).
- :class:`ParsedBevPanel`: the BEV with the agents the model drove this step
  (``info["learned_agents"]``) ringed, those whose state took in a model
  measurement this step (``info["measured_agents"]``) also given a filled
  dot, the rest driven by the fallback policy drawn plain; a legend line
  with the counts under the panel's label.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

from mad_sim.render.bev import render_bev

MODEL_RGB = (255, 0, 255)
"""Ring around an agent the model drove this step, and the dot of one that took in a model measurement (RGB)."""

_FONT = cv2.FONT_HERSHEY_SIMPLEX


def text_scale(size: int) -> float:
    """The label scale :func:`mad_sim.render.video.side_by_side` uses for panels ``size`` pixels high."""
    return max(0.3, size / 400.0)


def put_text(img: np.ndarray, text: str, org: Tuple[int, int], scale: float, rgb: Tuple[int, int, int] = (255, 255, 255)) -> int:
    """Outlined text at pixel ``org`` (baseline left, x right / y down); returns the x pixel after it."""
    thick = max(1, int(round(scale * 2)))
    cv2.putText(img, text, org, _FONT, scale, (0, 0, 0), thick + 2, cv2.LINE_AA)
    cv2.putText(img, text, org, _FONT, scale, rgb, thick, cv2.LINE_AA)
    return org[0] + cv2.getTextSize(text, _FONT, scale, thick)[0][0]


def message_frame(size: int, lines: Sequence[str]) -> np.ndarray:
    """``[size, size, 3]`` black frame with ``lines`` of grey text centred (a panel with nothing to show)."""
    img = np.zeros((size, size, 3), np.uint8)
    scale = 0.8 * text_scale(size)
    thick = max(1, int(round(scale * 2)))
    step = int(round(30 * scale / 0.4 * 0.6))
    y0 = size // 2 - step * (len(lines) - 1) // 2
    for i, line in enumerate(lines):
        w = cv2.getTextSize(line, _FONT, scale, thick)[0][0]
        put_text(img, line, (max(1, (size - w) // 2), y0 + i * step), scale, (170, 170, 170))
    return img


def _fit(frame: np.ndarray, size: int) -> np.ndarray:
    """``frame`` resized to ``size x size`` (bilinear up, area down); unchanged when it already is."""
    h, w = frame.shape[:2]
    if (h, w) == (size, size):
        return frame
    interp = cv2.INTER_LINEAR if size > max(h, w) else cv2.INTER_AREA
    return cv2.resize(np.ascontiguousarray(frame), (size, size), interpolation=interp)


class PosePanel:
    """The simulated scene's pose frame from the ego, ``size x size`` with the default pose camera."""

    def __init__(self, size: int, label: str = "pose") -> None:
        from mad_sim.render.pose import PoseRenderer

        self.label = label
        self.renderer = PoseRenderer(width=size, height=size)

    def __call__(self, env: Any, info: Dict[str, Any]) -> np.ndarray:
        return self.renderer.render_state(env.state)


class LogPanel:
    """The logged scene at the present step from the simulated ego's pose, with preset ``preset``'s pose camera.

    The log's own ego row is replaced, step by step, by the simulated ego (the camera's carrier; it is not
    drawn), so the map lines up with the model's frames; every other agent is where the log has it (absent
    where the log has no valid state).  After the log's last step the panel says so.
    """

    def __init__(self, size: int, preset: str, label: str = "log") -> None:
        from mad_sim.model.presets import pose_camera
        from mad_sim.render.pose import PoseRenderer

        self.label = label
        self.size = int(size)
        self.renderer = PoseRenderer(camera=pose_camera(preset, self.size, self.size))
        self._scenario: Any = None
        self._log: Any = None

    def __call__(self, env: Any, info: Dict[str, Any]) -> np.ndarray:
        s = env.state
        sc, t, e = s.scenario, int(s.timestep), int(s.ego_index)
        if self._scenario is not sc:  # a copy per scenario (walkers' gait phase needs the whole track)
            self._scenario, self._log = sc, sc.tracks.copy()
        log = self._log
        if t >= log.num_steps:
            return message_frame(self.size, ["log ended"])
        log.xyz[e, t], log.heading[e, t] = s.sim.xyz[e, t], s.sim.heading[e, t]
        log.size[e, t], log.valid[e, t] = s.sim.size[e, t], s.sim.valid[e, t]
        return self.renderer.render_trajectory(
            log, sc.object_types, sc.roadmap, sc.traffic_lights, e, np.array([t]), sc.source or sc.scenario_id
        )[0]


class ImaginedPanel:
    """What the model imagined for the present step: the current chunk's generated pose frame, resized to ``size``.

    ``policy`` is the env's :class:`~mad_sim.model.agents.learned.LearnedAgents` (``env.agent_policy``).
    Without a frame: "no forecast yet" before the first one, "no forecast (nobody in view)" when a forecast was
    due but no other agent was in the camera's view (the fallback drove everyone).
    """

    def __init__(self, size: int, policy: Any, label: str = "imagined") -> None:
        self.label = label
        self.size = int(size)
        self.policy = policy
        self.shown = 0
        """Frames drawn from a forecast so far (the rest were message frames)."""

    def __call__(self, env: Any, info: Dict[str, Any]) -> np.ndarray:
        frame: Optional[np.ndarray] = self.policy.imagined_frame(int(env.state.timestep))
        if frame is None:
            st = self.policy.stats
            why = ["no forecast yet"] if st.predictions == 0 and st.skipped == 0 else ["no forecast", "(nobody in view)"]
            return message_frame(self.size, why)
        self.shown += 1
        return _fit(np.asarray(frame, np.uint8), self.size)


class BevPanel:
    """The simulated scene from above, ``extent_m`` metres from the ego to the nearest border."""

    def __init__(self, size: int, extent_m: float, label: str = "bev") -> None:
        self.label = label
        self.size = int(size)
        self.extent_m = float(extent_m)

    def __call__(self, env: Any, info: Dict[str, Any]) -> np.ndarray:
        return render_bev(env.state, size=self.size, extent_m=self.extent_m)


def bev_pixels(state: Any, xy: np.ndarray, size: int, extent_m: float) -> np.ndarray:
    """``[..., 2]`` float pixels (u right, v down) of world-frame points ``xy`` [..., 2] (metres) in
    :func:`~mad_sim.render.bev.render_bev`'s ``size x size`` view of ``state`` (its convention: the ego at
    the centre, heading up, ``size / (2 extent_m)`` pixels per metre)."""
    t, e = state.timestep, state.ego_index
    o, yaw = state.sim.xyz[e, t, :2], float(state.sim.heading[e, t])
    s = size / (2.0 * extent_m)
    d = np.asarray(xy, np.float64)[..., :2] - o
    c, sn = np.cos(yaw), np.sin(yaw)
    ex, ey = c * d[..., 0] + sn * d[..., 1], -sn * d[..., 0] + c * d[..., 1]
    centre = (size - 1) / 2.0
    return np.stack([centre - ey * s, centre - ex * s], -1)


class ParsedBevPanel(BevPanel):
    """:class:`BevPanel` with the learned agents of the step marked (see the module docstring) and a legend.

    ``fallback`` names the policy driving the unmarked agents (for the legend).
    """

    def __init__(self, size: int, extent_m: float, fallback: str, label: Optional[str] = None) -> None:
        super().__init__(size, extent_m, label or f"parsed (BEV, {extent_m:g} m)")
        self.fallback = fallback

    def __call__(self, env: Any, info: Dict[str, Any]) -> np.ndarray:
        s = env.state
        img = render_bev(s, size=self.size, extent_m=self.extent_m)
        learned = np.asarray(info.get("learned_agents", []), np.int64)
        measured = np.asarray(info.get("measured_agents", []), np.int64)
        t = s.timestep
        ppm = self.size / (2.0 * self.extent_m)
        lw = max(1, int(round(self.size / 256)))
        if learned.size:
            px = bev_pixels(s, s.sim.xyz[learned, t, :2], self.size, self.extent_m)
            half_diag = 0.5 * np.hypot(s.sim.size[learned, t, 0], s.sim.size[learned, t, 1])
            radii = np.maximum(3, np.rint((half_diag + 0.8) * ppm)).astype(int)
            for (u, v), r in zip(np.rint(px).astype(int), radii):
                cv2.circle(img, (int(u), int(v)), int(r), MODEL_RGB, lw, cv2.LINE_AA)
        if measured.size:
            px = bev_pixels(s, s.sim.xyz[measured, t, :2], self.size, self.extent_m)
            dot = max(2, int(round(0.9 * ppm)))
            for u, v in np.rint(px).astype(int):
                cv2.circle(img, (int(u), int(v)), dot, MODEL_RGB, -1, cv2.LINE_AA)
        self._legend(img, int(learned.size), int(measured.size))
        return img

    def _legend(self, img: np.ndarray, n_learned: int, n_measured: int) -> None:
        """One line under the panel label: ring = model-driven, dot = measured, plain = fallback (shrunk to fit)."""
        label_scale = text_scale(self.size)
        texts = (f" model {n_learned}", f" measured {n_measured}", f"  plain: {self.fallback}")

        def width(scale: float) -> int:
            thick = max(1, int(round(scale * 2)))
            r = max(2, int(round(5 * scale / 0.4)))
            return 3 + 5 * r + sum(cv2.getTextSize(t, _FONT, scale, thick)[0][0] for t in texts)

        scale = 0.8 * label_scale
        if width(scale) > self.size - 3:
            scale = max(0.25, scale * (self.size - 3) / width(scale))
        y = int(14 * label_scale / 0.4) + int(round(22 * scale / 0.4 * 0.6)) + 2
        r = max(2, int(round(5 * scale / 0.4)))
        x = 3 + r
        cv2.circle(img, (x, y - r), r, MODEL_RGB, 1, cv2.LINE_AA)
        x = put_text(img, texts[0], (x + r, y), scale)
        x += 2 * r
        cv2.circle(img, (x, y - r), max(1, r // 2 + 1), MODEL_RGB, -1, cv2.LINE_AA)
        x = put_text(img, texts[1], (x + r, y), scale)
        put_text(img, texts[2], (x, y), scale)


__all__ = [
    "MODEL_RGB",
    "BevPanel",
    "ImaginedPanel",
    "LogPanel",
    "ParsedBevPanel",
    "PosePanel",
    "bev_pixels",
    "message_frame",
    "put_text",
    "text_scale",
]
