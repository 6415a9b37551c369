"""The pose video: a scene drawn from one agent's camera on a black background.

MAD's motion predictor reads and writes this video.  Each frame shows the
map (white lane centrelines with white vertex dots, grey road lines, darker
road edges and crosswalks, traffic-light poles coloured by state) and every
other agent as its coloured skeleton (:mod:`mad_sim.render.skeleton`), near
agents drawn over far ones (:mod:`mad_sim.render.draw`).

The camera (:class:`~mad_sim.render.camera.Camera`, default
:meth:`Camera.default_front`: 1.6 m high at the box centre, looking forward,
90 degrees horizontal field of view) rides on the *viewpoint* agent: any
track valid at the step can be the viewpoint, which multiplies training
data.  The viewpoint's vehicle frame has its origin on the ground below the
box centre (``z_ground = z_centre - height / 2``), x along its heading.

Any frame is a deterministic function of the trajectory at that step (plus
the distance each pedestrian / cyclist has travelled so far, which sets its
gait phase).  A frame with nothing in view is black: that is the documented
answer for a camera looking at nothing.
"""

from __future__ import annotations

import logging
from typing import List, Optional, Tuple

import numpy as np

from mad_sim.data.scenario import ObjectType, RoadMap, Scenario, TrafficLights, Trajectory
from mad_sim.errors import RenderError
from mad_sim.render.camera import Camera
from mad_sim.render.draw import AgentGeometry, AgentPoses, PoseStyle, draw_agents
from mad_sim.render.map_layer import CROSSWALK, LANE, ROAD_EDGE, ROAD_LINE, MapGeometry, draw_map, map_geometry
from mad_sim.render.skeleton import walking_phase

log = logging.getLogger(__name__)


def world_to_vehicle(xyz: np.ndarray, heading: float, height: float) -> np.ndarray:
    """[3, 4] affine from the world frame to the vehicle frame of a box ``(xyz centre, heading, height)``.

    ``p_vehicle = R(-heading) (p - [x, y, z - height / 2])``.
    """
    c, s = np.cos(heading), np.sin(heading)
    r = np.array([[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]])
    origin = np.array([xyz[0], xyz[1], xyz[2] - 0.5 * height])
    return np.concatenate([r, (-r @ origin)[:, None]], 1)


def travelled_distance(traj: Trajectory, rows: np.ndarray) -> np.ndarray:
    """[len(rows), T] metres travelled on the ground since the track's first step (0 across invalid gaps)."""
    xy = traj.xyz[rows, :, :2]
    v = traj.valid[rows]
    step = np.hypot(*np.moveaxis(np.diff(xy, axis=1), -1, 0))
    step = np.where(v[:, 1:] & v[:, :-1] & np.isfinite(step), step, 0.0)
    return np.concatenate([np.zeros((len(rows), 1)), np.cumsum(step, axis=1)], 1)


class PoseRenderer:
    """Renders pose frames of a scenario or world state.

    Args:
      width, height: frame size in pixels (128x128 for the tiny preset,
        768x512 for the LTX presets).  Ignored when ``camera`` is given.
      camera: the camera in the viewpoint's vehicle frame (default
        :meth:`Camera.default_front` at ``width`` x ``height``).
      style: :class:`PoseStyle` (widths, colours, range, layers).
    """

    def __init__(
        self, width: int = 128, height: int = 128, camera: Optional[Camera] = None, style: Optional[PoseStyle] = None
    ) -> None:
        self.camera = camera if camera is not None else Camera.default_front(width, height)
        self.style = style or PoseStyle()
        self.last_geometry: Optional[AgentGeometry] = None

    @property
    def width(self) -> int:
        return self.camera.width

    @property
    def height(self) -> int:
        return self.camera.height

    # --- public API ------------------------------------------------------------------
    def render_state(self, state, viewpoint: Optional[int] = None, t: Optional[int] = None) -> np.ndarray:
        """[H, W, 3] uint8 frame of a :class:`~mad_sim.world.state.WorldState`.

        Args:
          state: the world state (its simulated trajectory ``state.sim`` is drawn).
          viewpoint: track index of the camera's agent (default: the state's ego).
          t: step (default: the state's present step).
        """
        vp = state.ego_index if viewpoint is None else int(viewpoint)
        k = state.timestep if t is None else int(t)
        sc = state.scenario
        return self._render(
            state.sim, sc.object_types, sc.roadmap, sc.traffic_lights, vp, np.array([k]), sc.source or sc.scenario_id
        )[0]

    def render_scenario(self, scenario: Scenario, viewpoint: int, t0: int, t1: int) -> np.ndarray:
        """[F, H, W, 3] uint8 frames of the logged steps ``t0 <= t < t1`` (``F = t1 - t0``) from ``viewpoint``.

        Raises RenderError if the viewpoint track is invalid at any of them.
        """
        if not 0 <= t0 < t1 <= scenario.num_steps:
            raise RenderError(
                f"{scenario.source or scenario.scenario_id}: step range [{t0}, {t1}) is not inside [0, {scenario.num_steps})"
            )
        return self._render(
            scenario.tracks,
            scenario.object_types,
            scenario.roadmap,
            scenario.traffic_lights,
            int(viewpoint),
            np.arange(t0, t1),
            scenario.source or scenario.scenario_id,
        )

    def render_trajectory(
        self,
        traj: Trajectory,
        types: np.ndarray,
        roadmap: RoadMap,
        lights: TrafficLights,
        viewpoint: int,
        steps: np.ndarray,
        source: str = "",
    ) -> np.ndarray:
        """[F, H, W, 3] uint8 frames of ``traj`` (any trajectory over a scenario's objects, e.g. a
        simulated or extrapolated one) at ``steps`` [F], from track ``viewpoint``; lights past the
        end of ``lights`` are not drawn."""
        return self._render(traj, types, roadmap, lights, int(viewpoint), np.asarray(steps, np.int64), source)

    def render_view(
        self,
        world_to_vehicle_3x4: np.ndarray,
        agents: AgentPoses,
        roadmap: Optional[RoadMap] = None,
        lights: Optional[Tuple[np.ndarray, np.ndarray]] = None,
        geo: Optional[MapGeometry] = None,
    ) -> np.ndarray:
        """The pure drawing step: [H, W, 3] uint8 from a camera placement, vehicle-frame agents and a map.

        Args:
          world_to_vehicle_3x4: [3, 4] affine world -> the camera's vehicle frame (for the map).
          agents: agents already in that vehicle frame.
          roadmap / geo: the map (world frame); ``geo`` overrides ``roadmap``.
          lights: ``(stop_points [L, 3] world, states [L])`` to draw, or None.
        """
        st = self.style
        img = np.zeros((self.height, self.width, 3), np.uint8)
        if geo is None and roadmap is not None:
            geo = map_geometry(roadmap, st.lane_dot_spacing_m)
        if geo is not None:
            self._draw_map(img[None], world_to_vehicle_3x4[None], geo, [lights if st.draw_traffic_lights else None])
        self.last_geometry = draw_agents(img, self.camera, agents, st)
        return img

    def _draw_map(
        self, img: np.ndarray, w2v: np.ndarray, geo: MapGeometry, lights: List[Optional[Tuple[np.ndarray, np.ndarray]]]
    ) -> None:
        st = self.style
        lw = st.line_width(self.width)
        colors = {LANE: st.lane_rgb, ROAD_LINE: st.road_line_rgb, ROAD_EDGE: st.road_edge_rgb, CROSSWALK: st.crosswalk_rgb}
        draw_map(
            img,
            self.camera,
            w2v,
            geo,
            colors,
            lw,
            max(lw + 2, 2 * lw + 1),
            lw,
            st.max_range_m,
            st.lane_dot_range_m,
            st.draw_crosswalks,
            lights,
        )

    # --- internals ----------------------------------------------------------------------
    def viewpoint_transform(self, traj: Trajectory, viewpoint: int, t: int, source: str = "") -> np.ndarray:
        """[3, 4] world -> vehicle affine of track ``viewpoint`` at step ``t``; RenderError if it cannot carry a camera."""
        n, steps = traj.valid.shape
        if not 0 <= viewpoint < n:
            raise RenderError(f"{source}: viewpoint track {viewpoint} outside [0, {n})")
        if not 0 <= t < steps:
            raise RenderError(f"{source}: step {t} outside [0, {steps})")
        if not traj.valid[viewpoint, t]:
            raise RenderError(f"{source}: viewpoint track {viewpoint} is not valid at step {t}")
        xyz, yaw, h = traj.xyz[viewpoint, t], traj.heading[viewpoint, t], float(traj.size[viewpoint, t, 2])
        if not (np.isfinite(xyz).all() and np.isfinite(yaw) and np.isfinite(h)):
            raise RenderError(f"{source}: viewpoint track {viewpoint} has a non-finite pose at step {t}")
        return world_to_vehicle(xyz, float(yaw), h if h > 0 else 0.0)

    def viewpoint_transforms(self, traj: Trajectory, viewpoint: int, steps: np.ndarray, source: str = "") -> np.ndarray:
        """[F, 3, 4] :meth:`viewpoint_transform` of every step in ``steps`` [F], computed as one batch.

        The same arithmetic per step (so the same bits); the first step that cannot carry a camera raises
        the RenderError :meth:`viewpoint_transform` gives for it.
        """
        n, horizon = traj.valid.shape
        steps = np.asarray(steps, np.int64).reshape(-1)
        ok = 0 <= viewpoint < n and bool(((steps >= 0) & (steps < horizon)).all())
        if ok:
            xyz, yaw, h = traj.xyz[viewpoint, steps], traj.heading[viewpoint, steps], traj.size[viewpoint, steps, 2]
            good = traj.valid[viewpoint, steps] & np.isfinite(xyz).all(1) & np.isfinite(yaw) & np.isfinite(h)
            ok = bool(good.all())
        if not ok:
            for t in steps:
                self.viewpoint_transform(traj, viewpoint, int(t), source)  # raises at the first bad step
        c, s = np.cos(yaw), np.sin(yaw)
        r = np.zeros((steps.size, 3, 3))
        r[:, 0, 0], r[:, 0, 1], r[:, 1, 0], r[:, 1, 1], r[:, 2, 2] = c, s, -s, c, 1.0
        origin = np.stack([xyz[:, 0], xyz[:, 1], xyz[:, 2] - 0.5 * np.where(h > 0, h, 0.0)], -1)
        return np.concatenate([r, -(r @ origin[:, :, None])], 2)

    def _render(
        self,
        traj: Trajectory,
        types: np.ndarray,
        roadmap: RoadMap,
        lights: TrafficLights,
        viewpoint: int,
        steps: np.ndarray,
        source: str,
    ) -> np.ndarray:
        st = self.style
        transforms = self.viewpoint_transforms(traj, viewpoint, steps, source)
        geo = map_geometry(roadmap, st.lane_dot_spacing_m)
        if len(steps) > 1:
            # Cull the map once for the whole clip: everything the camera can reach from any of its positions.
            geo = geo.near(traj.xyz[viewpoint, steps, :2], st.max_range_m + 1.0)
        # All agents of all frames in one batch (projection and rasterisation are vectorised over frames).
        present = traj.valid[:, steps].T.copy()  # [F, N]
        present[:, viewpoint] = False
        fi, ai = np.nonzero(present)
        ti = steps[fi]
        r, tr = transforms[:, :, :3], transforms[:, :, 3]
        yaw = np.arctan2(r[:, 0, 1], r[:, 0, 0])  # the viewpoint's heading per frame (r = R(-yaw))
        # np.take on flattened (track, step) rows: the values of traj.xyz[ai, ti] and r[fi] without fancy
        # indexing's slow path for trailing axes.
        at = ai * traj.valid.shape[1] + ti
        w = np.take(traj.xyz.reshape(-1, 3), at, axis=0)
        rf = np.take(r, fi, axis=0)
        xyz = rf[:, :, 0] * w[:, 0:1] + rf[:, :, 1] * w[:, 1:2] + rf[:, :, 2] * w[:, 2:3] + np.take(tr, fi, axis=0)
        walker = (types[ai] == ObjectType.PEDESTRIAN) | (types[ai] == ObjectType.CYCLIST)
        phase = np.zeros(ai.size)
        if walker.any():
            rows = np.unique(ai[walker])
            dist = travelled_distance(traj, rows)
            phase[walker] = walking_phase(dist[np.searchsorted(rows, ai[walker]), ti[walker]])
        agents = AgentPoses(
            xyz=xyz,
            heading=traj.heading[ai, ti] - yaw[fi],
            size=np.take(traj.size.reshape(-1, 3), at, axis=0),
            types=types[ai],
            phase=phase,
            speed=np.hypot(traj.velocity[ai, ti, 0], traj.velocity[ai, ti, 1]),
            ids=ai,
            frame=fi,
        )
        agents.check(source)
        out = np.zeros((len(steps), self.height, self.width, 3), np.uint8)
        lts: List[Optional[Tuple[np.ndarray, np.ndarray]]] = []
        for t in steps:
            lt = None
            if st.draw_traffic_lights and lights is not None and lights.valid.shape[0] > t and lights.valid[t].any():
                v = lights.valid[t]
                lt = (lights.stop_points[t][v], lights.states[t][v])
            lts.append(lt)
        self._draw_map(out, transforms, geo, lts)
        self.last_geometry = draw_agents(out, self.camera, agents, st)
        return out
